"""Quick self-consistency batch check: even allocation vs certaindex at the same cap.

    python -m benchmark.batch.quick_sc --url http://127.0.0.1:30000   # a running Dynasor server
    python -m benchmark.batch.quick_sc                                # starts one, stops it at the end

Generated arithmetic problems (default 20, level 1, 3-shot prompt) run as SelfConsistency programs:

1. ``even``: EvenAllocation, every program runs its ``cap`` branches; each branch's answer and
   tokens are recorded in arrival order.
2. ``certaindex (simulated)``: "stop at detect_at if certaindex ≥ threshold" replayed offline on
   those same branches (``dynasor.program_runtime.replay.replay_profile``): a paired comparison, free of
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, add_server_flags, display_path, dynasor_server, machine_info
from dynasor.certaindex import is_correct
from dynasor.datasets.arithmetic import generate, parse_levels
from dynasor.datasets.labelled import Labelled
from dynasor.program_runtime.replay import Evaluation, evaluate, policy_name, save_profiles
from dynasor.program_runtime.sampling_flags import add_program_flags, add_sampling_flags, sampling_params_from_args


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


async def run_policies(url: str, items: Sequence[Labelled], args: argparse.Namespace) -> dict[str, Any]:
    from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold
    from dynasor.program_runtime.calibrate import run_self_consistency

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
    add_server_flags(ap)
    ap.add_argument("--n", type=int, default=20, help="generated problems")
    ap.add_argument("--levels", default="1", help="level mix, e.g. 1:0.5,2:0.5 (see dynasor.datasets)")
    ap.add_argument("--seed", type=int, default=0, help="problem generator seed")
    add_program_flags(ap, cap=10)
    add_sampling_flags(ap)
    ap.add_argument("--detect-at", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.7, help="certaindex threshold (paper Table 3: SC 0.7@5)")
    ap.add_argument("--skip-live-certaindex", action="store_true", help="only the even run and the simulation")
    ap.add_argument("--out", type=Path, default=RESULTS / "batch_quick_sc.json")
    args = ap.parse_args(argv)
    if not 1 <= args.detect_at < args.cap:
        ap.error("need 1 <= --detect-at < --cap (detection happens before the cap)")

    generated = generate(args.n, args.seed, parse_levels(args.levels))
    items = [Labelled.few_shot(p) for p in generated.problems]
    with dynasor_server(args, "quick_sc_server") as served:
        out = asyncio.run(run_policies(served.url, items, args))
    server_info = {**served.info, "url": served.url, "server_args": args.server_args}

    profiles_path = args.out.with_suffix(".profiles.jsonl")
    save_profiles(profiles_path, out["profiles"])
    report = {"benchmark": "batch_quick_sc", "machine": machine_info(), "server": server_info,
              "problems": generated.metadata, "cap": args.cap, "detect_at": args.detect_at,
              "threshold": args.threshold, "concurrency": args.concurrency,
              "sampling_params": out["sampling_params"], "rows": out["rows"],
              "profiles": display_path(profiles_path)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{args.n} problems (levels {generated.metadata['levels']}, seed {args.seed}), cap {args.cap}")
    print(format_table(out["rows"]))
    print(f"\nwrote {args.out} and {profiles_path}")


if __name__ == "__main__":
    main()
