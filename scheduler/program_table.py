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
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from dynasor.core.tag import program_key
from dynasor.scheduler.ordering import ProgramView
from dynasor.scheduler.token_stats_aggregate import TokenStatsAggregate

PRIOR_TOLERANCE = 0.1  # relative move of the server-wide mean output length before estimates follow


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
        # Server-wide mean output length of finished requests: the SJF prior of a program with no history.
        # Estimates use a copy that follows the mean only once it moved by PRIOR_TOLERANCE: every
        # estimate built on the prior stays put meanwhile, and ``prior_epoch`` says when it moved.
        self.default_output_tokens = default_output_tokens
        self._finished_requests = 0
        self._finished_tokens = 0
        self._prior = default_output_tokens
        self.prior_epoch = 0
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
        self._adjust_waiting_work(prog, self.requests[rid], +1)
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
            self._adjust_waiting_work(prog, rec, -1)
        sets[source].discard(rid)
        sets[target].add(rid)
        if target is RequestState.WAITING:
            self._adjust_waiting_work(prog, rec, +1)
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
            self._adjust_waiting_work(prog, rec, -1)
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
            self._finished_requests += 1
            self._finished_tokens += rec.generated_tokens
            mean = self._finished_tokens / self._finished_requests
            if abs(mean - self._prior) > PRIOR_TOLERANCE * self._prior:
                self._prior = mean
                self.prior_epoch += 1
        if prog.live:
            return None
        self.live_programs -= 1
        prog.idle_since = now
        self._done[prog.program_id] = now
        self._trim_done()
        return prog

    # --- estimates for scheduling -----------------------------------------------------------
    def expected_output_tokens_prior(self) -> float:
        """Tokens a request with no program history is expected to generate (server-wide mean, moved
        in steps of PRIOR_TOLERANCE)."""
        return self._prior

    def expected_output_tokens(self, prog: ProgramEntry) -> float:
        """Tokens one more request of ``prog`` is expected to generate (program locality first)."""
        if prog.finished:
            return prog.finished_generated_tokens / prog.finished
        return self.expected_output_tokens_prior()

    def remaining_work(self, prog: ProgramEntry) -> float:
        """Estimated tokens still to generate: the client's hint if any, else the history."""
        if prog.remaining_work_hint is not None:
            done_since_hint = prog.generated_tokens - prog.hint_generated_tokens
            return max(prog.remaining_work_hint - done_since_hint, 0.0)
        per_request = self.expected_output_tokens(prog)
        cached = prog.waiting_work
        if cached is None or cached[0] != per_request:
            cached = prog.waiting_work = (per_request, self._work_of(prog.waiting, per_request))
        return cached[1] + self._work_of(prog.running, per_request)

    def _adjust_waiting_work(self, prog: ProgramEntry, rec: RequestRecord, sign: int) -> None:
        """Keep the cached waiting work up to date as one request joins (+1) or leaves (-1) the waiting set."""
        cached = prog.waiting_work
        if cached is not None:
            prog.waiting_work = (cached[0], cached[1] + sign * self._work_of_one(rec, cached[0]))

    @staticmethod
    def _work_of_one(rec: RequestRecord, per_request: float) -> float:
        cap = rec.max_new_tokens
        expected = per_request if cap is None or cap > per_request else cap
        return expected - rec.generated_tokens if expected > rec.generated_tokens else 0.0

    def _work_of(self, rids: set[str], per_request: float) -> float:
        """Tokens the requests still have to generate, each expected to make ``per_request`` in all
        (capped by its ``max_new_tokens``)."""
        requests, one = self.requests, self._work_of_one
        return sum((one(requests[rid], per_request) for rid in rids), 0.0)

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


def merge_summaries(per_rank: list[dict[str, dict[str, Any]]],
                    ranks: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """Combine the snapshots of several data-parallel ranks (``ranks``: their rank numbers, by default
    their positions) into one view per program; ``dp_ranks`` lists the ranks that hold it."""
    merged: dict[str, dict[str, Any]] = {}
    for rank, snapshot in zip(range(len(per_rank)) if ranks is None else ranks, per_rank):
        for key, summary in snapshot.items():
            into = merged.get(key)
            if into is None:
                merged[key] = {**summary, "requests": dict(summary["requests"]), "dp_ranks": [rank],
                               "finished_request_token_stats": list(summary["finished_request_token_stats"])}
                continue
            into["dp_ranks"] = sorted({*into["dp_ranks"], rank})
            for name, count in summary["requests"].items():
                into["requests"][name] += count
            into["prompt_tokens"] += summary["prompt_tokens"]
            into["generated_tokens"] += summary["generated_tokens"]
            into["first_arrival"] = min(into["first_arrival"], summary["first_arrival"])
            services = [t for t in (into["last_service"], summary["last_service"]) if t is not None]
            into["last_service"] = max(services) if services else None
            into["estimated_remaining_work"] += summary["estimated_remaining_work"]
            into["waiting_time"] = max(into["waiting_time"], summary["waiting_time"])
            into["escalations"] += summary["escalations"]
            into["low_confidence_stops"] += summary["low_confidence_stops"]
            tokens = into["entropy_tokens"] + summary["entropy_tokens"]
            if tokens:
                into["mean_entropy"] = (
                    (into["mean_entropy"] or 0.0) * into["entropy_tokens"]
                    + (summary["mean_entropy"] or 0.0) * summary["entropy_tokens"]
                ) / tokens
            into["entropy_tokens"] = tokens
            into["finished_request_token_stats"] += summary["finished_request_token_stats"]
            into["state"] = program_state(into["requests"]["waiting"], into["requests"]["running"])
    return merged
