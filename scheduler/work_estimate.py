"""How much a program still has to generate: the shortest-job-first estimate (plain data).

A program's remaining work is the client's hint counted down by what it has generated since, or
else the work of its waiting and running requests, each expected to generate what the program's
finished requests did on average (program locality), or the server-wide mean while it has no
history (the *prior*), capped by the request's ``max_new_tokens``. The prior follows the mean only
once it moved by ``PRIOR_TOLERANCE``, so estimates built on it stay put meanwhile; ``epoch`` says
when it moved. A program's waiting work is cached per expected length (``ProgramEntry.waiting_work``)
and kept up to date as requests join and leave its queue: progress moves only running requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dynasor.scheduler.program_entry import ProgramEntry, RequestRecord

PRIOR_TOLERANCE = 0.1  # relative move of the server-wide mean output length before estimates follow


class WorkEstimate:
    def __init__(self, default_output_tokens: float = 256.0) -> None:
        self.default_output_tokens = default_output_tokens
        self.prior = default_output_tokens  # tokens a request without program history is expected to make
        self.epoch = 0
        self._finished_requests = 0
        self._finished_tokens = 0

    def on_finished(self, generated_tokens: int) -> None:
        """A request finished normally after ``generated_tokens``: the server-wide mean moves."""
        self._finished_requests += 1
        self._finished_tokens += generated_tokens
        mean = self._finished_tokens / self._finished_requests
        if abs(mean - self.prior) > PRIOR_TOLERANCE * self.prior:
            self.prior = mean
            self.epoch += 1

    def expected_output_tokens(self, prog: ProgramEntry) -> float:
        """Tokens one more request of ``prog`` is expected to generate (program locality first)."""
        if prog.finished:
            return prog.finished_generated_tokens / prog.finished
        return self.prior

    def remaining_work(self, prog: ProgramEntry, requests: Mapping[str, RequestRecord]) -> float:
        """Estimated tokens still to generate: the client's hint if any, else the history."""
        if prog.remaining_work_hint is not None:
            done_since_hint = prog.generated_tokens - prog.hint_generated_tokens
            return max(prog.remaining_work_hint - done_since_hint, 0.0)
        per_request = self.expected_output_tokens(prog)
        cached = prog.waiting_work
        if cached is None or cached[0] != per_request:
            cached = prog.waiting_work = (per_request, work_of(requests, prog.waiting, per_request))
        return cached[1] + work_of(requests, prog.running, per_request)

    @staticmethod
    def adjust_waiting_work(prog: ProgramEntry, rec: RequestRecord, sign: int) -> None:
        """Keep the cached waiting work up to date as one request joins (+1) or leaves (-1) the waiting set."""
        cached = prog.waiting_work
        if cached is not None:
            prog.waiting_work = (cached[0], cached[1] + sign * work_of_one(rec, cached[0]))


def work_of_one(rec: RequestRecord, per_request: float) -> float:
    cap = rec.max_new_tokens
    expected = per_request if cap is None or cap > per_request else cap
    return expected - rec.generated_tokens if expected > rec.generated_tokens else 0.0


def work_of(requests: Mapping[str, RequestRecord], rids: Iterable[str], per_request: float) -> float:
    """Tokens the requests still have to generate, each expected to make ``per_request`` in all
    (capped by its ``max_new_tokens``)."""
    return sum((work_of_one(requests[rid], per_request) for rid in rids), 0.0)
