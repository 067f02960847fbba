"""A paired bootstrap interval for a ratio of means (pure, no server).

Benchmarks that alternate two settings round by round on one server (the round is the pair: both
settings saw the same machine state) resample whole rounds: per replicate the ratio of the two
settings' means over the resampled rounds; the simulator's sweeps pair programs (each system
played the same ones). The interval is the 2.5th to 97.5th percentile.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def paired_ratio_interval(numerator: Sequence[float], denominator: Sequence[float], replicates: int = 2000,
                          seed: int = 0) -> dict[str, Any]:
    """``mean(numerator) / mean(denominator)`` with its 95% interval over resampled pairs."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError("need the same positive number of values on both sides (one pair per round)")
    n, rng = len(numerator), random.Random(seed)
    ratios = []
    for _ in range(replicates):
        picks = [rng.randrange(n) for _ in range(n)]
        ratios.append(sum(numerator[i] for i in picks) / sum(denominator[i] for i in picks))
    ratios.sort()
    low, high = ratios[round(0.025 * (replicates - 1))], ratios[round(0.975 * (replicates - 1))]
    return {"pairs": n, "ratio": sum(numerator) / sum(denominator), "low": low, "high": high,
            "excludes_1": low > 1.0 or high < 1.0}
