"""Which of N simulated engines a request reaches (data-parallel ranks, or servers behind a router).

- ``round_robin``: SGLang's data-parallel controller by default (sglang==0.5.23,
  ``--load-balance-method auto`` is ``round_robin`` without PD disaggregation): the i-th request
  to rank i mod N, blind to programs, so a program's branches are spread over the ranks.
- ``total_requests``: SGLang's ``--load-balance-method total_requests``: the rank with the fewest
  running + waiting requests, per request.
- ``program``: Dynasor's placement, the live rule itself (``scheduler.program_placement``): a
  program's first request to the rank with the fewest outstanding tagged requests, the rest of
  the program to the same rank; untagged requests round robin. Behind SGLang's router (manual
  policy, ``min_load`` assignment of a new routing key) the rule is the same.

A request is placed when it reaches the server (the ``submit`` event), from the engines' state then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from dynasor.scheduler.program_placement import ProgramPlacement
from dynasor.sim.engine import SimEngine
from dynasor.sim.request import SimRequest


class Dispatch(Protocol):
    def rank(self, req: SimRequest, engines: Sequence[SimEngine], now: float) -> int: ...


def outstanding(engine: SimEngine, tagged_only: bool = False) -> int:
    """Requests the engine holds (running, waiting, in a chunked prefill)."""
    held = [*engine.running, *engine.queue.waiting, *([engine.chunked] if engine.chunked else [])]
    return sum(1 for r in held if r.program_id is not None or not tagged_only)


class RoundRobin:
    def __init__(self) -> None:
        self._next = 0

    def rank(self, req: SimRequest, engines: Sequence[SimEngine], now: float) -> int:
        rank, self._next = self._next % len(engines), self._next + 1
        return rank


class TotalRequests:
    def rank(self, req: SimRequest, engines: Sequence[SimEngine], now: float) -> int:
        return min(range(len(engines)), key=lambda r: (outstanding(engines[r]), r))


class ProgramAffinity:
    def __init__(self, ranks: int, ttl_s: float = float("inf")) -> None:
        self.placement = ProgramPlacement(ranks, ttl_s)
        self.untagged = RoundRobin()

    def rank(self, req: SimRequest, engines: Sequence[SimEngine], now: float) -> int:
        if req.program_id is None:
            return self.untagged.rank(req, engines, now)
        return self.placement.place([req.program_id], lambda: [outstanding(e, tagged_only=True) for e in engines],
                                    now=now)


DISPATCHES: dict[str, Callable[[int], Dispatch]] = {
    "round_robin": lambda ranks: RoundRobin(),
    "total_requests": lambda ranks: TotalRequests(),
    "program": ProgramAffinity,
}
