"""Benchmark problems: the shared math datasets and generated arithmetic word problems.

The arithmetic names are resolved lazily so ``python -m benchmark.datasets.arithmetic`` does not
import that module twice (once through this package, once as ``__main__``)."""

from typing import Any

from benchmark.datasets.loaders import (
    DATA_ENV,
    LOADERS,
    Problem,
    default_data_dir,
    load_aime24,
    load_amc23,
    load_dataset,
    load_gsm8k,
    load_math500,
    write_problems_jsonl,
)

_ARITHMETIC = ("LEVELS", "GeneratedSet", "generate", "make_prompt", "parse_levels")

__all__ = [
    "DATA_ENV", "LOADERS", "Problem", "default_data_dir", "load_aime24", "load_amc23", "load_dataset", "load_gsm8k",
    "load_math500", "write_problems_jsonl", *_ARITHMETIC,
]


def __getattr__(name: str) -> Any:
    if name in _ARITHMETIC:
        from benchmark.datasets import arithmetic

        return getattr(arithmetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
