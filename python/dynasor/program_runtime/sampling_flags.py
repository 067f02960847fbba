"""Command-line flags of the sampling every program request uses, declared once for the package's
commands (``dynasor calibrate``) and the benchmarks alike."""

from __future__ import annotations

import argparse
import codecs
from typing import Any


def add_sampling_flags(ap: argparse.ArgumentParser, temperature: float | None = 0.8, max_new_tokens: int | None = 64,
                       temperature_help: str = "", max_new_tokens_help: str = "") -> None:
    """``--temperature``, ``--max-new-tokens`` and ``--stop`` (None defaults: a preset fills them)."""
    ap.add_argument("--temperature", type=float, default=temperature, help=temperature_help or "sampling temperature")
    ap.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                    help=max_new_tokens_help or "tokens per request at most")
    ap.add_argument("--stop", action="append", help="stop string, repeatable, backslash escapes (default \\n)")


def add_program_flags(ap: argparse.ArgumentParser, cap: int = 10, concurrency: int = 8) -> None:
    """``--cap`` (branches per self-consistency program) and ``--concurrency`` (programs in flight)."""
    ap.add_argument("--cap", type=int, default=cap, help="branches per program (the resource cap)")
    ap.add_argument("--concurrency", type=int, default=concurrency, help="programs in flight at once")


def sampling_params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens,
            "stop": [codecs.decode(s, "unicode_escape") for s in args.stop or ["\\n"]]}
