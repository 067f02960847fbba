"""Maximum sustained rate from an attainment-vs-rate sweep, and ratios between two systems'.

Shared by the online benchmark and the simulator, so both credit a system the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INF = math.inf


@dataclass(frozen=True)
class RateBound:
    """The maximum rate sustaining the target lies in [low, high]; equal when interpolated."""

    low: float
    high: float
    kind: str  # "interpolated" | "above-swept" (every rate sustained) | "below-swept" (none)

    @property
    def exact(self) -> bool:
        return self.kind == "interpolated"

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.low if self.exact else None, "low": self.low,
                "high": None if self.high == INF else self.high, "kind": self.kind}


def max_sustained_rate(points: Sequence[tuple[float, float]], target: float = 0.9) -> RateBound:
    """Walk the swept (rate, attainment) points upward; at the first rate below ``target``
    interpolate linearly from the previous rate (which sustained it). Noise above that first drop
    is ignored: a system is credited only up to the first rate it failed."""
    pts = sorted(points)
    if not pts:
        raise ValueError("no swept rates")
    if pts[0][1] < target:
        return RateBound(0.0, pts[0][0], "below-swept")
    for (r0, a0), (r1, a1) in itertools.pairwise(pts):
        if a1 < target:
            rate = r0 + (a0 - target) / (a0 - a1) * (r1 - r0)
            return RateBound(rate, rate, "interpolated")
    return RateBound(pts[-1][0], INF, "above-swept")


def rate_ratio(ours: RateBound, base: RateBound) -> tuple[float | None, float | None]:
    """Interval of ours / base from the two rate intervals; None where unbounded or unknown."""
    low = ours.low / base.high if base.high not in (0.0, INF) else None
    high = ours.high / base.low if base.low > 0 and ours.high != INF else None
    return low, high
