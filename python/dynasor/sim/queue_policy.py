"""The waiting-queue order of the simulated engine, per policy.

- ``fcfs``: SGLang's default, no sort: the queue in the order requests were put into it (a
  retracted request goes to the tail).
- ``lpm``: SGLang's longest-prefix-match: with at most ``prefix_match_max_waiting`` waiting
  requests, a stable sort by cached prefix (longest first), requests held back for in-batch prefix
  sharing last; above it the queue keeps its last order (SGLang falls back to fcfs for that pass).
- program policies (``gang``, ``gang-sjf``, ...): SGLang's ``lpm`` matching and in-batch check run
  first, then the order comes from ``dynasor.scheduler`` (``GroupOrder`` over the ``ProgramTable``
  views), kept between steps and fed what changed, as the server's ``QueueOrderer`` does.

In-batch prefix sharing (SGLang's ``_compute_prefix_matches``): walking the queue in order, a
request whose cached prefix is at most the threshold and whose prefix an earlier walked request
also needs (at least the threshold long) is held back for this pass.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from dynasor.scheduler.group_order import GroupOrder
from dynasor.scheduler.ordering import QueuePolicy, StarvationGuard
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.queue_step import advance, held_last, waiting_row
from dynasor.sim.priority import PriorityScheduling
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.routing_key import sort_by_routing_key


def held_for_prefix_sharing(queue: list[SimRequest], cached: Callable[[SimRequest], int],
                            threshold: int) -> set[str]:
    seen: set[str] = set()
    held: set[str] = set()
    for req in queue:
        if not req.segments or cached(req) > threshold:
            continue
        shared = 0
        for key, tokens in req.segments:  # the prefix an earlier walked request also needs
            if key not in seen:
                break
            shared += tokens
        if shared >= threshold:
            held.add(req.rid)
        else:
            seen.update(key for key, _ in req.segments)
    return held


RID = operator.attrgetter("rid")


class SimQueue:
    """The waiting queue and its policy; ``order(now, running)`` returns it in admission order."""

    def __init__(self, policy: QueuePolicy, limits: EngineLimits, table: ProgramTable,
                 cached: Callable[[SimRequest], int], rate: Callable[[], float],
                 guard: StarvationGuard | None = None, priority: PriorityScheduling | None = None,
                 routing_key: bool = False) -> None:
        self.policy, self.limits, self.table, self.cached, self.rate = policy, limits, table, cached, rate
        self.priority, self.routing_key = priority, routing_key
        if priority is not None and policy is not QueuePolicy.FCFS:
            raise ValueError("SGLang's priority scheduling runs on fcfs only (it refuses lpm)")
        if routing_key and (policy is not QueuePolicy.FCFS or priority is not None):
            raise ValueError("SGLang's routing-key policy replaces fcfs and takes no priorities")
        self.waiting: list[SimRequest] = []
        self.groups: GroupOrder[SimRequest] | None = None
        if not policy.is_stock:
            self.groups = GroupOrder(policy, guard or StarvationGuard())
        self._placed: dict[str, int] = {}  # rid -> cached length its in-group place was given for
        self.escalations = 0

    def __len__(self) -> int:
        return len(self.waiting)

    def add(self, req: SimRequest) -> None:
        self.waiting.append(req)
        if self.groups is not None:
            self._track(req)

    def remove(self, req: SimRequest) -> None:
        self.waiting.remove(req)
        if self.groups is not None:
            self.groups.remove(req.rid)
            self._placed.pop(req.rid, None)

    def _track(self, req: SimRequest) -> None:
        assert self.groups is not None
        cached = self.cached(req)
        self.groups.add(waiting_row(self.table, req.rid, req.queued_at, cached, req.max_new_tokens), req)
        self._placed[req.rid] = cached

    def order(self, now: float, running: Sequence[SimRequest] = ()) -> list[SimRequest]:
        if self.priority is not None:
            self.waiting[:] = self.priority.queue_order(self.waiting)
            return self.waiting
        if self.routing_key:
            sort_by_routing_key(self.waiting, running)
            return self.waiting
        limits = self.limits
        matching = self.policy is not QueuePolicy.FCFS and len(self.waiting) <= limits.prefix_match_max_waiting
        held = held_for_prefix_sharing(self.waiting, self.cached, limits.in_batch_prefix_threshold) \
            if matching else set()
        if self.policy is QueuePolicy.LPM:
            if matching:
                self.waiting.sort(key=lambda r: float("inf") if r.rid in held else -self.cached(r))
            return self.waiting
        if self.groups is None:
            return self.waiting
        groups = self.groups
        if matching:  # cached lengths moved: the member takes its new place in its group
            for req in self.waiting:
                if self._placed[req.rid] != self.cached(req):
                    groups.remove(req.rid)
                    self._track(req)
        self.escalations += len(advance(groups, self.table, now, self.rate(), list(self.table.drain_changed())))
        self.waiting[:] = held_last(groups.items(), RID, held)
        return self.waiting
