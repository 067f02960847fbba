"""Self-consistency with certaindex early stopping.

All ``cap`` branches share the prompt and start together (so the engine can gang them and prefill
the prompt once). When ``detect_at`` of them have finished, the answer-cluster certaindex is read
and the runtime's policy decides: stop (the remaining branches are aborted in the engine with one
call) or run to the cap. The answer is the majority vote of the branches that finished (after a
stop, branches that were already done before the abort reached the engine still vote).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping

from dynasor.certaindex import answer_certaindex, cluster_answers, extract_answer
from dynasor.programs.base import ProgramResult, ReasoningProgram

if TYPE_CHECKING:
    from dynasor.runtime.runtime import ProgramRuntime


class SelfConsistency(ReasoningProgram):
    def __init__(self, prompt: str, cap: int = 10, detect_at: int = 5,
                 sampling_params: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not 1 <= detect_at <= cap:
            raise ValueError(f"need 1 <= detect_at <= cap, got detect_at={detect_at}, cap={cap}")
        self.prompt, self.cap, self.detect_at = prompt, cap, detect_at
        self.sampling_params = dict(sampling_params or {"temperature": 0.8, "max_new_tokens": 128})
        self.state = {"answers": [], "tokens": 0, "aborted": 0}

    def update_certaindex(self) -> float:
        self.certaindex = answer_certaindex(self.state["answers"])
        return self.certaindex

    def remaining_work(self) -> float | None:
        """Unfinished branches × their token cap (an upper bound: the engine counts it down)."""
        unfinished = self.cap - len(self.state["answers"]) - self.state["aborted"]
        return max(unfinished, 0) * float(self.sampling_params.get("max_new_tokens", 128))

    def majority(self) -> str | None:
        answers = [a for a in self.state["answers"] if a is not None]
        if not answers:
            return None
        clusters = cluster_answers(answers)
        best = max(clusters, key=len)
        return Counter(answers[i] for i in best).most_common(1)[0][0]

    async def execute(self, runtime: "ProgramRuntime") -> ProgramResult:
        granted = runtime.grant(self, self.cap)
        tasks = [asyncio.create_task(runtime.generate(self, self.prompt, self.sampling_params))
                 for _ in range(granted)]
        stopped, detected = False, None
        for next_done in asyncio.as_completed(tasks):
            generation = await next_done
            self.state["tokens"] += generation.completion_tokens
            if generation.aborted:
                self.state["aborted"] += 1
                continue
            self.state["answers"].append(extract_answer(generation.text))
            self.knob = len(self.state["answers"])
            if self.knob == self.detect_at and self.knob < granted:
                detected = self.update_certaindex()
                if not runtime.should_continue(self):
                    stopped = True
                    await runtime.stop(self)
        self.update_certaindex()
        return ProgramResult(self.majority(), self.knob, self.state["tokens"], stopped, self.certaindex,
                             {"aborted_branches": self.state["aborted"], "answers": self.state["answers"],
                              "certaindex_at_detection": detected})
