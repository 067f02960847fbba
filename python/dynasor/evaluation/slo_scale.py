"""The tightest SLO a system meets at one rate, and how much tighter than a baseline's (pure).

A program's *slowdown* is its latency over its solo latency (the program alone on the machine);
one that never finished has an infinite slowdown. With deadlines set at ``scale`` × solo latency,
the share of programs that meet theirs is the share with slowdown <= scale, so the tightest scale
at which a system attains ``target`` is the ``ceil(target × n)``-th smallest slowdown. A system's
SLO is "x times tighter" than a baseline's when the baseline's tightest scale is x times its own.
Intervals come from a paired bootstrap: each replicate resamples program indices once and applies
them to every system (the same programs arrived at the same times in every system's run).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from dynasor.evaluation.rate_bootstrap import MIN_DEFINED, percentile_interval


def tightest_scale(slowdowns: Sequence[float], target: float = 0.9) -> float:
    """Smallest SLO scale at which ``target`` of the programs meet their deadline (inf: never)."""
    if not slowdowns:
        raise ValueError("no programs")
    rank = max(1, math.ceil(target * len(slowdowns) - 1e-9))
    return sorted(slowdowns)[rank - 1]


def slo_ratio_intervals(systems: Mapping[str, Sequence[float]], baselines: Sequence[str], target: float = 0.9,
                        replicates: int = 1000, seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """Per system and baseline: (baseline's tightest scale) / (the system's), the point value on
    all programs and the 95% interval of paired replicates. A replicate where either scale is
    infinite gives no ratio; an interval is only given when at least 80% of replicates did."""
    names = list(systems)
    n = min(len(v) for v in systems.values())
    rng = random.Random(seed)
    found: dict[tuple[str, str], list[float]] = {(s, b): [] for s in names for b in baselines if b in systems}
    for _ in range(replicates):
        picks = [rng.randrange(n) for _ in range(n)]
        scales = {name: tightest_scale([systems[name][i] for i in picks], target) for name in names}
        for (name, base), values in found.items():
            if math.isfinite(scales[name]) and math.isfinite(scales[base]) and scales[name] > 0:
                values.append(scales[base] / scales[name])
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in names}
    for (name, base), values in found.items():
        ours, theirs = tightest_scale(systems[name], target), tightest_scale(systems[base], target)
        point = theirs / ours if math.isfinite(ours) and math.isfinite(theirs) and ours > 0 else None
        defined = len(values) / replicates
        entry: dict[str, Any] = {"ratio": point, "defined": defined, "low": None, "high": None, "excludes_1": None}
        if values and defined >= MIN_DEFINED:
            low, high = percentile_interval(values)
            entry.update(low=low, high=high, excludes_1=low > 1.0 or high < 1.0)
        out[name][base] = entry
    return out
