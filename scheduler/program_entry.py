"""What the program table keeps per request and per program (plain data, no SGLang)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dynasor.scheduler.ordering import ProgramView
from dynasor.scheduler.token_stats_aggregate import TokenStatsAggregate


def program_state(waiting: int, running: int) -> str:
    """``running`` if any request runs, else ``waiting`` if any waits, else ``done``."""
    if running:
        return "running"
    if waiting:
        return "waiting"
    return "done"


class RequestState(str, Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass
class RequestRecord:
    rid: str
    program_id: str
    prompt_tokens: int
    queued_at: float
    max_new_tokens: int | None = None
    state: RequestState = RequestState.WAITING
    generated_tokens: int = 0
    token_stats: TokenStatsAggregate | None = None
    deferred: bool = False  # optional work of its program (tag ``deferred``)
    low_confidence: bool = False  # ended (or being ended) by its stop_below_confidence


@dataclass
class ProgramEntry:
    program_id: str
    key: str
    first_arrival: float
    last_service: float | None = None
    idle_since: float | None = None
    waiting: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    undeferred_live: int = 0  # waiting or running requests that are not deferred
    finished: int = 0
    aborted: int = 0
    low_confidence_stops: int = 0  # requests ended by their stop_below_confidence (counted in aborted)
    prompt_tokens: int = 0
    generated_tokens: int = 0
    entropy_tokens: int = 0
    entropy_sum: float = 0.0
    finished_token_stats: list[dict[str, Any]] = field(default_factory=list)
    finished_generated_tokens: int = 0  # of requests that finished normally (for the SJF estimate)
    remaining_work_hint: float | None = None  # tokens, from the client's tag
    hint_generated_tokens: int = 0  # generated_tokens when the hint arrived
    remaining_work: float = 0.0  # the latest estimate, for display
    waiting_time: float = 0.0  # seconds its oldest waiting request has waited, at the last snapshot
    escalations: int = 0
    escalated: bool = False
    version: int = 0  # bumped by every event that can change the program's scheduling view
    cached_view: tuple[int, float, ProgramView] | None = None  # (version, prior, view)
    # Work of the waiting requests, for one expected output length: (expected, tokens). Progress
    # moves only running requests, so a step re-sums a program's running requests, not its queue.
    waiting_work: tuple[float, float] | None = None

    @property
    def mean_entropy(self) -> float | None:
        return self.entropy_sum / self.entropy_tokens if self.entropy_tokens else None

    @property
    def live(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def state(self) -> str:
        return program_state(waiting=len(self.waiting), running=len(self.running))

    def summary(self) -> dict[str, Any]:
        """Counts and times only: no program id and no request id, so it can be shown to anyone."""
        return {
            "program_key": self.key,
            "state": self.state,
            "requests": {
                "waiting": len(self.waiting),
                "running": len(self.running),
                "finished": self.finished,
                "aborted": self.aborted,
                "total": len(self.waiting) + len(self.running) + self.finished + self.aborted,
            },
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "first_arrival": self.first_arrival,
            "last_service": self.last_service,
            "mean_entropy": self.mean_entropy,
            "entropy_tokens": self.entropy_tokens,
            "low_confidence_stops": self.low_confidence_stops,
            "finished_request_token_stats": self.finished_token_stats,
            "estimated_remaining_work": self.remaining_work,
            "waiting_time": self.waiting_time,
            "remaining_work_hint": self.remaining_work_hint,
            "escalations": self.escalations,
        }
