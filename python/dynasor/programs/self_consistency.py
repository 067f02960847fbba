"""Self-consistency with certaindex early stopping.

All branches share the prompt. When ``detect_at`` of them have finished, the answer-cluster
certaindex is read and the runtime's policy decides: stop, or run to the cap. Three launch orders
(``launch``):

- ``together`` (default): every branch starts together, so the engine gangs them and prefills the
  prompt once; a stop aborts the remaining branches in the engine with one call. Lowest latency,
  but on a busy engine the aborted branches have already spent part of their tokens.
- ``staged``: the paper's intra-program scheduler (5 branches first, more only if the policy
  grants them): ``detect_at`` branches, then the rest only if the policy lets the program go on.
  A stop wastes nothing; a program that goes on pays a second round of latency.
- ``deferred``: every branch starts together, those beyond ``detect_at`` tagged ``deferred``: the
  server queues them behind every other request while the detection round runs (they use idle
  capacity only), then ranks them as the program's own. A stop aborts them; a program that goes on
  finds them queued with the prompt cached, or already running.

The answer is the majority vote of the branches that finished (after a stop, branches that were
already done before the abort reached the engine still vote).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from dynasor.certaindex import answer_certaindex, extract_answer, majority_vote
from dynasor.core.generation import Generation
from dynasor.core.result import ProgramResult
from dynasor.programs.base import ProgramRunner, ReasoningProgram


def at_detection(answered: int, detect_at: int, cap: int) -> bool:
    """The decision point of self-consistency: the ``detect_at``-th answer just came in and the
    cap is not reached (at the cap there is nothing left to save). The offline replay uses it too."""
    return answered == detect_at < cap


LAUNCH_ORDERS = ("together", "staged", "deferred")


class SelfConsistency(ReasoningProgram):
    def __init__(self, prompt: str, cap: int = 10, detect_at: int = 5,
                 sampling_params: Mapping[str, Any] | None = None, launch: str = "together") -> None:
        super().__init__()
        if not 1 <= detect_at <= cap:
            raise ValueError(f"need 1 <= detect_at <= cap, got detect_at={detect_at}, cap={cap}")
        if launch not in LAUNCH_ORDERS:
            raise ValueError(f"launch must be one of {LAUNCH_ORDERS}, got {launch!r}")
        self.prompt, self.cap, self.detect_at, self.launch = prompt, cap, detect_at, launch
        self.sampling_params = dict(sampling_params or {"temperature": 0.8, "max_new_tokens": 128})
        self.state = {"answers": [], "tokens": 0, "aborted": 0}

    def update_certaindex(self) -> float:
        self.certaindex = answer_certaindex(self.state["answers"])
        return self.certaindex

    def remaining_work(self) -> float | None:
        """Unfinished branches × their token cap (an upper bound: the engine counts it down)."""
        unfinished = self.cap - len(self.state["answers"]) - self.state["aborted"]
        return max(unfinished, 0) * float(self.sampling_params.get("max_new_tokens", 128))

    def _record(self, generation: Generation) -> bool:
        """Count a finished branch; True if it brought an answer (it was not aborted)."""
        self.state["tokens"] += generation.completion_tokens
        if generation.aborted:
            self.state["aborted"] += 1
            return False
        self.state["answers"].append(extract_answer(generation.text))
        self.knob = len(self.state["answers"])
        return True

    def _launch(self, runtime: ProgramRunner, deferred: bool = False) -> asyncio.Task[Generation]:
        return asyncio.create_task(runtime.generate(self, self.prompt, self.sampling_params, deferred=deferred))

    async def execute(self, runtime: ProgramRunner) -> ProgramResult:
        granted = runtime.grant(self, self.cap)
        first = min(self.detect_at, granted)
        launched = first if self.launch == "staged" else granted
        pending = {self._launch(runtime, deferred=self.launch == "deferred" and i >= first) for i in range(launched)}
        stopped, detected = False, None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not self._record(task.result()) or not at_detection(self.knob, self.detect_at, granted):
                        continue
                    detected = self.update_certaindex()
                    if not runtime.should_continue(self):
                        stopped = True
                        if pending:
                            await runtime.stop(self)
                    elif launched < granted:
                        pending |= {self._launch(runtime) for _ in range(granted - launched)}
                        launched = granted
        finally:  # cancelled or failed: closing the branches' streams aborts them in the engine
            for task in pending:
                task.cancel()
        self.update_certaindex()
        return ProgramResult(majority_vote(self.state["answers"]), self.knob, self.state["tokens"], stopped,
                             self.certaindex, {"aborted_branches": self.state["aborted"],
                                               "answers": self.state["answers"], "certaindex_at_detection": detected})
