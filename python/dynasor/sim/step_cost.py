"""How long one engine iteration takes: the simulator's only contact with hardware.

A prefill (extend) iteration is described by its requests' (new tokens, context before them); a
decode iteration by its batch size and the KV tokens it reads. ``LinearStepCost`` is the form
fitted on the CPU server (``cpu-smollm2``); ``gpu_profile.GpuStepCost`` builds one from measured
per-layer operator times. Every profile states its assumptions (``describe``), which go into the
result JSON of every run that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol


class StepCost(Protocol):
    @property
    def name(self) -> str:
        ...

    def prefill_seconds(self, extends: Sequence[tuple[int, int]]) -> float:
        """One prefill iteration over requests given as (new tokens, tokens already in context)."""
        ...

    def decode_seconds(self, batch: int, kv_tokens: int) -> float:
        """One decode iteration: ``batch`` requests, ``kv_tokens`` tokens of context in all."""
        ...

    def describe(self) -> dict[str, Any]:
        ...


@dataclass(frozen=True)
class LinearStepCost:
    """prefill = fixed + per_token × new + per_cached_token × Σ cached context
    + per_token_context × Σ new × (context + new / 2) / 1000;
    decode = fixed + per_request × batch + per_kv_token × kv_tokens.

    The cached-context term is the cost of reading a cached prefix into an extend (on the CPU's
    ``torch_native`` backend it dominates short extends over long cached prompts)."""

    name: str
    prefill_fixed_s: float
    prefill_per_token_s: float
    prefill_per_token_context_s: float  # attention: per new token per 1000 context tokens
    decode_fixed_s: float
    decode_per_request_s: float
    decode_per_kv_token_s: float
    source: str = "stated constants"
    prefill_per_cached_token_s: float = 0.0

    def prefill_seconds(self, extends: Sequence[tuple[int, int]]) -> float:
        new = sum(n for n, _ in extends)
        cached = sum(c for _, c in extends)
        attention = sum(n * (c + n / 2) for n, c in extends) / 1000
        return (self.prefill_fixed_s + self.prefill_per_token_s * new + self.prefill_per_cached_token_s * cached
                + self.prefill_per_token_context_s * attention)

    def decode_seconds(self, batch: int, kv_tokens: int) -> float:
        return self.decode_fixed_s + self.decode_per_request_s * batch + self.decode_per_kv_token_s * kv_tokens

    def describe(self) -> dict[str, Any]:
        return {"form": "linear", **asdict(self)}
