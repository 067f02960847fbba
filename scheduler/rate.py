"""Exponentially weighted decode rate (tokens per second), for service-time estimates."""

from __future__ import annotations


class RateMeter:
    """Feed ``add(tokens, now)`` as tokens are generated; ``rate()`` is a smoothed tokens/s."""

    def __init__(self, half_life_s: float = 10.0, min_interval_s: float = 0.5, max_gap_s: float = 2.0) -> None:
        self.half_life_s = half_life_s
        self.min_interval_s = min_interval_s
        self.max_gap_s = max_gap_s  # a longer pause between tokens is idle time, not slow decoding
        self._last: float | None = None
        self._rate: float | None = None
        self._pending = 0
        self._since: float | None = None

    def add(self, tokens: int, now: float) -> None:
        if tokens <= 0:
            return
        if self._since is None or (self._last is not None and now - self._last > self.max_gap_s):
            self._since, self._pending, self._last = now, 0, now  # this call only opens the window
            return
        self._last = now
        self._pending += tokens
        elapsed = now - self._since
        if elapsed < self.min_interval_s:
            return
        sample = self._pending / elapsed
        if self._rate is None:
            self._rate = sample
        else:
            weight = 0.5 ** (elapsed / self.half_life_s)
            self._rate = weight * self._rate + (1 - weight) * sample
        self._pending, self._since = 0, now

    def rate(self, default: float) -> float:
        return self._rate if self._rate else default
