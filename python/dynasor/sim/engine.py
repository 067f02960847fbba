"""A discrete-event model of one SGLang engine (sglang==0.5.23's scheduler rules, one device).

One iteration at a time, as SGLang's event loop runs them:

1. **Prefill first**: if requests wait and the running batch is not marked full, the queue is put
   in policy order (``queue_policy``) and ``PrefillAdder``'s rules pick a batch: a chunked request
   in progress first, then requests in order until one does not fit (no skipping): the running
   cap, the input budget (``max_prefill_tokens``), the chunk budget (``chunked_prefill_size``: a
   request longer than what is left is chunked) and the KV budget: free + evictable KV minus what
   running requests reserve (``new_token_ratio`` × their remaining ``max_new_tokens``) must exceed
   the request's uncached input + its ``max_new_tokens`` (clipped) + 1. A request that does not
   fit marks the batch full until a request ends or is retracted. A cached prefix is not
   recomputed. The iteration takes ``StepCost.prefill_seconds``; a request whose prefill completes
   samples its first token; its prompt prefix enters the cache (a duplicate computed in the same
   batch is freed).
2. Otherwise **decode**: every running request gains a token in ``StepCost.decode_seconds``. If
   the KV pool has no room for one token each, unlocked cached prefixes are evicted, then requests
   are retracted (fewest output tokens first, ties: longest input; at least one stays): their KV
   is freed, they go to the queue's tail and will re-prefill prompt + output.
3. Idle: the clock moves to the next event.

With ``routing_key`` (stock SGLang's ``routing-key`` policy, ``routing_key.py``) requests of the
programs already running go first. With ``priority`` (stock SGLang's priority scheduling,
``priority.py``) the queue is in priority order, a waiting request may preempt running ones when
no request slot is free, and retraction takes the least important first.

Not modelled: the overlap scheduler's one-step-old state, mixed chunks, page sizes above 1, and
the host-side cost of scheduling itself (see docs/simulator.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dynasor.scheduler.kv_gang import gang_fits
from dynasor.scheduler.ordering import QueuePolicy, StarvationGuard
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.rate import RateMeter
from dynasor.sim.capacity import CapacityMeter
from dynasor.sim.kv_rows import gang_rows, private_capacity, retraction_groups, running_rows
from dynasor.sim.prefix_cache import PrefixCache
from dynasor.sim.priority import PriorityScheduling
from dynasor.sim.queue_policy import SimQueue
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.step_cost import StepCost


@dataclass
class StepRecord:
    kind: str  # "prefill" or "decode"
    start: float
    seconds: float
    requests: int
    tokens: int


class SimEngine:
    def __init__(self, cost: StepCost, limits: EngineLimits, policy: QueuePolicy,
                 program_eviction: bool = True, guard: StarvationGuard | None = None,
                 keep_steps: bool = False, priority: PriorityScheduling | None = None,
                 routing_key: bool = False, kv_admission: bool = False, program_retraction: bool = False) -> None:
        self.cost, self.limits, self.policy, self.priority = cost, limits, policy, priority
        # dynasor.scheduler.kv_gang's rules (program policies only)
        self.kv_admission = kv_admission and not policy.is_stock
        self.program_retraction = program_retraction and not policy.is_stock
        self.now = 0.0
        self.table = ProgramTable(ttl=float("inf"))
        self.rate = RateMeter()
        self.cache = PrefixCache(self.table.is_live, program_aware=program_eviction and not policy.is_stock)
        self.queue = SimQueue(policy, limits, self.table, lambda req: self.cache.cached(req.segments),
                              lambda: self.rate.rate(default=100.0), guard, priority, routing_key)
        self.running: list[SimRequest] = []
        self.chunked: SimRequest | None = None
        self.batch_full = False
        self.ratio = limits.init_new_token_ratio
        self.on_finish: Callable[[SimRequest], None] = lambda req: None
        self.steps: list[StepRecord] | None = [] if keep_steps else None
        self.busy_seconds = 0.0
        self.capacity = CapacityMeter()  # waiting iterations and KV use
        self.retractions = 0
        self.preemptions = 0
        self.recomputed_tokens = 0
        self.admitted_input_tokens = 0  # input of every admission (a retracted request's counts again)
        self.cached_input_tokens = 0  # of those, found in the prefix cache
        self.prefill_tokens = 0  # computed by prefill iterations

    # --- requests in and out ----------------------------------------------------------------
    def submit(self, req: SimRequest) -> None:
        """The request reaches the scheduler now."""
        req.arrived_at = req.queued_at = self.now
        if req.program_id is not None:
            self.table.on_arrival(req.rid, req.program_id, req.prefix_tokens + req.own_tokens, self.now,
                                  max_new_tokens=req.max_new_tokens, remaining_work=req.remaining_work_hint,
                                  deferred=req.deferred)
        self.queue.add(req)

    def abort(self, req: SimRequest) -> None:
        """End a waiting or running request now (a program stop); a finished one is left alone."""
        if req.done:
            return
        if req in self.running:
            self.running.remove(req)
        elif req is self.chunked:
            self.chunked = None
        elif req in self.queue.waiting:
            self.queue.remove(req)
        req.aborted = True  # not yet here (in transit): it ends before it arrives
        self._end(req)

    def _end(self, req: SimRequest) -> None:
        self._end_all([req])

    def _end_all(self, reqs: list[SimRequest]) -> None:
        """Requests that ended in one step: all are done before any owner hears of one (a program
        stopped by the first does not abort the others)."""
        for req in reqs:
            req.finished_at = self.now
        self.batch_full = self.batch_full and not reqs
        for req in reqs:
            self._release(req)
            if req.program_id is not None and req.rid in self.table.requests:
                self.table.on_finished(req.rid, req.aborted, self.now)
            self.on_finish(req)

    def _release(self, req: SimRequest) -> None:
        for key in req.locked:
            self.cache.unlock(key, self.now)
        req.locked = []
        req.computed = req.shared = 0

    # --- KV accounting ---------------------------------------------------------------------
    def kv_used(self) -> int:
        held = sum([r.computed - r.shared for r in self.running])  # private_kv, inlined (every step)
        return self.cache.tokens + held + (self.chunked.private_kv if self.chunked else 0)

    def kv_free(self) -> int:
        return self.limits.kv_tokens - self.kv_used()

    def _take(self, tokens: int) -> None:
        """Allocate KV, evicting unlocked prefixes lazily as SGLang's allocator does."""
        short = tokens - self.kv_free()
        if short > 0:
            self.cache.evict(short)

    # --- one iteration --------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return not self.running and not len(self.queue) and self.chunked is None

    def step(self, until: float | None = None) -> float:
        """Run one iteration from ``now``; returns its duration (0.0: nothing to run). With
        ``until`` (the next outside event: nothing can reach this engine before it), decode steps
        that can change nothing but the clock and the counts run back to back until the first one
        that starts at or after ``until``, as one call (the same steps, the same state)."""
        if (len(self.queue) and not self.batch_full) or self.chunked is not None:
            batch = self._admit()
            if batch:
                return self._prefill(batch)
        if self.running:
            quiet = self._quiet_decode_steps() if until is not None else 0
            return self._decode_quietly(quiet, until) if quiet > 1 and until is not None else self._decode()
        self.ratio = self.limits.init_new_token_ratio  # SGLang's on_idle
        return 0.0

    def _admit(self) -> list[tuple[SimRequest, int]]:
        limits, cache = self.limits, self.cache
        reservation = {r.rid: min(r.max_new_tokens - r.generated, limits.clip_max_new_tokens) * self.ratio
                       for r in self.running}
        rem_total = self.kv_free() + cache.evictable_tokens - sum(reservation.values())
        rem_input, rem_chunk = limits.max_prefill_tokens, limits.chunked_prefill_size
        batch: list[tuple[SimRequest, int]] = []
        gangs: set[str] = set()  # programs whose gang was admitted in this pass
        planned = running_rows(self.running, self.table, limits) if self.kv_admission else []  # + gangs admitted
        if self.chunked is not None:
            req = self.chunked
            extend = min(req.to_prefill, rem_chunk)
            batch.append((req, extend))
            rem_chunk -= extend
            rem_input -= extend
        for req in list(self.queue.order(self.now, self.running)):
            if rem_input <= 0 or rem_chunk <= 0:
                break
            if len(self.running) + len(batch) >= limits.max_running_requests:
                freed = self._preempt_for(req, rem_total, reservation)
                if freed is None:
                    self.batch_full = True
                    break
                rem_total += freed
            if self.kv_admission and req.program_id is not None and req.program_id not in gangs:
                gang = gang_rows(req.program_id, self.queue.waiting, cache, self.table, limits)
                capacity = private_capacity(cache, limits, self.chunked)
                if (self.running or batch) and not gang_fits(planned, gang, capacity):
                    self.batch_full = True  # the program waits whole, and so does everyone behind it
                    break
                gangs.add(req.program_id)
                planned += gang
            segments = req.segments
            cached = min(cache.cached(segments), req.prefix_tokens, req.input_tokens - 1)
            keys = cache.covering(segments, cached)
            unlocked = cache.unlocked(keys)  # locked while checked: no longer evictable
            extend = req.input_tokens - cached
            total = extend + min(req.max_new_tokens - req.generated, limits.clip_max_new_tokens) + 1
            if total >= rem_total - unlocked:
                self.batch_full = True
                break
            self.queue.remove(req)
            req.matched = req.shared = cached
            self.admitted_input_tokens += req.input_tokens
            self.cached_input_tokens += cached
            for key in keys:
                cache.lock(key, self.now)
            req.locked = list(keys)
            req.computed, req.to_prefill = cached, extend
            req.admitted_at = self.now if req.admitted_at is None else req.admitted_at
            if req.program_id is not None:
                self.table.on_admitted(req.rid, self.now)
            rem_total -= unlocked + total
            if extend > rem_chunk:
                batch.append((req, rem_chunk))
                self.chunked = req
                break
            batch.append((req, extend))
            rem_chunk -= extend
            rem_input -= extend
        return batch

    def _preempt_for(self, req: SimRequest, rem_total: float, reservation: dict[str, float]) -> float | None:
        """Priority preemption for a request that found no free slot: the KV budget its victims
        gave back, or None when it may not preempt (no priority scheduling, or no victim qualifies)."""
        if self.priority is None:
            return None
        short = req.input_tokens + min(req.max_new_tokens - req.generated, self.limits.clip_max_new_tokens) + 1
        victims = self.priority.victims(req, self.running, short - rem_total, reservation)
        if not victims:
            return None
        before = self.kv_free() + self.cache.evictable_tokens
        for victim in victims:
            self._requeue(victim)
            self.preemptions += 1
        self.cache.evict(self.limits.retract_decode_steps * len(self.running))
        return self.kv_free() + self.cache.evictable_tokens - before + sum(reservation[v.rid] for v in victims)

    def _requeue(self, req: SimRequest) -> None:
        """A running request gives up its KV (retracted or preempted): back to the queue with its
        output, which its next prefill recomputes."""
        self.running.remove(req)
        self.recomputed_tokens += req.computed
        self._release(req)
        req.retractions += 1
        self.batch_full = False
        req.queued_at = self.now
        if req.program_id is not None:
            self.table.on_requeued(req.rid, self.now)
        self.queue.add(req)

    def _prefill(self, batch: list[tuple[SimRequest, int]]) -> float:
        seconds = self.cost.prefill_seconds([(extend, req.computed) for req, extend in batch])
        start, tokens = self.now, sum(extend for _, extend in batch)
        self._take(tokens)
        self.prefill_tokens += tokens
        self.now += seconds
        self._record("prefill", start, seconds, len(batch), tokens)
        done: list[SimRequest] = []
        for req, extend in batch:
            req.computed += extend
            req.to_prefill -= extend
            self._checkpoint(req)
            if req.to_prefill > 0:
                continue
            if req is self.chunked:
                self.chunked = None
            req.generated += 1  # the prefill samples the first output token
            req.first_token_at = req.first_token_at or self.now
            self._progress(req)
            if req.generated >= req.target_tokens:
                done.append(req)
            else:
                self.running.append(req)
        self.rate.add(sum(1 for r, _ in batch if r.to_prefill == 0), self.now)
        self._end_all(done)
        return seconds

    def _checkpoint(self, req: SimRequest) -> None:
        """The prompt prefix computed so far enters the cache, segment by segment; a segment another
        request already inserted is shared (the duplicate computed in the same batch is freed)."""
        prefix = min(req.computed, req.prefix_tokens)
        if prefix <= req.shared:
            return
        start = 0
        for key, size in req.segments:
            covered = min(prefix - start, size)
            if covered <= 0:
                break
            if key in req.locked:
                self.cache.grow(key, covered)
            else:
                self.cache.insert(key, covered, req.program_id, self.now)
                req.locked.append(key)
            start += size
        req.shared = prefix

    def _decode(self) -> float:
        self._make_room(len(self.running))
        batch = self.running
        kv = sum(r.computed for r in batch)
        seconds = self.cost.decode_seconds(len(batch), kv)
        start = self.now
        self.now += seconds
        self._record("decode", start, seconds, len(batch), len(batch))
        finished: list[SimRequest] = []
        for req in batch:
            req.computed += 1
            req.generated += 1
            self._progress(req)
            if req.generated >= req.target_tokens:
                finished.append(req)
        self.rate.add(len(batch), self.now)
        self.ratio = max(self.ratio - self.limits.new_token_ratio_decay, self.limits.min_new_token_ratio)
        if finished:
            self.running = [r for r in self.running if r.generated < r.target_tokens]
            self._end_all(finished)
        return seconds

    def _quiet_decode_steps(self) -> int:
        """Decode steps from now in which no request ends, none is admitted, and KV needs neither
        eviction nor retraction."""
        if (len(self.queue) and not self.batch_full) or self.chunked is not None:
            return 0
        batch = len(self.running)
        return min(min(r.target_tokens - r.generated for r in self.running) - 1, self.kv_free() // batch)

    def _decode_quietly(self, steps: int, until: float) -> float:
        """``_decode`` up to ``steps`` times while the clock is before ``until``, each step priced and
        recorded on its own, the requests' counts moved once at the end."""
        batch, start = self.running, self.now
        size, kv = len(batch), sum(r.computed for r in batch)
        held = self.kv_used()  # grows by ``size`` a step; the waiting queue does not change
        done, kv_token_seconds = 0, 0.0
        while done < steps and self.now < until:
            seconds = self.cost.decode_seconds(size, kv + done * size)
            self._record("decode", self.now, seconds, size, size, metered=False)
            kv_token_seconds += (held + done * size) * seconds
            self.now += seconds
            self.rate.add(size, self.now)
            self.ratio = max(self.ratio - self.limits.new_token_ratio_decay, self.limits.min_new_token_ratio)
            done += 1
        self.capacity.record_run(done, len(self.queue) > 0, self.now - start, kv_token_seconds / self.limits.kv_tokens,
                                 (held + (done - 1) * size) / self.limits.kv_tokens)
        for req in batch:
            req.computed += done
            req.generated += done
            self._progress(req)
        return self.now - start

    def _make_room(self, tokens: int) -> None:
        """SGLang's check_decode_mem: evict, then retract until one token each fits."""
        self._take(tokens)
        if self.kv_free() >= len(self.running):
            return
        order = [req for group in retraction_groups(self.running, self.table, self.priority, self.program_retraction)
                 for req in group]
        while len(self.running) > 1 and self.kv_free() < len(self.running):
            self._requeue(order.pop(0))
            self.retractions += 1
            self.cache.evict(len(self.running) - self.kv_free())
        out = sum(r.generated for r in self.running)
        budget = sum(r.max_new_tokens for r in self.running)
        self.ratio = min(1.0, (out + self.limits.retract_decode_steps * len(self.running)) / (budget + 1))

    def _progress(self, req: SimRequest) -> None:
        if req.program_id is not None:
            self.table.on_progress(req.rid, req.generated, self.now)

    def _record(self, kind: str, start: float, seconds: float, requests: int, tokens: int,
                metered: bool = True) -> None:
        self.busy_seconds += seconds
        if metered:
            use = self.kv_used() / self.limits.kv_tokens
            self.capacity.record_run(1, len(self.queue) > 0, seconds, use * seconds, use)
        if self.steps is not None:
            self.steps.append(StepRecord(kind, start, seconds, requests, tokens))
