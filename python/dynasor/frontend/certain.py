"""``fork_until_certain``: self-consistency inside an ``sgl.function``, stopped by certaindex.

The frontend twin of ``dynasor.programs.SelfConsistency``, with its stop rule
(``dynasor.certaindex.at_detection`` and the runtime's ``StaticThreshold``): branches forked from
the state sample an answer each; when the ``detect_at``-th answer is in, the answer-cluster
certaindex is read, and if it reaches ``threshold`` the program's outstanding requests are aborted
in the engine with one call (``POST /dynasor/programs/{id}/abort``) and no more branches start.

By default all ``n_max`` branches start at once: they share the state's text as prompt, which the
fork prefills once, and the server gangs them. With ``width < n_max`` at most ``width`` run at a
time and the fork grows by one branch whenever one finishes, trading latency for fewer wasted
tokens at the stop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sglang as sgl
from sglang.lang.interpreter import ProgramState

from dynasor.certaindex import answer_certaindex, at_detection, extract_answer, majority_vote
from dynasor.frontend.program import _endpoint_of
from dynasor.program_runtime.allocation import StaticThreshold


@dataclass
class CertainFork:
    """Outcome of ``fork_until_certain``; answers and texts are in completion order."""

    answer: str | None
    certaindex: float
    stopped_early: bool
    started: int
    aborted: int
    completion_tokens: int
    program_id: str
    answers: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def _finish_type(meta: Any) -> str | None:
    reason = meta.get("finish_reason") if isinstance(meta, dict) else None
    return reason.get("type") if isinstance(reason, dict) else reason


class _Fork:
    """The branches of one ``fork_until_certain`` call and the queue their completions arrive on."""

    def __init__(self, s: ProgramState, name: str, gen_kwargs: dict[str, Any]) -> None:
        self.s, self.name, self.gen_kwargs = s, name, gen_kwargs
        self.done: queue.Queue[ProgramState] = queue.Queue()
        self.branches: list[ProgramState] = []
        self.in_flight = 0

    def grow(self, k: int) -> None:
        for branch in self.s.fork(k).states:
            branch += sgl.gen(self.name, **self.gen_kwargs)
            event = branch.stream_executor.variable_event[self.name]  # set on success and on error
            threading.Thread(target=self._notify, args=(event, branch), daemon=True).start()
            self.branches.append(branch)
        self.in_flight += k

    def _notify(self, event: threading.Event, branch: ProgramState) -> None:
        event.wait()
        self.done.put(branch)

    def next_done(self) -> ProgramState:
        branch = self.done.get()
        self.in_flight -= 1
        return branch

    def drain(self) -> list[ProgramState]:
        return [self.next_done() for _ in range(self.in_flight)]

    def end(self) -> None:
        for branch in self.branches:
            branch.stream_executor.end()


def fork_until_certain(s: ProgramState, n_max: int = 16, detect_at: int = 5, threshold: float = 0.7, *,
                       width: int | None = None, name: str = "branch",
                       extract: Callable[[str], str | None] = extract_answer, **gen_kwargs: Any) -> CertainFork:
    """Fork branches of ``s`` that each ``sgl.gen(name, **gen_kwargs)`` until the answers are certain.

    Stops when the ``detect_at``-th branch has answered and ``answer_certaindex`` of the answers
    (``extract`` of each text) is ≥ ``threshold``; otherwise runs ``n_max`` branches. On a
    stop every outstanding request of the program is aborted: branches that finish anyway still
    vote, aborted ones do not (they are counted in ``aborted``). The branches are not joined into
    ``s``; their texts are in the result. A branch whose request fails raises ``RuntimeError``
    (after the rest were aborted).
    """
    if not 1 <= detect_at <= n_max:
        raise ValueError(f"need 1 <= detect_at <= n_max, got detect_at={detect_at}, n_max={n_max}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    rule = StaticThreshold(threshold)  # the threshold rule of the runtime's policy, re-read after every answer
    width = n_max if width is None else width
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    endpoint = _endpoint_of(s)
    pid = endpoint.program_of(s.stream_executor).program_id
    s.sync()  # fork() commits the shared prefix only if the queued text has been applied already
    fork = _Fork(s, name, gen_kwargs)
    result = CertainFork(answer=None, certaindex=0.0, stopped_early=False, started=0, aborted=0,
                         completion_tokens=0, program_id=pid)
    abort_sent = interrupted = False
    try:
        fork.grow(min(width, n_max))
        result.started = fork.in_flight
        while fork.in_flight:
            executor = fork.next_done().stream_executor
            if name not in executor.meta_info:  # the request failed (set with the text on success only)
                if abort_sent or interrupted:
                    result.aborted += 1
                    continue
                if fork.in_flight:
                    endpoint.abort_program(pid)
                fork.drain()
                raise RuntimeError(f"a fork_until_certain branch failed: {executor.error()!r}")
            meta = executor.meta_info.get(name) or {}
            result.completion_tokens += int(meta.get("completion_tokens", 0) or 0)
            if _finish_type(meta) == "abort":
                result.aborted += 1
                interrupted = True  # aborted by us, or by someone else: either way start no more
                continue
            result.texts.append(executor.variables[name])
            result.answers.append(extract(executor.variables[name]))
            if result.stopped_early or interrupted:
                continue  # finished before the abort reached the engine: it still votes
            if at_detection(len(result.answers), detect_at, n_max) and rule.stops(answer_certaindex(result.answers)):
                result.stopped_early = True
                if fork.in_flight:
                    endpoint.abort_program(pid)
                    abort_sent = True
            elif result.started < n_max:
                fork.grow(1)
                result.started += 1
    finally:
        fork.end()
    result.certaindex = answer_certaindex(result.answers)
    result.answer = majority_vote(result.answers)
    return result
