"""Quick self-consistency batch check: even allocation vs certaindex at the same cap.

    python benchmark/batch/quick_sc.py --url http://127.0.0.1:30000   # a running Dynasor server
    python benchmark/batch/quick_sc.py                                # starts one, stops it at the end

Generated arithmetic problems (default 20, level 1, 3-shot prompt) run as SelfConsistency programs:

1. ``even``: EvenAllocation, every program runs its ``cap`` branches; each branch's answer and
   tokens are recorded in arrival order.
2. ``certaindex (simulated)``: "stop at detect_at if certaindex ≥ threshold" replayed offline on
   those same branches (``dynasor.runtime.calibrate.simulate``): a paired comparison, free of
   sampling noise between runs.
3. ``certaindex (live)``: StaticThreshold on the server, so a stop really aborts the program's
   remaining branches in the engine; its tokens include the partial tokens of aborted branches.
   Its samples differ from the even run's, so its accuracy carries sampling noise.

Tokens are generated (completion) tokens, summed over programs; "saved" is relative to ``even``.
Writes benchmark/results/batch_quick_sc.json and the recorded profiles next to it (reusable with
``dynasor calibrate --profiles``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from the repo root: make `benchmark.datasets` importable
    sys.path.insert(0, str(ROOT))

from benchmark.datasets.arithmetic import generate, make_prompt, parse_levels  # noqa: E402
from dynasor.runtime.calibrate import (  # noqa: E402
    Evaluation,
    Labelled,
    add_generation_args,
    evaluate,
    is_correct,
    policy_name,
    sampling_params_from_args,
    save_profiles,
)

RESULTS = ROOT / "benchmark" / "results"


def _saved(tokens: int, even_tokens: int) -> float | None:
    return 1 - tokens / even_tokens if even_tokens else None


def live_row(name: str, results: Sequence[Any], golds: Sequence[str], wall_seconds: float) -> dict[str, Any]:
    """Totals of live program results against gold answers."""
    correct = sum(is_correct(r.answer, g) for r, g in zip(results, golds))
    return {"policy": name, "mode": "live", "n": len(results), "correct": correct,
            "accuracy": correct / len(results) if results else None,
            "tokens": sum(r.generated_tokens for r in results), "stopped": sum(r.stopped_early for r in results),
            "aborted_branches": sum(r.extra.get("aborted_branches", 0) for r in results),
            "wall_seconds": wall_seconds}


def simulated_row(name: str, evaluation: Evaluation) -> dict[str, Any]:
    return {"policy": name, "mode": "simulated", "n": evaluation.n, "correct": evaluation.correct,
            "accuracy": evaluation.accuracy, "tokens": evaluation.tokens, "stopped": evaluation.stopped,
            "aborted_branches": 0, "wall_seconds": None}


def with_savings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``tokens_saved`` relative to the first row (the even baseline)."""
    even = rows[0]["tokens"]
    return [{**row, "tokens_saved": None if i == 0 else _saved(row["tokens"], even)} for i, row in enumerate(rows)]


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'policy':<34} | {'accuracy':>8} | {'total tokens':>12} | {'tokens saved %':>14} | {'stopped':>7}"]
    lines.append("-" * len(lines[0]))
    for row in rows:
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        saved = "-" if row["tokens_saved"] is None else f"{100 * row['tokens_saved']:.1f}"
        lines.append(f"{row['policy'] + ' (' + row['mode'] + ')':<34} | {acc:>8} | {row['tokens']:>12} | "
                     f"{saved:>14} | {row['stopped']:>3}/{row['n']:<3}")
    return "\n".join(lines)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _display_path(path: Path) -> str:
    """Relative to the repo when inside it, so results carry no machine paths."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def machine_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": _version("torch"),
            "sglang": _version("sglang"), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "git_commit": commit}


async def run_policies(url: str, items: Sequence[Labelled], args: argparse.Namespace) -> dict[str, Any]:
    from dynasor.runtime.calibrate import run_self_consistency
    from dynasor.runtime.policies import EvenAllocation, StaticThreshold

    params = sampling_params_from_args(args)
    golds = [it.gold for it in items]
    ci_name = policy_name(args.threshold, args.detect_at)
    even = await run_self_consistency(url, items, EvenAllocation(), args.cap, args.cap, params, args.concurrency,
                                      "even")
    rows = [live_row(f"even (cap {args.cap})", even.results, golds, even.wall_seconds),
            simulated_row(ci_name, evaluate(even.profiles, args.threshold, args.detect_at))]
    if not args.skip_live_certaindex:
        live = await run_self_consistency(url, items, StaticThreshold(args.threshold), args.cap, args.detect_at,
                                          params, args.concurrency, ci_name)
        rows.append(live_row(ci_name, live.results, golds, live.wall_seconds))
    return {"rows": with_savings(rows), "profiles": even.profiles, "sampling_params": params}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="running Dynasor server; without it one is started on a free port")
    ap.add_argument("--n", type=int, default=20, help="generated problems")
    ap.add_argument("--levels", default="1", help="level mix, e.g. 1:0.5,2:0.5 (see benchmark/datasets)")
    ap.add_argument("--seed", type=int, default=0, help="problem generator seed")
    add_generation_args(ap, cap=10)
    ap.add_argument("--detect-at", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.7, help="certaindex threshold (paper Table 3: SC 0.7@5)")
    ap.add_argument("--skip-live-certaindex", action="store_true", help="only the even run and the simulation")
    ap.add_argument("--server-args", default="", help="extra flags for the started server (quoted string)")
    ap.add_argument("--out", type=Path, default=RESULTS / "batch_quick_sc.json")
    args = ap.parse_args(argv)
    if not 1 <= args.detect_at < args.cap:
        ap.error("need 1 <= --detect-at < --cap (detection happens before the cap)")

    generated = generate(args.n, args.seed, parse_levels(args.levels))
    items = [Labelled(p.id, make_prompt(p), p.answer, p.level, p.source) for p in generated.problems]
    if args.url:
        out = asyncio.run(run_policies(args.url, items, args))
        server_info: dict[str, Any] = {"url": args.url, "started_here": False}
    else:
        from dynasor.server_process import ServerProcess, free_port

        log = RESULTS / "tmp" / "quick_sc_server.log"
        with ServerProcess.dynasor(free_port(), log, shlex.split(args.server_args)) as server:
            print(f"started Dynasor server {server.url} (pid {server.pid}, log {log})")
            out = asyncio.run(run_policies(server.url, items, args))
        server_info = {"url": server.url, "started_here": True, "server_args": args.server_args}

    profiles_path = args.out.with_suffix(".profiles.jsonl")
    save_profiles(profiles_path, out["profiles"])
    report = {"benchmark": "batch_quick_sc", "machine": machine_info(), "server": server_info,
              "problems": generated.metadata, "cap": args.cap, "detect_at": args.detect_at,
              "threshold": args.threshold, "concurrency": args.concurrency,
              "sampling_params": out["sampling_params"], "rows": out["rows"],
              "profiles": _display_path(profiles_path)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{args.n} problems (levels {generated.metadata['levels']}, seed {args.seed}), cap {args.cap}")
    print(format_table(out["rows"]))
    print(f"\nwrote {args.out} and {profiles_path}")


if __name__ == "__main__":
    main()
