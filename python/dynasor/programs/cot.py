"""Dynasor-CoT: early exit of a long chain of thought by probing it (paper §2.1; docs/paper.md).

The reasoning is generated in chunks of ``chunk_tokens``. After each chunk a probe request
(prompt + reasoning so far + ``PROBE_SUFFIX``, at most 20 tokens) makes the model state its answer
now. The probe runs concurrently with the next chunk, its tokens never enter the reasoning, and its
answer is what follows ``\\boxed{`` up to the first unmatched ``}``. After every probe the runtime's
policy is consulted; when it says stop, the program aborts whatever it still has in the engine (the
in-flight chunk, late probes) with one call and answers with the latest probe's answer.

certaindex is the paper's C_k = (1/w)·#{j in the last w probes: y_j = y_k}, where a probe that is
empty or has a hesitation word never agrees (and C_k = 0 if the latest one is such a probe). It is
1.0 exactly when ``probe_consistent`` holds for the window and is capped below 1 otherwise, so
``StaticThreshold(1.0)`` is the public code's rule (τ = 1, w = N) and a threshold τ < 1 stops once
⌈τ·w⌉ probes of the window agree with the latest.

Each chunk continues from token ids, not text (``token_ids``, the default, when the backend can
tokenize): the prompt is tokenized once, and chunk k+1 is sent as prompt ids + every id generated so
far, a probe as those + the suffix's ids (tokenized once, without special tokens). So the server
never re-tokenizes a growing reasoning (quadratic work on a long chain of thought), and the model
continues from exactly the tokens it generated, which re-tokenized text need not reproduce. A
backend that cannot tokenize, or a chunk that comes back without ids, falls back to text.

``exit``: "probe" (the probes agreed and the policy stopped the program), "policy" (the policy
stopped it without agreement, e.g. ``LengthCap``), "finished" (the model ended its output),
"budget" (``max_tokens`` or the runtime's chunk grant was reached), "aborted" (someone else aborted
a chunk). On the last three the answer is extracted from the reasoning text, else the last probe's.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynasor.certaindex import answers_equivalent, extract_answer, extract_probe_answer, probe_consistent
from dynasor.certaindex.signals import has_hesitation
from dynasor.core.generation import Generation, Prompt
from dynasor.core.result import ProgramResult
from dynasor.programs.base import ProgramRunner, ReasoningProgram

PROBE_SUFFIX = "... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\\[ \\boxed{"
DEFAULT_SAMPLING = {"temperature": 0.6, "top_p": 0.95}
DEFAULT_PROBE = {"max_new_tokens": 20, "temperature": 0.6, "top_p": 0.95}
STOPPED_BY_PROGRAM = ("probe", "policy")


@dataclass
class ReasoningIds:
    """The token ids a chunk continues from: the prompt's, then every generated one. ``complete``
    turns False when a chunk came back without ids: the rest continues from text (the ids stay, so
    a recording can still tell the probes sent before)."""

    prompt: list[int]
    suffix: list[int]
    generated: list[int] = field(default_factory=list)
    complete: bool = True

    def chunk_prompt(self) -> list[int]:
        return self.prompt + self.generated

    def probe_prompt(self) -> list[int]:
        return self.prompt + self.generated + self.suffix


class DynasorCoT(ReasoningProgram):
    """Chunked chain of thought with probe-in-the-middle early exit. ``knob``: chunks generated.

    Defaults are the public code's ``mid`` preset (window 3, chunk 64) and the paper's 16K budget
    and sampling (temperature 0.6, top_p 0.95). ``sampling_params`` and ``probe_params`` are merged
    over those defaults; a chunk's ``max_new_tokens`` is always min(chunk_tokens, budget left).
    """

    def __init__(self, prompt: str, chunk_tokens: int = 64, window: int = 3, max_tokens: int = 16384,
                 sampling_params: Mapping[str, Any] | None = None,
                 probe_params: Mapping[str, Any] | None = None, probe_suffix: str = PROBE_SUFFIX,
                 token_ids: bool = True) -> None:
        super().__init__()
        if chunk_tokens < 1 or window < 1 or max_tokens < 1:
            raise ValueError(f"chunk_tokens, window and max_tokens must be >= 1, got "
                             f"{chunk_tokens}, {window}, {max_tokens}")
        self.prompt, self.chunk_tokens, self.window, self.max_tokens = prompt, chunk_tokens, window, max_tokens
        self.probe_suffix = probe_suffix
        self.sampling_params = {**DEFAULT_SAMPLING, **(sampling_params or {})}
        self.probe_params = {**DEFAULT_PROBE, **(probe_params or {})}
        self.max_chunks = math.ceil(max_tokens / chunk_tokens)
        self.token_ids = token_ids
        self.ids: ReasoningIds | None = None  # set at the start of execute when continuing from ids
        self.state = {"text": "", "reasoning_tokens": 0, "probe_tokens": 0,
                      "probe_answers": [], "probe_texts": []}

    @property
    def detect_at(self) -> int:
        """First knob step with a full probe window (where ``PeriodicRecheck`` starts counting)."""
        return self.window

    def update_certaindex(self) -> float:
        answers, texts, w = self.state["probe_answers"], self.state["probe_texts"], self.window
        if probe_consistent(answers, texts, w):
            self.certaindex = 1.0
        elif not answers or not answers[-1] or has_hesitation(texts[-1]):
            self.certaindex = 0.0
        else:
            agree = sum(1 for a, t in zip(answers[-w:], texts[-w:])
                        if a and not has_hesitation(t) and answers_equivalent(a, answers[-1]))
            self.certaindex = min(agree / w, (w - 1) / w)
        return self.certaindex

    def remaining_work(self) -> float:
        """Tokens this program may still generate, the unit the server's SJF expects: the unspent
        reasoning budget plus one probe per chunk left. An upper bound, since probes usually end
        the program sooner."""
        chunks_left = self.max_chunks - self.knob
        left = max(min(self.max_tokens - self.state["reasoning_tokens"], chunks_left * self.chunk_tokens), 0)
        return float(left + math.ceil(left / self.chunk_tokens) * self.probe_params["max_new_tokens"])

    def _budget_left(self) -> int:
        if self.knob >= self.max_chunks:
            return 0
        return max(self.max_tokens - self.state["reasoning_tokens"], 0)

    async def _tokenize(self, runtime: ProgramRunner) -> None:
        if not self.token_ids:
            return
        prompt = await runtime.tokenize(self.prompt)
        suffix = await runtime.tokenize(self.probe_suffix, add_special_tokens=False)
        if prompt is not None and suffix is not None:
            self.ids = ReasoningIds(prompt, suffix)

    def probe_reasoning(self, prompt: Prompt) -> str | tuple[int, ...] | None:
        """The reasoning a probe's prompt carries (text, or generated ids), None for a chunk's prompt:
        how a recording tells probes from chunks and matches each probe to its chunk."""
        if isinstance(prompt, str):
            suffix = self.probe_suffix
            return prompt[len(self.prompt):len(prompt) - len(suffix)] if prompt.endswith(suffix) else None
        ids = self.ids
        if ids is None or len(prompt) < len(ids.prompt) + len(ids.suffix) \
                or list(prompt[len(prompt) - len(ids.suffix):]) != ids.suffix:
            return None
        return tuple(prompt[len(ids.prompt):len(prompt) - len(ids.suffix)])

    def _spawn_chunk(self, runtime: ProgramRunner) -> asyncio.Task[Generation]:
        params = {**self.sampling_params, "max_new_tokens": min(self.chunk_tokens, self._budget_left())}
        ids = self.ids
        prompt = ids.chunk_prompt() if ids is not None and ids.complete else self.prompt + self.state["text"]
        return asyncio.create_task(runtime.generate(self, prompt, params))

    def _spawn_probe(self, runtime: ProgramRunner) -> asyncio.Task[Generation]:
        if self.ids is not None and self.ids.complete:
            prompt: Prompt = self.ids.probe_prompt()
        else:
            prompt = self.prompt + self.state["text"] + self.probe_suffix
        return asyncio.create_task(runtime.generate(self, prompt, self.probe_params))

    def _count(self, generation: Generation, kind: str) -> None:
        self.state[kind] += generation.completion_tokens
        self.generated_tokens += generation.completion_tokens

    def _record_probe(self, generation: Generation) -> bool:
        """Count a finished probe; keep its answer unless it was aborted. True if it was kept."""
        self._count(generation, "probe_tokens")
        if generation.aborted:
            return False
        self.state["probe_answers"].append(extract_probe_answer(generation.text))
        self.state["probe_texts"].append(generation.text)
        self.update_certaindex()
        return True

    def _record_chunk(self, generation: Generation) -> str | None:
        """Append a finished chunk; the exit reason if the reasoning cannot go on."""
        self._count(generation, "reasoning_tokens")
        if generation.aborted:
            return "aborted"
        self.state["text"] += generation.text
        if self.ids is not None and self.ids.complete:
            if len(generation.output_ids) == generation.completion_tokens:
                self.ids.generated += generation.output_ids
            else:  # the backend returned no ids: the rest continues from the text
                self.ids.complete = False
        self.knob += 1
        if generation.finish_reason == "stop":
            return "finished"
        return "budget" if self._budget_left() == 0 else None

    async def _run(self, runtime: ProgramRunner, probes: deque[asyncio.Task[Generation]],
                   chunk: list[asyncio.Task[Generation]]) -> str:
        """Chunks and probes until an exit; probes are judged in chunk order as they finish."""
        self.max_chunks = runtime.grant(self, self.max_chunks)
        if self._budget_left() == 0:
            return "budget"
        await self._tokenize(runtime)
        chunk.append(self._spawn_chunk(runtime))
        while True:
            head = [probes[0]] if probes else []
            await asyncio.wait([chunk[0], *head], return_when=asyncio.FIRST_COMPLETED)
            while probes and probes[0].done():
                if self._record_probe(probes.popleft().result()) and not runtime.should_continue(self):
                    return "probe" if self.certaindex == 1.0 else "policy"
            if not chunk[0].done():
                continue
            exit_reason = self._record_chunk(chunk.pop().result())
            if exit_reason is None:  # the next chunk first: it is the critical path, the probe rides along
                chunk.append(self._spawn_chunk(runtime))
            if exit_reason in (None, "budget"):
                probes.append(self._spawn_probe(runtime))
            if exit_reason is not None:
                return exit_reason

    async def execute(self, runtime: ProgramRunner) -> ProgramResult:
        probes: deque[asyncio.Task[Generation]] = deque()
        chunk: list[asyncio.Task[Generation]] = []
        try:
            exit_reason = await self._run(runtime, probes, chunk)
            if exit_reason in STOPPED_BY_PROGRAM:
                await runtime.stop(self)
            if chunk:  # in flight at a stop: aborted (or just done); spent, but not reasoning we keep
                self._count(await chunk.pop(), "reasoning_tokens")
            while probes:  # late probes: only counted after a stop, else judged (the last backs a budget exit)
                generation = await probes.popleft()
                if exit_reason in STOPPED_BY_PROGRAM:
                    self._count(generation, "probe_tokens")
                else:
                    self._record_probe(generation)
        finally:
            pending = [t for t in (*chunk, *probes) if not t.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*chunk, *probes, return_exceptions=True)
        return self._result(exit_reason)

    def _final_text(self, answer: str | None) -> str:
        """The reasoning, plus the public code's closing statement of the answer after a probe exit."""
        text = self.state["text"]
        if answer is None:
            return text
        close = "</think>" if "<think>" in self.prompt + text and "</think>" not in text else ""
        return (text + "\n\n..." + close + "\n Oh, I have got the answer to the whole problem\n**Final Answer:**\n"
                f"\\[\n \\boxed{{{answer}}}\n\\]")

    def _result(self, exit_reason: str) -> ProgramResult:
        answers = self.state["probe_answers"]
        last_probe = next((a for a in reversed(answers) if a), None)
        if exit_reason in STOPPED_BY_PROGRAM:
            answer = answers[-1] if exit_reason == "probe" else last_probe or extract_answer(self.state["text"])
            text = self._final_text(answer)
        else:
            answer = extract_answer(self.state["text"]) or last_probe
            text = self.state["text"]
        return ProgramResult(answer, self.knob, self.generated_tokens, exit_reason in STOPPED_BY_PROGRAM,
                             self.certaindex, {
                                 "exit": exit_reason, "chunks": self.knob, "text": text,
                                 "reasoning_tokens": self.state["reasoning_tokens"],
                                 "probe_tokens": self.state["probe_tokens"], "probe_answers": list(answers),
                             })
