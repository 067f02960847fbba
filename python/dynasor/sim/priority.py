"""Stock SGLang's priority scheduling, as the simulated engine plays it (sglang==0.5.23,
``--enable-priority-scheduling`` with the ``fcfs`` base policy; read from its scheduler and
written here as rules, not code).

A client sends ``priority`` with every request. With ``--schedule-low-priority-values-first`` a
lower value is more important; a request without one is the least important of all.

- **Queue order**: by importance, ties by the time the request (re-)entered the queue.
- **Preemption** happens only when the running batch has no free request slot
  (``--max-running-requests``), never for want of KV: the waiting request at the head of the walk
  may take running requests' places. Candidates are the running requests, least important first
  and, among equals, the latest queued first; one qualifies only if it is less important by more
  than ``--priority-scheduling-preemption-threshold`` (10); the scan stops at the first that does
  not. Victims are taken until their future-decode reservations (``new_token_ratio`` × remaining
  ``max_new_tokens``, clipped) cover what the newcomer is short of; so at least one is taken.
  Victims free their KV, keep their output and go back to the queue (recomputed when readmitted),
  even if the newcomer then does not fit after all.
- **Retraction** (``--retraction-policy priority``) when decode runs out of KV: least important
  first, then fewest output tokens, then longest prompt (the default ``length`` policy skips the
  first key).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dynasor.sim.request import SimRequest


@dataclass(frozen=True)
class PriorityScheduling:
    preemption_threshold: int = 10  # --priority-scheduling-preemption-threshold
    low_values_first: bool = True  # --schedule-low-priority-values-first
    retraction_by_priority: bool = True  # --retraction-policy priority

    def rank(self, req: SimRequest) -> float:
        """Smaller is more important; a request without a priority ranks last."""
        if req.priority is None:
            return math.inf
        return req.priority if self.low_values_first else -req.priority

    def queue_order(self, waiting: Sequence[SimRequest]) -> list[SimRequest]:
        return sorted(waiting, key=lambda r: (self.rank(r), r.queued_at))

    def victims(self, newcomer: SimRequest, running: Sequence[SimRequest], short: float,
                reservation: dict[str, float]) -> list[SimRequest]:
        """The running requests ``newcomer`` preempts, or [] when it may not: ``short`` is how many
        KV tokens it lacks (may be ≤ 0: one victim is still taken for its slot), ``reservation``
        each running request's future-decode reservation by rid."""
        chosen: list[SimRequest] = []
        for victim in sorted(running, key=lambda r: (-self.rank(r), -r.queued_at)):
            if not self.rank(victim) - self.rank(newcomer) > self.preemption_threshold:
                break
            chosen.append(victim)
            short -= reservation[victim.rid]
            if short <= 0:
                return chosen
        return []

    def retraction_key(self, req: SimRequest) -> tuple[float, int, int]:
        """Retracted first = smallest key."""
        return (-self.rank(req) if self.retraction_by_priority else 0.0, req.generated, -req.input_tokens)
