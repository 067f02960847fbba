"""Offline replay of recorded self-consistency programs (paper App. D.2.2), and threshold choice.

A ``Profile`` is one program run to its cap under even allocation: its finished branches' answers
and tokens, in arrival order. ``replay_profile`` replays "stop at the detection step if certaindex ≥
threshold" on it with the program's own rules (``at_detection`` of ``SelfConsistency``, the
threshold rule of ``StaticThreshold``, ``majority_vote``), so a replayed policy is the live one:
certaindex over the first ``detect_at`` answers, majority over the answers used, tokens = sum over
the branches used. Branches still running at a live stop are aborted, and their partial tokens (a
few, counted live) are not replayed.

``calibrate`` chooses the pair (detect_at, threshold) with the fewest tokens whose accuracy on a
calibration split is ≥ even accuracy − ε, and reports it against even allocation on a separate
held-out split (seeded), so the reported saving is not measured on the data that chose it
(docs/paper.md, calibration: leakage). The command is ``dynasor calibrate`` (``program_runtime/calibrate.py``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dynasor.certaindex import answer_certaindex, is_correct, majority_vote
from dynasor.certaindex.decision import at_detection
from dynasor.program_runtime.allocation import StaticThreshold


@dataclass(frozen=True)
class Branch:
    """A finished branch; ``confidences``: its per-token ``topk_confidence`` when the server
    returned token stats (what DeepConf's offline replay reads)."""

    answer: str | None
    tokens: int
    confidences: tuple[float, ...] | None = None


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
    def from_json(cls, row: Mapping[str, Any]) -> Profile:
        return cls(**{**row, "branches": tuple(Branch(b["answer"], b["tokens"], _floats(b.get("confidences")))
                                               for b in row["branches"])})


def _floats(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return tuple(values) if values is not None else None


def save_profiles(path: str | Path, profiles: Sequence[Profile]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p.to_json()) + "\n" for p in profiles)


def load_profiles(path: str | Path) -> list[Profile]:
    with open(path, encoding="utf-8") as f:
        return [Profile.from_json(json.loads(line)) for line in f if line.strip()]


@dataclass(frozen=True)
class ReplayOutcome:
    answer: str | None
    correct: bool
    tokens: int
    stopped: bool


def replay_profile(profile: Profile, threshold: float | None, detect_at: int) -> ReplayOutcome:
    """Replay one program; ``threshold=None`` is even allocation (never stop)."""
    used = profile.branches
    if threshold is not None and at_detection(detect_at, detect_at, len(used)):
        head = used[:detect_at]
        if StaticThreshold(threshold).stops(answer_certaindex([b.answer for b in head])):
            used = head
    answer = majority_vote([b.answer for b in used])
    return ReplayOutcome(answer, is_correct(answer, profile.gold), sum(b.tokens for b in used),
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
    outcomes = [replay_profile(p, threshold, detect_at or 0) for p in profiles]
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
