"""DeepConf's use of token confidence in self-consistency (Fu et al., 2025, "Deep Think with Confidence").

A branch's confidence is its lowest group confidence: the minimum, over sliding windows of
``window`` tokens, of the mean ``topk_confidence`` the server returns per token (higher is surer).

- ``filter`` (DeepConf offline): keep the ``eta`` share of answered branches with the highest
  confidence (at least one) and vote among them weighted by confidence. ``eta`` 0.1 is the paper's
  DeepConf-low, 0.9 DeepConf-high.
- ``online``: the first ``warmup`` branches run to the end; the stop threshold is the ``1 - eta``
  quantile of their confidences, and every later branch carries it as ``stop_below_confidence``
  (the scheduler ends it, finish reason abort "low_confidence", once a window falls below it: such a
  branch brings no answer). The final vote is the ``filter`` vote over the branches that answered.

Both combine with the certaindex stop: detection still reads the answer clusters at ``detect_at``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dynasor.certaindex.voting import majority_vote, weighted_vote
from dynasor.core.generation import Generation
from dynasor.core.stats import quantile
from dynasor.core.window import lowest_window_mean

CONFIDENCE_MODES = ("filter", "online")


@dataclass(frozen=True)
class DeepConf:
    mode: str = "filter"
    eta: float = 0.1  # share of branches kept (filter) / above the online threshold
    warmup: int = 4  # online: branches that set the threshold
    window: int = 2048  # tokens per group-confidence window

    def __post_init__(self) -> None:
        if self.mode not in CONFIDENCE_MODES:
            raise ValueError(f"mode must be one of {CONFIDENCE_MODES}, got {self.mode!r}")
        if not 0 < self.eta <= 1:
            raise ValueError(f"eta must be in (0, 1], got {self.eta}")
        if self.warmup < 1 or self.window < 1:
            raise ValueError(f"warmup and window must be >= 1, got {self.warmup}, {self.window}")

    @property
    def online(self) -> bool:
        return self.mode == "online"

    def confidence(self, generation: Generation) -> float | None:
        """The branch's lowest group confidence, None when the server returned no token stats."""
        return self.confidence_of(generation.meta_info.get("topk_confidence"))

    def confidence_of(self, values: Sequence[float] | None) -> float | None:
        """Lowest group confidence of a branch's per-token ``topk_confidence`` (None: no stats)."""
        return lowest_window_mean(values, self.window) if values else None

    def threshold(self, confidences: Sequence[float]) -> float | None:
        """Online stop threshold from the warm-up branches' confidences (None: none had stats)."""
        return quantile(confidences, 1 - self.eta) if confidences else None

    def vote(self, answers: Sequence[str | None], confidences: Sequence[float | None]) -> str | None:
        """Confidence-weighted vote over the top ``eta`` share; a plain majority without stats."""
        scored = [(c, i) for i, (a, c) in enumerate(zip(answers, confidences)) if a is not None and c is not None]
        if not scored:
            return majority_vote(answers)
        kept = {i: c for c, i in sorted(scored, reverse=True)[:max(1, math.ceil(self.eta * len(scored)))]}
        return weighted_vote([answers[i] if i in kept else None for i in range(len(answers))],
                             [kept.get(i, 0.0) for i in range(len(answers))])
