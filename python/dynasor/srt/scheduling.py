"""Program-aware waiting-queue order inside SGLang's scheduler (written against sglang==0.5.23).

Hooks, armed only in Dynasor servers:

- AROUND ``SchedulePolicy.calc_priority``: with a stock policy (``fcfs``, ``lpm``) SGLang's own
  code runs alone. With a program policy SGLang first runs as ``lpm`` (prefix matching, so every
  request knows its cached prefix, and in-batch prefix deduplication), then the queue is reordered
  in place by ``dynasor.scheduler.ordering``. ``PrefillAdder`` then admits in that order under
  SGLang's own token budget.
- AFTER ``SchedulePolicy._compute_prefix_matches``: keeps the set of requests SGLang deprioritised
  for in-batch prefix sharing, which the ordering honours.
- AROUND ``SchedulePolicy._sort_by_longest_prefix``: skipped under a program policy, whose order
  (longest prefix first inside a program) replaces it right after; SGLang's matching still runs.

A step re-ranks only when something the order depends on changed: the waiting queue (arrivals,
admissions, or SGLang's own lpm sort below 128 waiting requests), the table's epoch (arrivals,
admissions, requeues, finishes), a starvation bound falling due, or ``REFRESH_S`` elapsing (decode
progress moves remaining-work estimates without bumping the epoch). Otherwise the queue is
already in order and the step costs one identity comparison of the queue.
"""

from __future__ import annotations

import operator
import time
from typing import Any, Callable, Optional

from dynasor.scheduler.ordering import Ordering, Policy, StarvationGuard, WaitingRequest, order_waiting
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.rate import RateMeter
from dynasor.srt.metrics import ProgramMetrics

DEPRIORITIZED_ATTR = "_dynasor_deprioritized"
REFRESH_S = 0.05


class ProgramScheduling:
    """Per scheduler process: the policy, the table it reads and the decode-rate estimate."""

    table: Optional[ProgramTable] = None
    policy: Policy = Policy.GANG_SJF
    guard: StarvationGuard = StarvationGuard()
    rate: RateMeter = RateMeter()
    metrics: Optional[ProgramMetrics] = None
    # The last re-ranked queue and what it depended on.
    _last_queue: list[Any] = []
    _last_epoch: int = -1
    _valid_until: float = 0.0

    @classmethod
    def install(cls, table: ProgramTable, policy: Policy, guard: StarvationGuard) -> None:
        cls.table, cls.policy, cls.guard, cls.rate = table, policy, guard, RateMeter()
        cls._last_queue, cls._last_epoch, cls._valid_until = [], -1, 0.0

    @classmethod
    def still_ordered(cls, waiting_queue: list[Any], deprioritized: set[str]) -> bool:
        """Nothing the last ordering depended on has changed (see the module docstring)."""
        table, last = cls.table, cls._last_queue
        return (
            table is not None and table.epoch == cls._last_epoch and not deprioritized
            and time.time() < cls._valid_until and len(waiting_queue) == len(last)
            and all(map(operator.is_, waiting_queue, last))
        )

    @classmethod
    def reorder(cls, waiting_queue: list[Any], deprioritized: set[str]) -> None:
        """Sort ``waiting_queue`` in place by the program policy, unless it is still in order."""
        if cls.still_ordered(waiting_queue, deprioritized):
            return
        ordering = cls.order(waiting_queue, deprioritized)
        waiting_queue[:] = [waiting_queue[i] for i in ordering.order]
        assert cls.table is not None
        cls._last_queue, cls._last_epoch = list(waiting_queue), cls.table.epoch
        cls._valid_until = min(time.time() + REFRESH_S, ordering.next_escalation_at)

    @classmethod
    def order(cls, waiting_queue: list[Any], deprioritized: set[str]) -> Ordering:
        table = cls.table
        assert table is not None
        wall_now, perf_now = time.time(), time.perf_counter()
        rate = cls.rate.rate(default=100.0)
        rows: list[WaitingRequest] = []
        views = {}
        records = table.requests
        for req in waiting_queue:
            rid = req.rid
            rec = records.get(rid)
            if rec is not None:
                pid = rec.program_id
                if pid not in views:
                    views[pid] = table.view(pid)
                rows.append(WaitingRequest(rid, pid, rec.queued_at, req.num_matched_prefix_tokens, rid in deprioritized))
            else:
                queued_at = wall_now - (perf_now - (req.time_stats.wait_queue_entry_time or perf_now))
                max_new = req.sampling_params.max_new_tokens
                expected = table.expected_output_tokens_prior()
                rows.append(WaitingRequest(req.rid, None, queued_at, req.num_matched_prefix_tokens,
                                           req.rid in deprioritized,
                                           expected if max_new is None else min(expected, max_new)))
        ordering = order_waiting(rows, views, cls.policy, wall_now, cls.guard, rate)
        for pid in ordering.escalated:
            if table.on_escalated(pid) and cls.metrics is not None:
                cls.metrics.on_escalated()
        return ordering


def order_with_programs(original: Callable[..., Any], schedule_policy: Any, waiting_queue: list[Any],
                        *args: Any, **kwargs: Any) -> Any:
    if ProgramScheduling.table is None or ProgramScheduling.policy.is_stock:
        return original(schedule_policy, waiting_queue, *args, **kwargs)
    setattr(schedule_policy, DEPRIORITIZED_ATTR, set())
    result = original(schedule_policy, waiting_queue, *args, **kwargs)
    if len(waiting_queue) > 1:
        ProgramScheduling.reorder(waiting_queue, getattr(schedule_policy, DEPRIORITIZED_ATTR))
    return result


def skip_lpm_sort(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if ProgramScheduling.table is None or ProgramScheduling.policy.is_stock:
        return original(*args, **kwargs)
    return None


def keep_deprioritized(result: set[str], schedule_policy: Any, *args: Any, **kwargs: Any) -> None:
    setattr(schedule_policy, DEPRIORITIZED_ATTR, set(result))
    return None
