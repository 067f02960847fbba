"""Running per-request aggregates of the per-token entropy and confidence stream."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dynasor.core.window import LowestWindowMean


class TokenStatsAggregate:
    """Token count, mean entropy and DeepConf's lowest window confidence of one request (the
    minimum, over sliding windows of ``window`` tokens, of the mean top-k confidence; a request
    shorter than one window has the mean over its tokens). ``stop_below``: the request's DeepConf
    early-stop threshold, if it set one."""

    def __init__(self, window: int, stop_below: float | None = None) -> None:
        self.window = window
        self.stop_below = stop_below
        self.entropy_sum = 0.0
        self.confidence = LowestWindowMean(window)

    @property
    def tokens(self) -> int:
        return self.confidence.count

    def add(self, entropy: float, confidence: float) -> None:
        self.entropy_sum += entropy
        self.confidence.add(confidence)

    @property
    def below_threshold(self) -> bool:
        """The latest full window's mean confidence is under the request's stop threshold."""
        last = self.confidence.last_full
        return self.stop_below is not None and last is not None and last < self.stop_below

    @property
    def mean_entropy(self) -> float | None:
        return self.entropy_sum / self.tokens if self.tokens else None

    @property
    def lowest_window_confidence(self) -> float | None:
        return self.confidence.value

    def summary(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "mean_entropy": self.mean_entropy,
            "lowest_window_confidence": self.lowest_window_confidence,
        }


def first_window_below(confidences: Iterable[float], window: int, stop_below: float) -> int | None:
    """The token (1-based) at which a request with ``stop_below_confidence`` = ``stop_below``
    crosses it (``below_threshold`` first true), None if it never does: the rule the scheduler
    applies token by token, for offline replays of recorded confidences."""
    aggregate = TokenStatsAggregate(window, stop_below)
    for value in confidences:
        aggregate.add(0.0, value)
        if aggregate.below_threshold:
            return aggregate.tokens
    return None
