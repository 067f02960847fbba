"""Reasoning programs driven in simulated time: self-consistency as ``SelfConsistency`` runs it.

A program's behaviour is data (``ScProgram``): its prompt length, the output length of each of its
branches (recorded live or drawn from a stated distribution) and whether the certaindex check at
``detect_at`` answers stops it. The driver reproduces the live program's control flow with the
live rule (``at_detection``): ``together`` submits every branch at once; ``staged`` the first
``detect_at``, and the rest only if the program goes on; ``deferred`` every branch at once, those
beyond ``detect_at`` tagged deferred (the scheduler runs them on idle capacity until the program's
first round is done); a stop aborts what is still in the engine. Branches share the prompt as their
prefix (one cache entry per program).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from dynasor.certaindex.decision import at_detection
from dynasor.sim.request import SimRequest


class RequestSink(Protocol):
    """Where a program's requests go: one engine (``SimEngine``) or several (``SimCluster``)."""

    now: float

    def submit(self, req: SimRequest) -> None: ...

    def abort(self, req: SimRequest) -> None: ...


@dataclass(frozen=True)
class ScProgram:
    program_id: str
    arrival: float
    prompt_tokens: int
    branch_tokens: tuple[int, ...]  # output length of each branch, in launch order
    max_new_tokens: int
    detect_at: int
    stops: bool  # the certaindex check at detect_at says stop
    level: int = 0
    header: tuple[str, int] | None = None  # the start of the prompt every program shares (few-shot examples)


@dataclass
class SimulatedProgram:
    """One program's run in the engine; ``finished_at`` once the client heard its last request
    end. ``submit`` sends a request towards the engine (``simulation.run`` delays it by the
    transport time); a stop aborts the program's requests in the engine at once."""

    program: ScProgram
    certaindex: bool
    launch: str = "together"
    tag: bool = True  # tagged requests (Dynasor systems); stock SGLang sees untagged ones
    submit: Callable[[SimRequest], None] | None = None
    client_priority: bool = False  # sends SGLang's ``priority``: unfinished branches x token budget
    requests: list[SimRequest] = field(default_factory=list)
    answered: int = 0
    heard: int = 0  # requests whose end the client has heard of
    stopped: bool = False
    finished_at: float | None = None
    tokens: int = 0

    @property
    def latency(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.program.arrival

    def start(self, engine: RequestSink) -> None:
        p = self.program
        first = min(p.detect_at, len(p.branch_tokens)) if self.launch == "staged" else len(p.branch_tokens)
        self._launch(engine, range(first))

    def _launch(self, engine: RequestSink, indices: range) -> None:
        p = self.program
        for i in indices:
            deferred = self.launch == "deferred" and self.tag and i >= p.detect_at
            req = SimRequest(f"{p.program_id}-{i}", p.program_id if self.tag else None, p.program_id,
                             p.prompt_tokens, 0, p.branch_tokens[i], p.max_new_tokens, deferred=deferred,
                             source=p.program_id, header=p.header, priority=self.client_priority_now())
            self.requests.append(req)
            (self.submit or engine.submit)(req)

    def client_priority_now(self) -> int | None:
        """What the client knows before its answers arrive: branches not yet ended × their budget."""
        if not self.client_priority:
            return None
        return (len(self.program.branch_tokens) - self.heard) * self.program.max_new_tokens

    def on_request_end(self, req: SimRequest, engine: RequestSink, now: float | None = None) -> None:
        """The client hears that ``req`` ended (at ``now``, default the engine's clock)."""
        p, cap = self.program, len(self.program.branch_tokens)
        self.heard += 1
        self.tokens += req.generated
        if not req.aborted:
            self.answered += 1
            if at_detection(self.answered, p.detect_at, cap):
                if self.certaindex and p.stops:
                    self.stopped = True
                    for other in self.requests:
                        if not other.done:
                            engine.abort(other)
                elif self.launch == "staged":
                    self._launch(engine, range(len(self.requests), cap))
        # done once every request it sent has been heard of (a staged program that goes on has
        # sent its next round by now; requests that ended in the same step are heard one by one)
        if self.heard == len(self.requests) and self.finished_at is None:
            self.finished_at = engine.now if now is None else now
