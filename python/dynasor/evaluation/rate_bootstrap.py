"""Bootstrap intervals of attainment and maximum-rate ratios (pure; the online benchmark and the
simulator use them).

Every system plays the same seeded trace at every rate, so program ``i`` of a window is the same
problem arriving at the same scaled time for every system: a replicate resamples program indices
once per rate and applies them to every system alike (a paired bootstrap). Per replicate it
recomputes each system's attainment at every rate, its maximum sustained rate
(``metrics.max_sustained_rate``) and the ratio to each baseline. Intervals are the 2.5th and 97.5th
percentiles of the replicates. A ratio is defined in a replicate only when both rates are
interpolated (neither system sustained every swept rate or none); the share of replicates with a
defined ratio is reported next to the interval, and an interval is only given when at least
``MIN_DEFINED`` of them were.

Each program's outcome at a rate is ``metrics.met`` at its deadline: True, False, or None
(undetermined, counted as missed like ``metrics.attainment``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from dynasor.evaluation.rate_curve import max_sustained_rate

MIN_DEFINED = 0.8
Outcomes = Mapping[float, Sequence[bool | None]]  # rate -> each program's outcome, in trace order


def percentile_interval(values: list[float], low: float = 0.025, high: float = 0.975) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles (by default) of bootstrap replicates."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return ordered[round(low * last)], ordered[round(high * last)]


def _attainment(outcomes: Sequence[bool | None], picks: Sequence[int]) -> float:
    return sum(outcomes[i] is True for i in picks) / len(picks)


def attainment_interval(outcomes: Sequence[bool | None], replicates: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of one window's attainment."""
    rng, n = random.Random(seed), len(outcomes)
    values = [_attainment(outcomes, [rng.randrange(n) for _ in range(n)]) for _ in range(replicates)]
    return percentile_interval(values)


def rate_ratio_intervals(systems: Mapping[str, Outcomes], baselines: Sequence[str], target: float,
                         replicates: int = 2000, seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """Per system and baseline: the 95% interval of (max sustained rate) / (the baseline's), from
    paired replicates; ``excludes_1`` says whether the interval lies wholly above or below 1."""
    rates = sorted(set.intersection(*(set(o) for o in systems.values()))) if systems else []
    sizes = {rate: min(len(o[rate]) for o in systems.values()) for rate in rates}
    rng = random.Random(seed)
    ratios: dict[tuple[str, str], list[float]] = {(s, b): [] for s in systems for b in baselines if b in systems}
    for _ in range(replicates):
        picks = {rate: [rng.randrange(n) for _ in range(n)] for rate, n in sizes.items()}
        bounds = {name: max_sustained_rate([(rate, _attainment(outcomes[rate], picks[rate])) for rate in rates],
                                           target) for name, outcomes in systems.items()}
        for (name, base), found in ratios.items():
            ours, theirs = bounds[name], bounds[base]
            if ours.exact and theirs.exact and theirs.low > 0:
                found.append(ours.low / theirs.low)
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in systems}
    for (name, base), found in ratios.items():
        defined = len(found) / replicates
        entry: dict[str, Any] = {"defined": defined, "low": None, "high": None, "excludes_1": None}
        if found and defined >= MIN_DEFINED:
            low, high = percentile_interval(found)
            entry.update(low=low, high=high, excludes_1=low > 1.0 or high < 1.0)
        out[name][base] = entry
    return out
