"""DeepConf's lowest group confidence: the minimum over sliding windows of a stream's mean."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class LowestWindowMean:
    """Streaming minimum, over windows of ``window`` consecutive values, of the window mean; a
    stream shorter than one window has the mean of its values."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.count = 0
        self.total = 0.0
        self._recent: deque[float] = deque()
        self._recent_sum = 0.0
        self._lowest_full: float | None = None
        self.last_full: float | None = None  # mean of the latest full window (None before the first)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self._recent.append(value)
        self._recent_sum += value
        if len(self._recent) > self.window:
            self._recent_sum -= self._recent.popleft()
        if len(self._recent) == self.window:
            mean = self.last_full = self._recent_sum / self.window
            if self._lowest_full is None or mean < self._lowest_full:
                self._lowest_full = mean

    def extend(self, values: Iterable[float]) -> LowestWindowMean:
        for value in values:
            self.add(value)
        return self

    @property
    def value(self) -> float | None:
        if self._lowest_full is not None:
            return self._lowest_full
        return self.total / self.count if self.count else None


def lowest_window_mean(values: Iterable[float], window: int) -> float | None:
    """``LowestWindowMean`` of a whole sequence (None when it is empty)."""
    return LowestWindowMean(window).extend(values).value
