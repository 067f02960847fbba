"""What a scheduler process tells the main process about itself: one message per data-parallel rank.

The scheduler puts ``SchedulerState.to_json()`` under ``STATE_KEY`` of SGLang's internal state
(``get_internal_state``, which also serves ``/server_info``); the main process's routes read it back
with ``SchedulerState.from_json``. Both sides name the same fields, so a field added on one side
and not the other is a type error, not a silent default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATE_KEY = "dynasor"


@dataclass(frozen=True)
class SchedulerLoad:
    running: int = 0
    waiting: int = 0
    used_tokens: int = 0  # KV tokens in use
    cached_tokens: int = 0  # KV tokens the radix cache holds (evictable)
    capacity_tokens: int = 0
    queue_reorders: int = 0  # scheduling steps that wrote a new queue order
    queue_full_reranks: int = 0  # of which ranked the queue from scratch


@dataclass(frozen=True)
class SchedulerState:
    sglang_version: str
    dp_rank: int
    load: SchedulerLoad
    schedule_policy: str
    decode_rate: float  # tokens per second, recent
    programs: dict[str, dict[str, Any]]  # the program table's snapshot, by program key
    full_rerank_reasons: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SchedulerState:
        return cls(**{**raw, "load": SchedulerLoad(**raw["load"])})
