"""The waiting-queue order of one scheduler process, over SGLang's ``Req`` objects (sglang==0.5.23).

``QueueOrderer.reorder`` puts SGLang's waiting queue in program order, in place, at every
scheduling step. It keeps the queue's requests in a ``GroupOrder`` between steps and feeds it what
changed, so a step with 10,000 waiting requests costs about what changed, not a sort:

- requests SGLang put into the queue (``note_queued``, from ``_add_request_to_queue``) and the
  requests it admitted (``note_admitted``, the prefill batch) since the last step;
- the programs the table touched (arrival, admission, progress, finish: ``ProgramTable.changed``);
- starvation bounds that passed (``GroupOrder``'s own heap).

Before the new order replaces the queue, it must hold exactly the queue's requests. Usually SGLang
admitted a prefix of the last order and appended what it queued, which list comparisons confirm;
otherwise the length and the sum of object ids must match (the orderer holds every request it
tracks, so a request it does not know cannot share an id with one it does). A change it was not
told of (an abort of a waiting request, SGLang's queue limit dropping one, the queues of
disaggregation or pipeline parallelism) fails that check and the step ranks the queue from
scratch, as does a move of the table's server-wide output-length prior. A step in which nothing
changed costs a few list comparisons.

Inside a program, members are ordered by cached prefix length (longest first), then arrival. Up to
``PREFIX_MATCH_MAX_WAITING`` waiting requests SGLang's ``lpm`` pass matches every prefix each step
and the members whose length moved are re-placed; above it SGLang stops matching (it falls back to
fcfs) and members keep the place they had. Requests SGLang held back for in-batch prefix sharing
go last (``deprioritized_last``) without changing the kept order.
"""

from __future__ import annotations

import operator
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from dynasor.scheduler.group_order import GroupOrder
from dynasor.scheduler.ordering import QueuePolicy, StarvationGuard, WaitingRequest
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.queue_step import advance, held_last, waiting_row
from dynasor.scheduler.rate import RateMeter

if TYPE_CHECKING:
    from dynasor.srt.metrics import ProgramMetrics

# SGLang's lpm matches prefixes only up to 128 waiting requests (WAITING_QUEUE_PREFIX_MATCH_MAX).
PREFIX_MATCH_MAX_WAITING = 128
MAX_PENDING_EVENTS = 8192
RID = operator.attrgetter("rid")
CACHED_LEN = operator.attrgetter("num_matched_prefix_tokens")


class QueueOrderer:
    """The queue policy of a scheduler process, the table and decode rate it reads, and the waiting
    requests in order as of the last step."""

    def __init__(self, table: ProgramTable, policy: QueuePolicy, guard: StarvationGuard, rate: RateMeter) -> None:
        self.table, self.policy, self.guard, self.rate = table, policy, guard, rate
        self.metrics: ProgramMetrics | None = None
        self._groups: GroupOrder[Any] | None = None  # None: must rank from scratch
        self._id_sum = 0  # sum of id() over the requests in _groups
        self._cached_len: dict[str, int] = {}  # rid -> cached prefix length its place was given for
        self._events: list[tuple[bool, Any]] = []  # (queued, req) since the last step
        self._last: list[Any] = []  # the queue as the last step left it
        self._last_deprioritized: set[str] = set()
        self._prior_epoch = -1
        self.reorders = 0  # steps that wrote a new order (tests and benchmarks read these two)
        self.full_reranks = 0  # of which ranked from scratch
        self.full_rerank_reasons: Counter[str] = Counter()

    # --- what SGLang did to the queue between two steps -------------------------------------
    def note_queued(self, req: Any) -> None:
        if self._groups is not None:
            self._events.append((True, req))
            self._bound_events()

    def note_admitted(self, reqs: list[Any]) -> None:
        if self._groups is not None:
            self._events.extend((False, req) for req in reqs)
            self._bound_events()

    def _bound_events(self) -> None:
        """Steps without a reorder (an empty queue) must not pile events up: rank afresh instead."""
        if len(self._events) > MAX_PENDING_EVENTS:
            self.forget()

    def forget(self) -> None:
        """Drop the kept order: the next step ranks the queue from scratch."""
        self._groups = None
        self._events.clear()

    # --- one step -----------------------------------------------------------------------------
    def reorder(self, waiting_queue: list[Any], deprioritized: set[str]) -> None:
        """Put ``waiting_queue`` in program order, in place."""
        changed = self.table.drain_changed()
        groups, now = self._groups, time.time()
        if groups is None or self.table.prior_epoch != self._prior_epoch:
            self._rerank(waiting_queue, deprioritized, "no kept order" if groups is None else "prior moved")
            return
        had_events = bool(self._events)
        as_reported = self._is_last_order_after_events(waiting_queue, groups)
        self._apply_events(groups)
        if not as_reported and (len(waiting_queue) != groups.size or sum(map(id, waiting_queue)) != self._id_sum):
            self._rerank(waiting_queue, deprioritized, "unreported change")
            return
        if len(waiting_queue) <= PREFIX_MATCH_MAX_WAITING:
            self._reread_cached_lengths(groups, waiting_queue)
        changed = {pid for pid in changed if groups.has_program(pid)}  # programs with requests waiting
        if (not had_events and not changed and not groups.pending and now < groups.next_escalation_at
                and deprioritized == self._last_deprioritized):
            return  # nothing the order depends on changed
        self._note_escalated(advance(groups, self.table, now, self.rate.rate(default=100.0), list(changed)))
        self._write(waiting_queue, groups.items(), deprioritized)

    def _is_last_order_after_events(self, waiting_queue: list[Any], groups: GroupOrder[Any]) -> bool:
        """The common case, checked exactly by list comparisons: SGLang admitted a prefix of the last
        order and appended the requests it queued (or did nothing). Otherwise the length and the sum
        of object ids decide, once the events are applied. (A chunked request continuing its prefill
        is in the batch but was not waiting: only tracked requests count as admitted.)"""
        last, events = self._last, self._events
        if not events:
            return waiting_queue == last
        admitted = [req for queued, req in events if not queued and req.rid in groups]
        arrived = [req for queued, req in events if queued]
        k, kept = len(admitted), len(last) - len(admitted)
        return (len(waiting_queue) == kept + len(arrived) and all(map(operator.is_, last[:k], admitted))
                and waiting_queue[:kept] == last[k:] and waiting_queue[kept:] == arrived)

    def _apply_events(self, groups: GroupOrder[Any]) -> None:
        for queued, req in self._events:
            if queued:
                if req.rid not in groups:
                    self._track(groups, req)
            else:
                self._untrack(groups, req)
        self._events.clear()

    def _track(self, groups: GroupOrder[Any], req: Any) -> None:
        groups.add(self._row(req), req)
        self._id_sum += id(req)
        self._cached_len[req.rid] = req.num_matched_prefix_tokens

    def _untrack(self, groups: GroupOrder[Any], req: Any) -> None:
        if groups.remove(req.rid) is not None:
            self._id_sum -= id(req)
            del self._cached_len[req.rid]

    def _reread_cached_lengths(self, groups: GroupOrder[Any], waiting_queue: list[Any]) -> None:
        """SGLang's lpm pass has just matched every waiting request's prefix: members whose cached
        length moved take their new place in their group (one C-level comparison when none moved)."""
        now_cached = list(map(CACHED_LEN, waiting_queue))
        if now_cached == list(map(self._cached_len.get, map(RID, waiting_queue))):
            return
        for req, cached in zip(waiting_queue, now_cached):
            if self._cached_len.get(req.rid, cached) != cached:
                self._untrack(groups, req)
                self._track(groups, req)

    def _rerank(self, waiting_queue: list[Any], deprioritized: set[str], reason: str) -> None:
        """Rank the queue from scratch and keep it as the state of the next steps."""
        self.full_reranks += 1
        self.full_rerank_reasons[reason] += 1
        self._events.clear()
        self._prior_epoch = self.table.prior_epoch
        groups: GroupOrder[Any] = GroupOrder(self.policy, self.guard)
        groups.extend((self._row(req), req) for req in waiting_queue)
        self._note_escalated(advance(groups, self.table, time.time(), self.rate.rate(default=100.0)))
        self._groups, self._id_sum = groups, sum(map(id, waiting_queue))
        self._cached_len = dict(zip(map(RID, waiting_queue), map(CACHED_LEN, waiting_queue)))
        self._write(waiting_queue, groups.items(), deprioritized)

    def _write(self, waiting_queue: list[Any], order: list[Any], deprioritized: set[str]) -> None:
        order = held_last(order, RID, deprioritized)
        self.reorders += 1
        self._last, self._last_deprioritized = order, set(deprioritized)
        waiting_queue[:] = order

    def _row(self, req: Any) -> WaitingRequest:
        queued_at = 0.0
        if req.rid not in self.table.requests:  # untagged: when SGLang queued it, on the wall clock
            wall_now, perf_now = time.time(), time.perf_counter()
            queued_at = wall_now - (perf_now - (req.time_stats.wait_queue_entry_time or perf_now))
        return waiting_row(self.table, req.rid, queued_at, req.num_matched_prefix_tokens,
                           req.sampling_params.max_new_tokens)

    def _note_escalated(self, escalated: list[str]) -> None:
        if self.metrics is not None:
            for _ in escalated:
                self.metrics.on_escalated()
