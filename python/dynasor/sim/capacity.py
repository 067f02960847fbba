"""Where capacity binds in a simulated run: how often requests wait, how full the KV pool is.

A long-reasoning workload is interesting only where the pool or the batch runs out; these figures
say whether it did (the issue's "share of steps with a waiting queue, KV use, retractions and
recomputed tokens"), so a result that shows no gain can be told apart from one that never queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class CapacityMeter:
    """Per-iteration counts of one engine (or, summed, of several)."""

    steps: int = 0
    steps_with_waiting: int = 0  # iterations that began with a request in the waiting queue
    seconds: float = 0.0
    kv_use_seconds: float = 0.0  # integral of (KV tokens held / pool) over iteration time
    peak_kv_use: float = 0.0

    def record_run(self, steps: int, waiting: bool, seconds: float, kv_use_seconds: float, peak_kv_use: float) -> None:
        """``steps`` iterations in a row, all with or all without a waiting queue, lasting ``seconds``
        together; ``kv_use_seconds``: their pool use (0..1) integrated over that time."""
        self.steps += steps
        self.steps_with_waiting += steps if waiting else 0
        self.seconds += seconds
        self.kv_use_seconds += kv_use_seconds
        self.peak_kv_use = max(self.peak_kv_use, peak_kv_use)

    @classmethod
    def total(cls, meters: Iterable[CapacityMeter]) -> CapacityMeter:
        out = cls()
        for m in meters:
            out.steps += m.steps
            out.steps_with_waiting += m.steps_with_waiting
            out.seconds += m.seconds
            out.kv_use_seconds += m.kv_use_seconds
            out.peak_kv_use = max(out.peak_kv_use, m.peak_kv_use)
        return out

    def to_json(self, programs: int, retractions: int, recomputed_tokens: int) -> dict[str, Any]:
        """With the run's retractions and the KV they threw away (computed again on readmission)."""
        return {"steps": self.steps,
                "waiting_step_share": self.steps_with_waiting / self.steps if self.steps else 0.0,
                "mean_kv_use": self.kv_use_seconds / self.seconds if self.seconds else 0.0,
                "peak_kv_use": self.peak_kv_use, "retractions": retractions,
                "recomputed_tokens_per_program": recomputed_tokens / programs if programs else 0.0}
