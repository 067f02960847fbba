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
already done before the abort reached the engine still vote). With ``confidence`` (a ``DeepConf``)
it is DeepConf's confidence-filtered, weighted vote, and in its ``online`` mode the first
``warmup`` branches run first and set the confidence threshold the later ones are stopped at in
the engine (``deepconf.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dynasor.certaindex import answer_certaindex, at_detection, extract_answer, majority_vote
from dynasor.core.generation import Generation
from dynasor.core.result import ProgramResult
from dynasor.core.tag import LOW_CONFIDENCE as LOW
from dynasor.core.tag import NO_HINTS, RequestHints
from dynasor.programs.base import ProgramRunner, ReasoningProgram
from dynasor.programs.deepconf import DeepConf

LAUNCH_ORDERS = ("together", "staged", "deferred")


@dataclass
class BranchTally:
    """What the program knows of its finished branches (an aborted branch brings no answer)."""

    answers: list[str | None] = field(default_factory=list)
    confidences: list[float | None] = field(default_factory=list)  # DeepConf's, one per answer
    aborted: int = 0
    low_confidence: int = 0  # aborted by the engine below DeepConf-online's threshold
    threshold: float | None = None  # DeepConf-online's, set once its warm-up finished

    @property
    def finished(self) -> int:
        return len(self.answers) + self.aborted


class SelfConsistency(ReasoningProgram):
    def __init__(self, prompt: str, cap: int = 10, detect_at: int = 5,
                 sampling_params: Mapping[str, Any] | None = None, launch: str = "together",
                 confidence: DeepConf | None = None) -> None:
        super().__init__()
        if not 1 <= detect_at <= cap:
            raise ValueError(f"need 1 <= detect_at <= cap, got detect_at={detect_at}, cap={cap}")
        if launch not in LAUNCH_ORDERS:
            raise ValueError(f"launch must be one of {LAUNCH_ORDERS}, got {launch!r}")
        self.prompt, self.cap, self.detect_at, self.launch = prompt, cap, detect_at, launch
        self.confidence = confidence
        self.sampling_params = dict(sampling_params or {"temperature": 0.8, "max_new_tokens": 128})
        self.tally = BranchTally()

    @property
    def online_confidence(self) -> bool:
        return self.confidence is not None and self.confidence.online

    def update_certaindex(self) -> float:
        self.certaindex = answer_certaindex(self.tally.answers)
        return self.certaindex

    def remaining_work(self) -> float | None:
        """Unfinished branches × their token cap (an upper bound: the engine counts it down)."""
        unfinished = self.cap - self.tally.finished
        return max(unfinished, 0) * float(self.sampling_params.get("max_new_tokens", 128))

    def _record(self, generation: Generation) -> bool:
        """Count a finished branch; True if it brought an answer (it was not aborted)."""
        self.generated_tokens += generation.completion_tokens
        if generation.aborted:
            self.tally.aborted += 1
            self.tally.low_confidence += generation.meta_info.get("finish_reason", {}).get("message") == LOW
            return False
        self.tally.answers.append(extract_answer(generation.text))
        self.tally.confidences.append(self.confidence.confidence(generation) if self.confidence else None)
        self.knob = len(self.tally.answers)
        return True

    def _launch(self, runtime: ProgramRunner, hints: RequestHints = NO_HINTS) -> asyncio.Task[Generation]:
        if self.confidence is not None:  # DeepConf reads every branch's per-token confidence
            hints = replace(hints, token_stats=True)
        return asyncio.create_task(runtime.generate(self, self.prompt, self.sampling_params, hints=hints))

    def _first_round(self, granted: int) -> int:
        """Branches launched at the start: the warm-up of DeepConf-online, the detection round when
        staged, else all."""
        if self.confidence is not None and self.online_confidence:
            return min(self.confidence.warmup, granted)
        return min(self.detect_at, granted) if self.launch == "staged" else granted

    def _first_hints(self, branch: int, granted: int) -> RequestHints:
        """``deferred``: the branches beyond the detection round wait behind every other request."""
        if self.launch == "deferred" and branch >= min(self.detect_at, granted):
            return RequestHints(deferred=True)
        return NO_HINTS

    def _may_launch_rest(self, first: int, detected: float | None) -> bool:
        """DeepConf-online: once its warm-up (the first round) finished, which sets the threshold;
        staged: once the detection round said go on (a stop never gets here)."""
        if self.online_confidence:
            return self.tally.finished >= first
        return self.launch == "staged" and detected is not None

    def _rest_hints(self) -> RequestHints:
        """Hints of the branches launched after DeepConf-online's warm-up: its threshold."""
        conf = self.confidence
        if conf is None or not conf.online:
            return NO_HINTS
        self.tally.threshold = conf.threshold([c for c in self.tally.confidences if c is not None])
        return RequestHints(stop_below_confidence=self.tally.threshold, confidence_window=conf.window)

    async def execute(self, runtime: ProgramRunner) -> ProgramResult:
        granted = runtime.grant(self, self.cap)
        first = self._first_round(granted)
        held = granted - first  # launched once the first round allows (staged, DeepConf-online)
        pending = {self._launch(runtime, self._first_hints(i, granted)) for i in range(first)}
        stopped, detected = False, None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if self._record(task.result()) and at_detection(self.knob, self.detect_at, granted):
                        detected = self.update_certaindex()
                        if not runtime.should_continue(self):
                            stopped = True
                            if pending:
                                await runtime.stop(self)
                    if held and not stopped and self._may_launch_rest(first, detected):
                        hints = self._rest_hints()
                        pending |= {self._launch(runtime, hints) for _ in range(held)}
                        held = 0
        finally:  # cancelled or failed: closing the branches' streams aborts them in the engine
            for task in pending:
                task.cancel()
        self.update_certaindex()
        tally = self.tally
        answer = (self.confidence.vote(tally.answers, tally.confidences) if self.confidence
                  else majority_vote(tally.answers))
        return ProgramResult(answer, self.knob, self.generated_tokens, stopped, self.certaindex, {
            "aborted_branches": tally.aborted, "answers": tally.answers, "certaindex_at_detection": detected,
            "confidences": tally.confidences, "low_confidence_stops": tally.low_confidence,
            "confidence_threshold": tally.threshold})
