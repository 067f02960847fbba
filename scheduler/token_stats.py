"""Running per-request aggregates of the per-token entropy and confidence stream."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenStatsAggregate:
    """Running token-confidence aggregates of one request.

    ``lowest_window_confidence`` is DeepConf's lowest group confidence: the minimum, over sliding
    windows of ``window`` consecutive tokens, of the mean top-k confidence; a request shorter than
    one window has the mean over its tokens.
    """

    window: int
    tokens: int = 0
    entropy_sum: float = 0.0
    confidence_sum: float = 0.0
    lowest_full_window: float | None = None
    _recent: deque[float] = field(default_factory=deque)
    _recent_sum: float = 0.0

    def add(self, entropy: float, confidence: float) -> None:
        self.tokens += 1
        self.entropy_sum += entropy
        self.confidence_sum += confidence
        self._recent.append(confidence)
        self._recent_sum += confidence
        if len(self._recent) > self.window:
            self._recent_sum -= self._recent.popleft()
        if len(self._recent) == self.window:
            mean = self._recent_sum / self.window
            if self.lowest_full_window is None or mean < self.lowest_full_window:
                self.lowest_full_window = mean

    @property
    def mean_entropy(self) -> float | None:
        return self.entropy_sum / self.tokens if self.tokens else None

    @property
    def lowest_window_confidence(self) -> float | None:
        if self.lowest_full_window is not None:
            return self.lowest_full_window
        return self.confidence_sum / self.tokens if self.tokens else None

    def summary(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "mean_entropy": self.mean_entropy,
            "lowest_window_confidence": self.lowest_window_confidence,
        }
