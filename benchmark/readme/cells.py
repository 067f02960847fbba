"""Cell formatting shared by the README renderers (standard library only)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def pct(value: Any) -> str:
    return f"{100 * value:+.1f}%" if isinstance(value, (int, float)) else "–"


def num(value: Any, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "–"


def link(path: str | Path, readme: Path) -> str:
    full = Path(path) if Path(path).is_absolute() else ROOT / path
    return Path(os.path.relpath(full, readme.resolve().parent)).as_posix()


def machine_line(machine: Mapping[str, Any] | None) -> str:
    if not machine:
        return "machine: not recorded"
    commit = (machine.get("git_commit") or "")[:10]
    parts = [machine.get("platform"), f"{machine.get('cpu_count')} CPUs" if machine.get("cpu_count") else None,
             f"torch {machine['torch']}" if machine.get("torch") else None,
             f"sglang {machine['sglang']}" if machine.get("sglang") else None,
             f"OMP_NUM_THREADS={machine['omp_num_threads']}" if machine.get("omp_num_threads") else None,
             f"commit {commit}" + (" with uncommitted changes" if machine.get("git_uncommitted") else "")
             if commit else None]
    return "machine: " + ", ".join(p for p in parts if p)


def pngs(path: Path, data: Mapping[str, Any]) -> list[str]:
    for key in ("pngs", "plots", "figures", "png"):
        value = data.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        if isinstance(value, Mapping):
            return [str(v) for v in value.values()]
    return [str(p) for p in sorted(path.parent.glob(path.stem + "*.png"))]
