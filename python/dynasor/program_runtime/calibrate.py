"""``dynasor calibrate``: pick the cheapest certaindex threshold that keeps accuracy (App. D.2.2).

The threshold is workload-specific and needs labelled data, so calibration has two parts:

1. **Record** (live, once): run SelfConsistency to its cap with EvenAllocation on labelled problems
   and keep, per program, the branch answers in the order they arrived and their token counts
   (a JSONL of profiles, reloadable so the live run is never repeated).
2. **Replay** (offline, pure; ``program_runtime/replay.py``): every (detect_at, threshold) on the recorded
   branches, the choice on a calibration split and the report on a held-out split.

    dynasor calibrate --url http://127.0.0.1:30000 --generate 40 --levels 1:0.5,2:0.5 --out cal.json
    dynasor calibrate --profiles cal.profiles.jsonl --epsilon 0.02 --detect-at 3,5,7
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynasor.certaindex import extract_answer
from dynasor.core.generation import Backend, Generation
from dynasor.core.result import ProgramResult
from dynasor.datasets.labelled import Labelled, read_labelled_jsonl
from dynasor.program_runtime.allocation import AllocationPolicy
from dynasor.program_runtime.backends import RecordingBackend
from dynasor.program_runtime.replay import Branch, Profile, calibrate, format_report, load_profiles, save_profiles
from dynasor.program_runtime.sampling_flags import add_program_flags, add_sampling_flags, sampling_params_from_args


def profile_of(recorder: RecordingBackend, program_id: str, item: Labelled) -> Profile:
    """The recorded program as a replayable profile: finished branches in completion order."""
    gens = recorder.generations(program_id)
    done = [g for g in gens if not g.aborted]
    return Profile(item.id, item.gold, tuple(Branch(extract_answer(g.text), g.completion_tokens, _confidences(g))
                                             for g in done),
                   item.level, item.source, len(gens) - len(done), sum(g.completion_tokens for g in gens if g.aborted))


def _confidences(generation: Generation) -> tuple[float, ...] | None:
    """Per-token top-k confidence when the server returned it (5 decimals: a recording stays small)."""
    values = generation.meta_info.get("topk_confidence")
    return tuple(round(float(v), 5) for v in values) if values else None


@dataclass
class LiveRun:
    results: list[ProgramResult]
    profiles: list[Profile]
    wall_seconds: float


async def run_programs(backend: Backend, items: Sequence[Labelled], policy: AllocationPolicy, cap: int,
                       detect_at: int, sampling_params: Mapping[str, Any], concurrency: int = 8,
                       desc: str = "programs") -> LiveRun:
    """SelfConsistency per item through ``backend``, recording every branch; a tqdm bar counts
    finished programs."""
    from dynasor.program_runtime.runtime import ProgramRuntime
    from dynasor.programs import SelfConsistency

    programs = [SelfConsistency(it.prompt, cap=cap, detect_at=detect_at, sampling_params=sampling_params)
                for it in items]
    recorder = RecordingBackend(backend)
    runtime = ProgramRuntime(recorder, policy, max_concurrent_programs=concurrency)
    results, wall = await runtime.run_with_progress(programs, desc)
    return LiveRun(results, [profile_of(recorder, p.program_id, it) for p, it in zip(programs, items)], wall)


async def run_self_consistency(url: str, items: Sequence[Labelled], policy: AllocationPolicy, cap: int,
                               detect_at: int, sampling_params: Mapping[str, Any], concurrency: int = 8,
                               desc: str = "programs") -> LiveRun:
    """``run_programs`` on a Dynasor server: tagged requests that ask for per-token statistics (the
    profiles keep each branch's confidences), a stop is one abort call."""
    from dynasor.client import AsyncDynasorClient
    from dynasor.program_runtime.backends import DynasorBackend

    async with AsyncDynasorClient(url) as client:
        return await run_programs(DynasorBackend(client, token_stats=True), items, policy, cap, detect_at,
                                  sampling_params, concurrency, desc)


def threshold_grid(spec: str) -> list[float]:
    """``"0:1:0.05"`` (inclusive range) or ``"0.5,0.7,0.9"``."""
    if ":" in spec:
        start, stop, step = (float(x) for x in spec.split(":"))
        return [round(start + i * step, 6) for i in range(round((stop - start) / step) + 1)]
    return [float(x) for x in spec.split(",")]


def _generated_items(n: int, levels: str, seed: int) -> tuple[list[Labelled], dict[str, Any]]:
    """Generated arithmetic problems (``dynasor.datasets.arithmetic``) behind the 3-shot prompt."""
    from dynasor.datasets.arithmetic import generate, parse_levels

    generated = generate(n, seed, parse_levels(levels))
    return [Labelled.few_shot(p) for p in generated.problems], generated.metadata


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="dynasor calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--problems", help="labelled JSONL: question|problem, answer, optional id, prompt, level")
    src.add_argument("--generate", type=int, metavar="N", help="N generated arithmetic problems")
    src.add_argument("--profiles", help="recorded profiles JSONL: skip the live run")
    ap.add_argument("--url", help="Dynasor server for the live run")
    ap.add_argument("--levels", default="1:0.5,2:0.5", help="level mix for --generate")
    ap.add_argument("--seed", type=int, default=0, help="seed for --generate")
    ap.add_argument("--limit", type=int, help="first N problems of --problems")
    ap.add_argument("--prompt-template", default="{question}", help="prompt for rows without a 'prompt' field")
    add_program_flags(ap)
    add_sampling_flags(ap)
    ap.add_argument("--detect-at", default="5", help="detection steps to try, comma separated")
    ap.add_argument("--thresholds", default="0:1:0.05", help="start:stop:step (inclusive) or a comma list")
    ap.add_argument("--epsilon", type=float, default=0.0, help="accuracy the calibration split may lose (fraction)")
    ap.add_argument("--holdout", type=float, default=0.5, help="held-out fraction")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("calibration.json"))
    ap.add_argument("--profiles-out", type=Path, help="where the live run's profiles go (default: next to --out)")
    args = ap.parse_args(argv)
    detect_ats = [int(x) for x in args.detect_at.split(",")]
    if any(d < 1 for d in detect_ats):
        ap.error("--detect-at values must be >= 1")
    report: dict[str, Any] = {"cap": args.cap}
    if args.profiles:
        profiles = load_profiles(args.profiles)
        report.update(profiles_from=args.profiles, cap=max(len(p.branches) + p.aborted for p in profiles))
    else:
        if not args.url:
            ap.error("--url is required for a live run (or give --profiles)")
        if args.generate is not None:
            items, report["generated"] = _generated_items(args.generate, args.levels, args.seed)
        else:
            items = read_labelled_jsonl(args.problems, args.prompt_template, args.limit)
            report["problems_from"] = args.problems
        from dynasor.program_runtime.allocation import EvenAllocation

        params = sampling_params_from_args(args)
        run = asyncio.run(run_self_consistency(args.url, items, EvenAllocation(), args.cap, args.cap, params,
                                               args.concurrency, "record (even)"))
        profiles = run.profiles
        profiles_out = args.profiles_out or args.out.with_suffix(".profiles.jsonl")
        save_profiles(profiles_out, profiles)
        report.update(url=args.url, sampling_params=params, record_wall_seconds=run.wall_seconds,
                      profiles_written=str(profiles_out))
        print(f"recorded {len(profiles)} programs in {run.wall_seconds:.1f}s -> {profiles_out}")
    report.update(calibrate(profiles, threshold_grid(args.thresholds), detect_ats, args.epsilon, args.holdout,
                            args.split_seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(format_report(report))
    print(f"wrote {args.out}")
