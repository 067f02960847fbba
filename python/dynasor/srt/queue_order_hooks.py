"""Program-aware waiting-queue order inside SGLang's scheduler (written against sglang==0.5.23).

Hooks, armed only in Dynasor servers (the order itself: ``queue_orderer.py``):

- AROUND ``SchedulePolicy.calc_priority``: with a stock policy (``fcfs``, ``lpm``) SGLang's own
  code runs alone. With a program policy SGLang first runs as ``lpm`` (prefix matching, so every
  request knows its cached prefix, and in-batch prefix deduplication), then the queue is reordered
  in place. ``PrefillAdder`` then admits in that order under SGLang's own token budget. While no
  waiting request belongs to a program, SGLang runs as ``fcfs`` instead, as a stock server would:
  the cached prefix only orders the members of a program, and ``lpm``'s extra pass (in-batch
  deduplication, the sort) is work stock ``fcfs`` never does for untagged traffic, measurable in
  its throughput (``docs/benchmarks.md``).
- AFTER ``SchedulePolicy._compute_prefix_matches``: keeps the set of requests SGLang deprioritised
  for in-batch prefix sharing, which the ordering honours.
- AROUND ``SchedulePolicy._sort_by_longest_prefix``: skipped under a program policy, whose order
  (longest prefix first inside a program) replaces it right after; SGLang's matching still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sglang.srt.managers.schedule_policy import CacheAgnosticPolicy

from dynasor.srt.context import current_context
from dynasor.srt.queue_orderer import PREFIX_MATCH_MAX_WAITING, QueueOrderer

DEPRIORITIZED_ATTR = "_dynasor_deprioritized"


def _program_orderer() -> QueueOrderer | None:
    """The process's orderer when a program policy is active (None: SGLang's own order)."""
    context = current_context()
    if context is None or context.queue.policy.is_stock:
        return None
    return context.queue


def order_with_programs(original: Callable[..., Any], schedule_policy: Any, waiting_queue: list[Any],
                        *args: Any, **kwargs: Any) -> Any:
    orderer = _program_orderer()
    if orderer is None:
        return original(schedule_policy, waiting_queue, *args, **kwargs)
    setattr(schedule_policy, DEPRIORITIZED_ATTR, set())
    if holds_a_program(orderer, waiting_queue):
        result = original(schedule_policy, waiting_queue, *args, **kwargs)
    else:
        result = as_fcfs(original, schedule_policy, waiting_queue, *args, **kwargs)
    orderer.reorder(waiting_queue, getattr(schedule_policy, DEPRIORITIZED_ATTR))
    return result


def holds_a_program(orderer: QueueOrderer, waiting_queue: list[Any]) -> bool:
    """Whether a waiting request is tagged. Above SGLang's prefix-match limit ``lpm`` is ``fcfs``
    already, so longer queues are not scanned."""
    if len(waiting_queue) > PREFIX_MATCH_MAX_WAITING:
        return True
    tagged = orderer.table.requests
    return any(req.rid in tagged for req in waiting_queue)


def as_fcfs(original: Callable[..., Any], schedule_policy: Any, *args: Any, **kwargs: Any) -> Any:
    """SGLang's ``calc_priority`` with the scheduler's policy set to ``fcfs`` for this one call."""
    configured = schedule_policy.policy
    schedule_policy.policy = CacheAgnosticPolicy.FCFS
    try:
        return original(schedule_policy, *args, **kwargs)
    finally:
        schedule_policy.policy = configured


def skip_lpm_sort(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if _program_orderer() is None:
        return original(*args, **kwargs)
    return None


def keep_deprioritized(result: set[str], schedule_policy: Any, *args: Any, **kwargs: Any) -> None:
    setattr(schedule_policy, DEPRIORITIZED_ATTR, set(result))
    return None
