"""What the benchmark scripts share: where results go, the machine a result was measured on, the
server flags (a running server, or one started and stopped here), and typed presets."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmark" / "results"


def display_path(path: Path) -> str:
    """Relative to the repository when inside it, so results carry no machine paths."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Platform, CPUs, library versions, thread and oneDNN cache settings, and commit a result was
    measured with."""
    from dynasor.srt.cpu_defaults import onednn_cache_env

    commit = _git("rev-parse", "HEAD").strip()
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": _version("torch"),
            "sglang": _version("sglang"), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "onednn_cache_capacity": onednn_cache_env(), "git_commit": commit or None,
            "git_uncommitted": [line[3:] for line in changed.splitlines()] if commit else None}


# the code a result depends on: a result measured with changes here not yet committed says so
CODE_PATHS = ("python", "scheduler", "kernels", "benchmark", ":!benchmark/results")


def _git(*args: str) -> str:
    """The output of ``git`` in the repository; "" when git or the repository is missing."""
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                              check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


# --- servers ---------------------------------------------------------------------------------
def add_server_flags(ap: argparse.ArgumentParser, url: bool = True) -> None:
    """``--url`` (a running Dynasor server), ``--model-path`` and ``--server-args`` (a started one)."""
    if url:
        ap.add_argument("--url", help="a running Dynasor server; without it one is started here and stopped")
    ap.add_argument("--model-path", help="HF model folder for started servers (default: the embedded model)")
    ap.add_argument("--server-args", default="", help="extra flags for started servers (one quoted string), "
                    "e.g. \"--mem-fraction-static 0.7\"")


def server_extra_args(args: argparse.Namespace) -> list[str]:
    """``--model-path`` and ``--server-args`` as server argv."""
    extra = shlex.split(args.server_args)
    return ["--model-path", args.model_path, *extra] if args.model_path else extra


@dataclass
class Served:
    """The server a benchmark talks to, and what to record about it."""

    url: str
    info: dict[str, Any] = field(default_factory=dict)


@contextmanager
def dynasor_server(args: argparse.Namespace, log_name: str, extra: list[str] | None = None) -> Iterator[Served]:
    """``args.url`` if given (nothing started); else a Dynasor server on a free port with the
    server flags (+ ``extra``), stopped when the block ends. Its log goes to results/tmp/."""
    if getattr(args, "url", None):
        yield Served(args.url, {"url": args.url, "started_here": False})
        return
    from dynasor.evaluation.ports import free_port
    from dynasor.evaluation.server_process import ServerProcess

    argv = server_extra_args(args) + list(extra or [])
    log = RESULTS / "tmp" / f"{log_name}.log"
    started = time.perf_counter()
    with ServerProcess.dynasor(free_port(), log, argv) as server:
        seconds = time.perf_counter() - started
        print(f"started Dynasor server {server.url} in {seconds:.0f}s (pid {server.pid}, log {display_path(log)})")
        yield Served(server.url, {"started_here": True, "server_args": argv, "start_seconds": seconds})


# --- presets ---------------------------------------------------------------------------------
def apply_preset(args: argparse.Namespace, preset: Any) -> set[str]:
    """Fill every flag left unset (None) from the preset dataclass; returns the names the user set."""
    given = set()
    for f in dataclasses.fields(preset):
        if getattr(args, f.name, None) is None:
            setattr(args, f.name, getattr(preset, f.name))
        else:
            given.add(f.name)
    return given
