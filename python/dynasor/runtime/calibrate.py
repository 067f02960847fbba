"""Threshold calibration (paper App. D.2.2): pick the cheapest certaindex threshold that keeps accuracy.

The threshold is workload-specific and needs labelled data, so calibration has two parts:

1. **Record** (live, once): run SelfConsistency to its cap with EvenAllocation on labelled problems
   and keep, per program, the branch answers in the order they arrived and their token counts
   (a JSONL of profiles, reloadable so the live run is never repeated).
2. **Simulate** (offline, pure): for every (detect_at, threshold), replay "stop at detect_at if
   certaindex ≥ threshold" on the recorded branches: certaindex over the first ``detect_at``
   answers, majority vote over the answers used, tokens = sum over the branches used. Choose the
   pair with the fewest tokens whose accuracy on a calibration split is ≥ even accuracy − ε, and
   report it against even allocation on a separate held-out split (seeded split), so the reported
   saving is not measured on the data that chose the threshold (paper-notes §7.2, leakage).

The simulation mirrors ``SelfConsistency``: detection only happens before the cap; branches still
running at a live stop are aborted, and their partial tokens (a few, counted live) are not simulated.

    dynasor calibrate --url http://127.0.0.1:30000 --generate 40 --levels 1:0.5,2:0.5 --out cal.json
    dynasor calibrate --profiles cal.profiles.jsonl --epsilon 0.02 --detect-at 3,5,7
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import json
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from dynasor.certaindex import answer_certaindex, answers_equivalent, cluster_answers, extract_answer

if TYPE_CHECKING:
    from dynasor.programs.base import ProgramResult
    from dynasor.runtime.backends import Backend, Generation
    from dynasor.runtime.policies import Policy


@dataclass(frozen=True)
class Branch:
    answer: str | None
    tokens: int


@dataclass(frozen=True)
class Profile:
    """One program run to its cap: finished branches in arrival order (aborted ones only counted)."""

    problem_id: str
    gold: str
    branches: tuple[Branch, ...]
    level: int | None = None
    source: str | None = None
    aborted: int = 0
    aborted_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "Profile":
        return cls(**{**row, "branches": tuple(Branch(**b) for b in row["branches"])})


def save_profiles(path: str | Path, profiles: Sequence[Profile]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p.to_json()) + "\n" for p in profiles)


def load_profiles(path: str | Path) -> list[Profile]:
    with open(path, encoding="utf-8") as f:
        return [Profile.from_json(json.loads(line)) for line in f if line.strip()]


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """``SelfConsistency.majority``: the largest equivalence cluster (first seen on ties), its most
    common spelling."""
    present = [a for a in answers if a is not None]
    if not present:
        return None
    best = max(cluster_answers(present), key=len)
    return Counter(present[i] for i in best).most_common(1)[0][0]


def is_correct(answer: str | None, gold: str) -> bool:
    return answer is not None and answers_equivalent(answer, gold)


@dataclass(frozen=True)
class Outcome:
    answer: str | None
    correct: bool
    tokens: int
    stopped: bool


def simulate(profile: Profile, threshold: float | None, detect_at: int) -> Outcome:
    """Replay one program; ``threshold=None`` is even allocation (never stop)."""
    used = profile.branches
    if threshold is not None and detect_at < len(used):
        head = used[:detect_at]
        if answer_certaindex([b.answer for b in head]) >= threshold:
            used = head
    answer = majority_vote([b.answer for b in used])
    return Outcome(answer, is_correct(answer, profile.gold), sum(b.tokens for b in used),
                   len(used) < len(profile.branches))


@dataclass(frozen=True)
class Evaluation:
    """Totals of one policy over a set of programs (``threshold=None``: even allocation)."""

    threshold: float | None
    detect_at: int | None
    n: int
    correct: int
    tokens: int
    stopped: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "accuracy": self.accuracy}


def evaluate(profiles: Sequence[Profile], threshold: float | None, detect_at: int | None) -> Evaluation:
    outcomes = [simulate(p, threshold, detect_at or 0) for p in profiles]
    return Evaluation(threshold, detect_at if threshold is not None else None, len(outcomes),
                      sum(o.correct for o in outcomes), sum(o.tokens for o in outcomes),
                      sum(o.stopped for o in outcomes))


def grid(profiles: Sequence[Profile], thresholds: Sequence[float], detect_ats: Sequence[int]) -> list[Evaluation]:
    return [evaluate(profiles, t, d) for d in detect_ats for t in thresholds]


def choose(candidates: Sequence[Evaluation], even: Evaluation, epsilon: float) -> Evaluation:
    """Fewest tokens among candidates with accuracy ≥ even − ε; ties go to higher accuracy, then
    the more conservative (higher) threshold. Even allocation itself when nothing qualifies."""
    if not even.n:
        raise ValueError("cannot calibrate on an empty split")
    floor = even.correct / even.n - epsilon - 1e-12
    ok = [c for c in candidates if c.n and c.correct / c.n >= floor]
    return min(ok + [even], key=lambda c: (c.tokens, -c.correct, -(c.threshold if c.threshold is not None else 2.0),
                                          c.detect_at or 0))


def split_profiles(profiles: Sequence[Profile], holdout_fraction: float,
                   seed: int) -> tuple[list[Profile], list[Profile]]:
    """(calibration, held-out), by problem id and seed only, so it does not depend on record order."""
    ordered = sorted(profiles, key=lambda p: p.problem_id)
    random.Random(seed).shuffle(ordered)
    n_holdout = round(len(ordered) * holdout_fraction)
    return ordered[n_holdout:], ordered[:n_holdout]


def saved(policy: Evaluation, even: Evaluation) -> float | None:
    return 1 - policy.tokens / even.tokens if even.tokens else None


def calibrate(profiles: Sequence[Profile], thresholds: Sequence[float], detect_ats: Sequence[int],
              epsilon: float = 0.0, holdout_fraction: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """Choose on the calibration split, report both splits (every grid point included)."""
    calib, held = split_profiles(profiles, holdout_fraction, seed)
    calib_grid = grid(calib, thresholds, detect_ats)
    calib_even = evaluate(calib, None, None)
    chosen = choose(calib_grid, calib_even, epsilon)
    report: dict[str, Any] = {
        "thresholds": list(thresholds), "detect_at": list(detect_ats), "epsilon": epsilon,
        "holdout_fraction": holdout_fraction, "split_seed": seed,
        "chosen": {"threshold": chosen.threshold, "detect_at": chosen.detect_at}, "splits": {},
    }
    for name, split in (("calibration", calib), ("held_out", held)):
        even, policy = evaluate(split, None, None), evaluate(split, chosen.threshold, chosen.detect_at)
        report["splits"][name] = {
            "ids": [p.problem_id for p in split], "even": even.to_json(), "chosen": policy.to_json(),
            "tokens_saved": saved(policy, even),
            "grid": [e.to_json() for e in (calib_grid if split is calib else grid(split, thresholds, detect_ats))]}
    return report


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def policy_name(threshold: float | None, detect_at: int | None, cap: int | None = None) -> str:
    if threshold is None:
        return f"even (cap {cap})" if cap else "even"
    return f"certaindex>={threshold:.2f}@{detect_at}"


def format_report(report: Mapping[str, Any]) -> str:
    chosen = report["chosen"]
    lines = [f"chosen: {policy_name(chosen['threshold'], chosen['detect_at'], report.get('cap'))} "
             f"(calibration accuracy >= even - {report['epsilon']:g})",
             f"{'split':<12} {'n':>4} {'policy':<22} {'accuracy':>8} {'tokens':>8} {'saved':>7} {'stopped':>7}"]
    for name, split in report["splits"].items():
        for key in ("even", "chosen"):
            e = split[key]
            lines.append(f"{name:<12} {e['n']:>4} {policy_name(e['threshold'], e['detect_at'], report.get('cap')):<22} "
                         f"{_cell(e['accuracy'], '.3f'):>8} {e['tokens']:>8} "
                         f"{_cell(split['tokens_saved'] if key == 'chosen' else None, '.1%'):>7} {e['stopped']:>7}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Labelled:
    """A problem to run: the full prompt sent to the model and the gold answer."""

    id: str
    prompt: str
    gold: str
    level: int | None = None
    source: str | None = None


def read_labelled_jsonl(path: str | Path, template: str = "{question}", limit: int | None = None) -> list[Labelled]:
    """Rows with ``question`` (or ``problem``) and ``answer``; a ``prompt`` field wins over the
    template; a GSM8K-style ``... #### N`` answer becomes N."""
    items = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(line for line in f if line.strip()):
            row = json.loads(line)
            question = row.get("question", row.get("problem"))
            gold = str(row["answer"])
            gold = gold.rsplit("####", 1)[-1].strip().replace(",", "") if "####" in gold else gold.strip()
            items.append(Labelled(str(row.get("id", row.get("unique_id", i))), row.get("prompt") or
                                  template.format(question=question), gold, row.get("level"), row.get("source")))
    return items[:limit] if limit is not None else items


class RecordingBackend:
    """Passes requests through and keeps each program's generations in completion order."""

    def __init__(self, inner: "Backend") -> None:
        self.inner = inner
        self.generations: dict[str, list["Generation"]] = {}

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> "Generation":
        out = await self.inner.generate(prompt, params, program_id, remaining_work=remaining_work)
        self.generations.setdefault(program_id, []).append(out)
        return out

    async def stop_program(self, program_id: str) -> None:
        await self.inner.stop_program(program_id)

    def profile(self, program_id: str, item: Labelled) -> Profile:
        gens = self.generations.get(program_id, [])
        done = [g for g in gens if not g.aborted]
        return Profile(item.id, item.gold, tuple(Branch(extract_answer(g.text), g.completion_tokens) for g in done),
                       item.level, item.source, len(gens) - len(done),
                       sum(g.completion_tokens for g in gens if g.aborted))


@dataclass
class LiveRun:
    results: list["ProgramResult"]
    profiles: list[Profile]
    wall_seconds: float


async def run_programs(backend: "Backend", items: Sequence[Labelled], policy: "Policy", cap: int, detect_at: int,
                       sampling_params: Mapping[str, Any], concurrency: int = 8, desc: str = "programs") -> LiveRun:
    """SelfConsistency per item through ``backend``, recording every branch; a tqdm bar counts
    finished programs."""
    from dynasor.programs import SelfConsistency
    from dynasor.runtime.runtime import ProgramRuntime

    programs = [SelfConsistency(it.prompt, cap=cap, detect_at=detect_at, sampling_params=sampling_params)
                for it in items]
    recorder = RecordingBackend(backend)
    runtime = ProgramRuntime(recorder, policy, max_concurrent_programs=concurrency)
    results, wall = await runtime.run_with_progress(programs, desc)
    return LiveRun(results, [recorder.profile(p.program_id, it) for p, it in zip(programs, items)], wall)


async def run_self_consistency(url: str, items: Sequence[Labelled], policy: "Policy", cap: int, detect_at: int,
                               sampling_params: Mapping[str, Any], concurrency: int = 8,
                               desc: str = "programs") -> LiveRun:
    """``run_programs`` on a Dynasor server: tagged requests, a stop is one abort call."""
    from dynasor.client import AsyncDynasorClient
    from dynasor.runtime.backends import DynasorBackend

    async with AsyncDynasorClient(url) as client:
        return await run_programs(DynasorBackend(client), items, policy, cap, detect_at, sampling_params,
                                  concurrency, desc)


def threshold_grid(spec: str) -> list[float]:
    """``"0:1:0.05"`` (inclusive range) or ``"0.5,0.7,0.9"``."""
    if ":" in spec:
        start, stop, step = (float(x) for x in spec.split(":"))
        return [round(start + i * step, 6) for i in range(int(round((stop - start) / step)) + 1)]
    return [float(x) for x in spec.split(",")]


def sampling_params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens,
            "stop": [codecs.decode(s, "unicode_escape") for s in args.stop or ["\\n"]]}


def _generated_items(n: int, levels: str, seed: int) -> tuple[list[Labelled], dict[str, Any]]:
    """Arithmetic problems from ``benchmark/datasets`` (not installed: found from the source checkout)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "benchmark" / "datasets").is_dir():
        raise SystemExit("--generate needs the Dynasor source checkout (benchmark/datasets); "
                         "write a JSONL with `python -m benchmark.datasets.arithmetic` and pass --problems")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmark.datasets.arithmetic import generate, make_prompt, parse_levels

    generated = generate(n, seed, parse_levels(levels))
    return [Labelled(p.id, make_prompt(p), p.answer, p.level, p.source) for p in generated.problems], generated.metadata


def add_generation_args(ap: argparse.ArgumentParser, cap: int = 10) -> None:
    """Flags shared with the batch benchmarks: engine sampling and program shape."""
    ap.add_argument("--cap", type=int, default=cap, help="branches per program (the resource cap)")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--stop", action="append", help="stop string, repeatable, backslash escapes (default \\n)")
    ap.add_argument("--concurrency", type=int, default=8, help="programs in flight at once")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="dynasor calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--problems", help="labelled JSONL: question|problem, answer, optional id, prompt, level")
    src.add_argument("--generate", type=int, metavar="N", help="N generated arithmetic problems (source checkout)")
    src.add_argument("--profiles", help="recorded profiles JSONL: skip the live run")
    ap.add_argument("--url", help="Dynasor server for the live run")
    ap.add_argument("--levels", default="1:0.5,2:0.5", help="level mix for --generate")
    ap.add_argument("--seed", type=int, default=0, help="seed for --generate")
    ap.add_argument("--limit", type=int, help="first N problems of --problems")
    ap.add_argument("--prompt-template", default="{question}", help="prompt for rows without a 'prompt' field")
    add_generation_args(ap)
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
        from dynasor.runtime.policies import EvenAllocation

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
