"""Small statistics with one home (no numpy: the core stays dependency-free)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def quantile(values: Iterable[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of an empty sequence")
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
