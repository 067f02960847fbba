"""Per-token statistics of the sampling step: one type from the kernel to the response.

The kernel returns one ``TokenStats`` of tensors (a value per batch row), the sampler hook files one
of floats per generated token, and the field names are the ``meta_info`` keys (and the OpenAI
``token_stats`` keys) the values are returned under.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class TokenStats(Generic[T]):
    entropy: T  # nats, of softmax(logits) at T = 1: the model's own uncertainty
    sampling_entropy: T  # at the request's temperature; greedy: log(#tied maxima)
    topk_confidence: T  # DeepConf: -mean log-probability of the k most likely tokens (T = 1)

    def values(self) -> tuple[T, T, T]:
        return (self.entropy, self.sampling_entropy, self.topk_confidence)


TOKEN_STATS_KEYS: tuple[str, ...] = tuple(f.name for f in fields(TokenStats))
