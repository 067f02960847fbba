"""``ProgramModeRunner``: a dynasor-mode request's program, run on the server's own engine.

``DynasorCoT`` under ``StaticThreshold(1.0)`` or ``SelfConsistency`` under
``StaticThreshold(threshold)``, through ``EngineBackend`` over the engine the caller hands in
(the server's TokenizerManager: no HTTP round trip), with every generation recorded for the usage.
For streaming, cot reasoning is published chunk by chunk as the program keeps it (``on_text``), so
what was streamed is always a prefix of the final text: a chunk in flight when the probes agree is
aborted and never shown. If the run fails or is cancelled (e.g. the client left), whatever it
still has in the engine is aborted in the background.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dynasor.core.generation import Generation
from dynasor.core.result import ProgramResult
from dynasor.modes.job import ModeJob
from dynasor.modes.options import PROBE_MAX_TOKENS, CotOptions, ModeOptions, probe_sampling_params
from dynasor.modes.outcome import ModeOutcome, cot_outcome, sc_outcome
from dynasor.program_runtime.allocation import StaticThreshold
from dynasor.program_runtime.backends import EngineBackend, InProcessEngine, RecordingBackend
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs import DynasorCoT, SelfConsistency
from dynasor.programs.base import ReasoningProgram
from dynasor.programs.cot import PROBE_SUFFIX
from dynasor.programs.deepconf import DeepConf

CONTEXT_SLACK = 32  # tokens kept free for re-tokenisation drift of the reasoning text
_BACKGROUND: set[asyncio.Task[None]] = set()  # stop tasks of failed runs, kept until done


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


def mode_program(job: ModeJob, on_text: Callable[[str], None] | None = None) -> ReasoningProgram:
    options, params = job.options, job.sampling_params
    if isinstance(options, CotOptions):
        kwargs: dict[str, Any] = {"chunk_tokens": options.probe_interval, "window": options.window,
                                  "max_tokens": job.budget, "sampling_params": params,
                                  "probe_params": probe_sampling_params(params)}
        if on_text is None:
            return DynasorCoT(job.prompt, **kwargs)
        return _StreamingCoT(job.prompt, on_text=on_text, **kwargs)
    confidence = None if options.confidence == "off" else DeepConf(options.confidence, options.eta, options.warmup,
                                                                   options.confidence_window)
    return SelfConsistency(job.prompt, cap=options.n, detect_at=options.detect_at,
                           sampling_params={**params, "max_new_tokens": job.budget}, confidence=confidence)


class ProgramModeRunner:
    """Implements ``dynasor.modes.job.ModeRunner`` with Dynasor's programs and runtime."""

    def reserved_tokens(self, options: ModeOptions, count_tokens: Callable[[str], int]) -> int:
        if isinstance(options, CotOptions):
            return count_tokens(PROBE_SUFFIX) + PROBE_MAX_TOKENS + CONTEXT_SLACK
        return 0

    async def run(self, job: ModeJob, engine: InProcessEngine,
                  on_text: Callable[[str], None] | None = None) -> ModeOutcome:
        backend = RecordingBackend(EngineBackend(engine, tag=True))
        program = mode_program(job, on_text)
        threshold = 1.0 if isinstance(job.options, CotOptions) else job.options.threshold
        runtime = ProgramRuntime(backend, StaticThreshold(threshold), max_concurrent_programs=1)
        try:
            result = await runtime.run_one(program)
        except BaseException:
            task = asyncio.get_running_loop().create_task(backend.stop_program(program.program_id))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            raise
        return outcome_of(job, program.program_id, result, backend.generations(program.program_id))


def outcome_of(job: ModeJob, program_id: str, result: ProgramResult, generations: list[Generation]) -> ModeOutcome:
    if isinstance(job.options, CotOptions):
        return cot_outcome(job.options, result, generations, program_id, job.budget, job.explicit_max_tokens)
    return sc_outcome(job.options, result, generations, program_id, job.budget)
