"""The waiting-queue order of one scheduler process, over SGLang's ``Req`` objects (sglang==0.5.23).

``QueueOrderer.reorder`` turns SGLang's waiting queue into ``WaitingRequest`` rows, asks
``dynasor.scheduler.ordering.order_waiting`` for the permutation and applies it in place.

A step re-ranks only when something the order depends on changed: the waiting queue (arrivals,
admissions, or SGLang's own lpm sort below 128 waiting requests), the table's epoch (arrivals,
admissions, requeues, finishes), a starvation bound falling due, or ``REFRESH_S`` elapsing (decode
progress moves remaining-work estimates without bumping the epoch). Otherwise the queue is
already in order and the step costs one identity comparison of the queue.
"""

from __future__ import annotations

import operator
import time
from typing import TYPE_CHECKING, Any

from dynasor.scheduler.ordering import (
    Ordering,
    ProgramView,
    QueuePolicy,
    StarvationGuard,
    WaitingRequest,
    order_waiting,
)
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.rate import RateMeter

if TYPE_CHECKING:
    from dynasor.srt.metrics import ProgramMetrics

REFRESH_S = 0.05


class QueueOrderer:
    """The queue policy of a scheduler process, the table and decode rate it reads, and the last
    ordering with what it depended on."""

    def __init__(self, table: ProgramTable, policy: QueuePolicy, guard: StarvationGuard, rate: RateMeter) -> None:
        self.table, self.policy, self.guard, self.rate = table, policy, guard, rate
        self.metrics: ProgramMetrics | None = None
        self._last_queue: list[Any] = []
        self._last_epoch = -1
        self._valid_until = 0.0

    def still_ordered(self, waiting_queue: list[Any], deprioritized: set[str]) -> bool:
        """Nothing the last ordering depended on has changed (see the module docstring)."""
        last = self._last_queue
        return (
            self.table.epoch == self._last_epoch and not deprioritized
            and time.time() < self._valid_until and len(waiting_queue) == len(last)
            and all(map(operator.is_, waiting_queue, last))
        )

    def reorder(self, waiting_queue: list[Any], deprioritized: set[str]) -> None:
        """Sort ``waiting_queue`` in place by the program policy, unless it is still in order."""
        if self.still_ordered(waiting_queue, deprioritized):
            return
        ordering = self.order(waiting_queue, deprioritized)
        waiting_queue[:] = [waiting_queue[i] for i in ordering.order]
        self._last_queue, self._last_epoch = list(waiting_queue), self.table.epoch
        self._valid_until = min(time.time() + REFRESH_S, ordering.next_escalation_at)

    def order(self, waiting_queue: list[Any], deprioritized: set[str]) -> Ordering:
        table = self.table
        wall_now, perf_now = time.time(), time.perf_counter()
        rate = self.rate.rate(default=100.0)
        rows: list[WaitingRequest] = []
        views: dict[str, ProgramView] = {}
        records = table.requests
        for req in waiting_queue:
            rid = req.rid
            rec = records.get(rid)
            if rec is not None:
                pid = rec.program_id
                if pid not in views:
                    view = table.view(pid)
                    if view is not None:
                        views[pid] = view
                rows.append(WaitingRequest(rid, pid, rec.queued_at, req.num_matched_prefix_tokens,
                                           rid in deprioritized))
            else:
                queued_at = wall_now - (perf_now - (req.time_stats.wait_queue_entry_time or perf_now))
                max_new = req.sampling_params.max_new_tokens
                expected = table.expected_output_tokens_prior()
                rows.append(WaitingRequest(req.rid, None, queued_at, req.num_matched_prefix_tokens,
                                           req.rid in deprioritized,
                                           expected if max_new is None else min(expected, max_new)))
        ordering = order_waiting(rows, views, self.policy, wall_now, self.guard, rate)
        for pid in ordering.escalated:
            if table.on_escalated(pid) and self.metrics is not None:
                self.metrics.on_escalated()
        return ordering
