"""Reasoning programs run inside the server's main process (written against sglang==0.5.23).

``TokenizerManagerBackend`` sends a program's requests straight to SGLang's ``TokenizerManager``
(``generate_request(GenerateReqInput(...), raw_request).__anext__()``, as ``Engine.async_generate``
does), so the OpenAI dynasor modes need no HTTP round trip. Tagging, per-program rid tracking and
the abort of a stopped program (with the retry for rids not yet dispatched) are ``EngineBackend``'s:
this backend only supplies the engine-shaped adapter and records every generation for the usage.

``ModeRun`` runs one dynasor-mode request's program: ``DynasorCoT`` under ``StaticThreshold(1.0)``
or ``SelfConsistency`` under ``StaticThreshold(threshold)``. For streaming, cot reasoning is
published chunk by chunk as the program keeps it (``on_text``), so what was streamed is always a
prefix of the final text: a chunk in flight when the probes agree is aborted and never shown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from dynasor.programs import DynasorCoT, SelfConsistency
from dynasor.programs.base import ProgramResult, ReasoningProgram
from dynasor.runtime.backends import EngineBackend, Generation
from dynasor.runtime.policies import StaticThreshold
from dynasor.runtime.runtime import ProgramRuntime
from dynasor.srt.openai_modes import CotOptions, ModeOptions, Outcome, cot_outcome, probe_sampling_params, sc_outcome

_BACKGROUND: set[asyncio.Task[None]] = set()  # stop tasks of failed runs, kept until done


class _TokenizerManagerEngine:
    """The slice of ``sglang.Engine`` that ``EngineBackend`` uses, over a live TokenizerManager.
    ``raw_request`` lets SGLang abort the requests when the HTTP client disconnects."""

    def __init__(self, tokenizer_manager: Any, raw_request: Any = None) -> None:
        self.tokenizer_manager = tokenizer_manager
        self.raw_request = raw_request

    async def async_generate(self, prompt: str, sampling_params: Mapping[str, Any], rid: str) -> dict[str, Any]:
        from sglang.srt.managers.io_struct import GenerateReqInput

        obj = GenerateReqInput(text=prompt, sampling_params=dict(sampling_params), rid=rid)
        return await self.tokenizer_manager.generate_request(obj, self.raw_request).__anext__()


class TokenizerManagerBackend(EngineBackend):
    """``EngineBackend`` over the server's own TokenizerManager; ``generations`` keeps every result."""

    def __init__(self, tokenizer_manager: Any, raw_request: Any = None, **kwargs: Any) -> None:
        super().__init__(_TokenizerManagerEngine(tokenizer_manager, raw_request), tag=True, **kwargs)
        self.generations: list[Generation] = []

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> Generation:
        generation = await super().generate(prompt, params, program_id, remaining_work)
        self.generations.append(generation)
        return generation


class _StreamingCoT(DynasorCoT):
    """DynasorCoT that reports each chunk of reasoning as it becomes part of the kept text."""

    def __init__(self, *args: Any, on_text: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_text = on_text

    def _record_chunk(self, generation: Generation) -> str | None:
        kept = len(self.state["text"])
        exit_reason = super()._record_chunk(generation)
        if len(self.state["text"]) > kept:
            self.on_text(self.state["text"][kept:])
        return exit_reason


@dataclass(frozen=True)
class ModeJob:
    """A validated dynasor-mode request: the prompt text, per-chunk/sample params, token budget."""

    options: ModeOptions
    prompt: str
    sampling_params: dict[str, Any]
    budget: int
    explicit_max_tokens: int | None


class ModeRun:
    """One request's program on the server's engine; ``on_text`` (cot only) receives kept reasoning."""

    def __init__(self, job: ModeJob, tokenizer_manager: Any, raw_request: Any = None,
                 on_text: Callable[[str], None] | None = None) -> None:
        self.job = job
        self.backend = TokenizerManagerBackend(tokenizer_manager, raw_request)
        self.program = self._program(job, on_text)
        threshold = 1.0 if isinstance(job.options, CotOptions) else job.options.threshold
        self.runtime = ProgramRuntime(self.backend, StaticThreshold(threshold), max_concurrent_programs=1)

    @staticmethod
    def _program(job: ModeJob, on_text: Callable[[str], None] | None) -> ReasoningProgram:
        options, params = job.options, job.sampling_params
        if isinstance(options, CotOptions):
            kwargs: dict[str, Any] = dict(chunk_tokens=options.probe_interval, window=options.window,
                                          max_tokens=job.budget, sampling_params=params,
                                          probe_params=probe_sampling_params(params))
            if on_text is None:
                return DynasorCoT(job.prompt, **kwargs)
            return _StreamingCoT(job.prompt, on_text=on_text, **kwargs)
        return SelfConsistency(job.prompt, cap=options.n, detect_at=options.detect_at,
                               sampling_params={**params, "max_new_tokens": job.budget})

    async def run(self) -> Outcome:
        """Run the program to its end. If it fails or is cancelled (e.g. the client left), whatever
        it still has in the engine is aborted in the background."""
        try:
            result = await self.runtime.run_one(self.program)
        except BaseException:
            task = asyncio.get_running_loop().create_task(self.backend.stop_program(self.program.program_id))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            raise
        return self.outcome(result)

    def outcome(self, result: ProgramResult) -> Outcome:
        job, pid, generations = self.job, self.program.program_id, self.backend.generations
        if isinstance(job.options, CotOptions):
            return cot_outcome(job.options, result, generations, pid, job.budget, job.explicit_max_tokens)
        return sc_outcome(job.options, result, generations, pid, job.budget)
