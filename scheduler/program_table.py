"""Per-program bookkeeping of the scheduler process, over plain data.

The engine wiring (``dynasor.srt``) reports request lifecycle events; the table keeps, per
program, which requests wait, run or have finished, how many prompt and generated tokens they
account for, and when the program first arrived and was last served. Later policies (gang
scheduling, shortest-job-first, eviction hints) read it. Nothing here imports SGLang.

Memory stays bounded: a program with no waiting or running request is *done* and is dropped
``ttl`` seconds after it went idle, and at most ``max_done_programs`` done programs are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from dynasor.core.tag import program_key
from dynasor.scheduler.ordering import ProgramView
from dynasor.scheduler.program_entry import ProgramEntry, RequestRecord, RequestState
from dynasor.scheduler.token_stats_aggregate import TokenStatsAggregate
from dynasor.scheduler.work_estimate import WorkEstimate, work_of_one


class ProgramTable:
    """Programs and their requests, keyed by program id and by request id."""

    MAX_KEPT_REQUEST_STATS = 64  # per program: bounds the table and the snapshots

    def __init__(self, ttl: float = 60.0, max_done_programs: int = 1_000, confidence_window: int = 2048,
                 default_output_tokens: float = 256.0, key_secret: bytes = b"") -> None:
        self.key_secret = key_secret
        self.ttl = ttl
        self.max_done_programs = max_done_programs
        self.confidence_window = confidence_window
        self.live_token_stats_requests = 0
        self.live_programs = 0
        self.estimate = WorkEstimate(default_output_tokens)
        self.programs: dict[str, ProgramEntry] = {}
        self.requests: dict[str, RequestRecord] = {}
        self._done: OrderedDict[str, float] = OrderedDict()
        # Programs whose scheduling view may have changed since the queue orderer last drained it.
        self.changed: set[str] = set()

    def __len__(self) -> int:
        return len(self.programs)

    def is_live(self, program_id: str) -> bool:
        """A request of the program waits or runs (unknown or expired programs are not live)."""
        prog = self.programs.get(program_id)
        return prog is not None and prog.live

    def program_of(self, rid: str) -> str | None:
        rec = self.requests.get(rid)
        return rec.program_id if rec else None

    # --- lifecycle events -------------------------------------------------------------------
    def on_arrival(
        self, rid: str, program_id: str, prompt_tokens: int, now: float, token_stats: bool = False,
        max_new_tokens: int | None = None, remaining_work: float | None = None, deferred: bool = False,
        confidence_window: int | None = None, stop_below_confidence: float | None = None,
    ) -> bool:
        """A tagged request entered the scheduler. Re-arrival of a known rid is a requeue.

        ``token_stats``: the request asked for per-token entropy and confidence.
        ``remaining_work``: the client's estimate of the program's remaining tokens, if it sent one.
        ``deferred``: optional work, queued behind everything while the program has other work.
        ``confidence_window``, ``stop_below_confidence``: the request's own window (else the table's)
        and DeepConf stop threshold (``on_token_stats`` says when it is crossed).
        Returns True if the request started a program the table did not hold.
        """
        rec = self.requests.get(rid)
        if rec is not None:
            self.on_requeued(rid, now)
            return False
        prog = self.programs.get(program_id)
        started = prog is None
        if prog is None:
            prog = ProgramEntry(program_id=program_id, key=program_key(program_id, self.key_secret), first_arrival=now)
            self.programs[program_id] = prog
        if not prog.live:
            self.live_programs += 1
        self._done.pop(program_id, None)
        prog.idle_since = None
        if remaining_work is not None:
            prog.remaining_work_hint = float(remaining_work)
            prog.hint_generated_tokens = prog.generated_tokens
        self.requests[rid] = RequestRecord(
            rid=rid, program_id=program_id, prompt_tokens=prompt_tokens, queued_at=now,
            max_new_tokens=max_new_tokens,
            token_stats=TokenStatsAggregate(confidence_window or self.confidence_window, stop_below_confidence)
            if token_stats else None, deferred=deferred,
        )
        prog.undeferred_live += not deferred
        self.live_token_stats_requests += token_stats
        prog.waiting.add(rid)
        self.estimate.adjust_waiting_work(prog, self.requests[rid], +1)
        prog.prompt_tokens += prompt_tokens
        self._touch(prog)
        return started

    def _touch(self, prog: ProgramEntry) -> None:
        """An event that can change the program's scheduling view."""
        prog.version += 1
        self.changed.add(prog.program_id)

    def drain_changed(self) -> set[str]:
        """Programs touched since the last call."""
        changed, self.changed = self.changed, set()
        return changed

    def _move(self, rid: str, source: RequestState, target: RequestState) -> tuple[RequestRecord, ProgramEntry] | None:
        """Move a request between the waiting and running sets of its program, if it is in ``source``."""
        rec = self.requests.get(rid)
        if rec is None or rec.state is not source:
            return None
        prog = self.programs[rec.program_id]
        sets = {RequestState.WAITING: prog.waiting, RequestState.RUNNING: prog.running}
        if source is RequestState.WAITING:
            self.estimate.adjust_waiting_work(prog, rec, -1)
        sets[source].discard(rid)
        sets[target].add(rid)
        if target is RequestState.WAITING:
            self.estimate.adjust_waiting_work(prog, rec, +1)
        rec.state = target
        self._touch(prog)
        return rec, prog

    def on_requeued(self, rid: str, now: float) -> None:
        """A running request went back to the waiting queue (e.g. retracted on KV pressure)."""
        moved = self._move(rid, RequestState.RUNNING, RequestState.WAITING)
        if moved is not None:
            moved[0].queued_at = now

    def on_admitted(self, rid: str, now: float) -> None:
        """The request was put into a prefill batch."""
        moved = self._move(rid, RequestState.WAITING, RequestState.RUNNING)
        if moved is not None:
            prog = moved[1]
            prog.last_service = now
            prog.escalated = False

    def on_progress(self, rid: str, generated_tokens: int, now: float) -> None:
        """The request has ``generated_tokens`` output tokens so far."""
        rec = self.requests.get(rid)
        if rec is None or generated_tokens == rec.generated_tokens:
            return
        prog = self.programs[rec.program_id]
        if rec.state is RequestState.WAITING:
            prog.waiting_work = None  # not expected (progress comes from running requests), but kept exact
        prog.generated_tokens += generated_tokens - rec.generated_tokens
        rec.generated_tokens = generated_tokens
        prog.last_service = now
        self._touch(prog)

    def wants_token_stats(self, rid: str) -> bool:
        rec = self.requests.get(rid)
        return rec is not None and rec.token_stats is not None

    def on_token_stats(self, rid: str, entropy: float, confidence: float) -> bool:
        """One generated token's entropy (T = 1) and top-k confidence. True when this token took the
        request's window confidence below its ``stop_below_confidence`` (once per request): the
        caller ends the request."""
        rec = self.requests.get(rid)
        if rec is None or rec.token_stats is None:
            return False
        rec.token_stats.add(entropy, confidence)
        prog = self.programs[rec.program_id]
        prog.entropy_tokens += 1
        prog.entropy_sum += entropy
        if rec.low_confidence or not rec.token_stats.below_threshold:
            return False
        rec.low_confidence = True  # counted in low_confidence_stops once the stop ends it (on_finished)
        return True

    def on_finished(self, rid: str, aborted: bool, now: float) -> ProgramEntry | None:
        """The request ended (normally or by abort); its record is released.

        Returns the program if this request was its last live one (the program is now done).
        """
        rec = self.requests.pop(rid, None)
        if rec is None:
            return None
        prog = self.programs[rec.program_id]
        if rec.token_stats is not None:
            self.live_token_stats_requests -= 1
            if len(prog.finished_token_stats) < self.MAX_KEPT_REQUEST_STATS:
                prog.finished_token_stats.append({**rec.token_stats.summary(), "aborted": aborted})
        if rid in prog.waiting:
            self.estimate.adjust_waiting_work(prog, rec, -1)
            prog.waiting.discard(rid)
        prog.running.discard(rid)
        prog.undeferred_live -= not rec.deferred
        self._touch(prog)
        if aborted:
            prog.aborted += 1
            # a request that crossed on its last token finished normally: not a stop
            prog.low_confidence_stops += rec.low_confidence
        else:
            prog.finished += 1
            prog.finished_generated_tokens += rec.generated_tokens
            self.estimate.on_finished(rec.generated_tokens)
        if prog.live:
            return None
        self.live_programs -= 1
        prog.idle_since = now
        self._done[prog.program_id] = now
        self._trim_done()
        return prog

    # --- estimates for scheduling (work_estimate.py) --------------------------------------------
    def expected_output_tokens_prior(self) -> float:
        return self.estimate.prior

    @property
    def prior_epoch(self) -> int:
        return self.estimate.epoch

    def remaining_work(self, prog: ProgramEntry) -> float:
        return self.estimate.remaining_work(prog, self.requests)

    def expected_growth(self, rid: str) -> float:
        """Tokens the request is still expected to generate (its program's history, else the prior)."""
        rec = self.requests.get(rid)
        if rec is None:
            return 0.0
        return work_of_one(rec, self.estimate.expected_output_tokens(self.programs[rec.program_id]))

    def view(self, program_id: str) -> ProgramView | None:
        """The program's scheduling view, recomputed only when one of its events (or, for a program
        without history, the server-wide prior) changed it: most waiting programs are idle between
        two scheduling steps, so a step costs O(programs that changed) estimates."""
        prog = self.programs.get(program_id)
        if prog is None:
            return None
        prior = self.expected_output_tokens_prior() if not prog.finished else 0.0
        cached = prog.cached_view
        if cached is not None and cached[0] == prog.version and cached[1] == prior:
            return cached[2]
        work = self.remaining_work(prog)
        prog.remaining_work = work
        view = ProgramView(prog.first_arrival, bool(prog.running), work, prog.undeferred_live > 0)
        prog.cached_view = (prog.version, prior, view)
        return view

    def on_escalated(self, program_id: str) -> bool:
        """Record an escalation; True if it is a new one (the program was not escalated already)."""
        prog = self.programs.get(program_id)
        if prog is None or prog.escalated:
            return False
        prog.escalated = True
        prog.escalations += 1
        return True

    # --- retention --------------------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Drop done programs idle for longer than ``ttl``; return how many were dropped."""
        dropped = 0
        while self._done:
            program_id, idle_since = next(iter(self._done.items()))
            if now - idle_since < self.ttl:
                break
            self._done.popitem(last=False)
            self.programs.pop(program_id, None)
            self.changed.discard(program_id)
            dropped += 1
        return dropped

    def _trim_done(self) -> None:
        while len(self._done) > self.max_done_programs:
            program_id, _ = self._done.popitem(last=False)
            self.programs.pop(program_id, None)
            self.changed.discard(program_id)

    # --- views ------------------------------------------------------------------------------
    def get(self, program_id: str) -> ProgramEntry | None:
        return self.programs.get(program_id)

    def snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        """Plain-data view keyed by program key (see ``dynasor.core.tag.program_key``)."""
        for prog in self.programs.values():
            prog.remaining_work = self.remaining_work(prog) if prog.live else 0.0
            queued = [self.requests[rid].queued_at for rid in prog.waiting]
            prog.waiting_time = now - min(queued) if queued else 0.0
        return {p.key: p.summary() for p in self.programs.values()}
