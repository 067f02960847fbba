#!/usr/bin/env bash
# Static checks of python/, scheduler/, kernels/ and benchmark/: ruff (ruff.toml) and mypy (mypy.ini).
#   usage: scripts/check.sh [VENV_DIR]      (default: .venv in the repository)
#
# mypy checks the package as it is installed: setup.py maps kernels/ and scheduler/ into the dynasor
# namespace, which an editable install does with an import hook that mypy cannot follow, so the
# check runs over a temporary folder of links with that layout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${1:-$ROOT/.venv}" && pwd)
cd "$ROOT"
STARTED=$(date +%s)
"$VENV/bin/ruff" check python scheduler kernels benchmark
VIEW=$(mktemp -d)
trap 'rm -rf "$VIEW"' EXIT
mkdir "$VIEW/dynasor"
for entry in "$ROOT"/python/dynasor/*; do ln -s "$entry" "$VIEW/dynasor/"; done
ln -s "$ROOT/kernels" "$VIEW/dynasor/kernels"
ln -s "$ROOT/scheduler" "$VIEW/dynasor/scheduler"
ln -s "$ROOT/benchmark" "$VIEW/benchmark"
(cd "$VIEW" && "$VENV/bin/mypy" --config-file "$ROOT/mypy.ini" --cache-dir "$ROOT/.mypy_cache" -p dynasor -p benchmark)
echo "[check] ruff and mypy clean in $(( $(date +%s) - STARTED ))s"
