"""Application runtime: runs many programs concurrently, grants compute by policy, stops programs.

``ProgramRuntime`` implements ``dynasor.programs.base.ProgramRunner``. Every request a program
sends goes through ``generate``, which tags it with the program id and the program's estimate of
its remaining work: ``program.remaining_work()``, in tokens the whole program may still generate
(what the server's shortest-job-first ordering expects; None: no estimate, the server uses the
program's history).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dynasor.core.generation import Backend, Generation, Prompt
from dynasor.core.result import ProgramResult
from dynasor.core.tag import NO_HINTS, RequestHints
from dynasor.program_runtime.allocation import AllocationPolicy, EvenAllocation
from dynasor.programs.base import ReasoningProgram


class ProgramRuntime:
    def __init__(self, backend: Backend, policy: AllocationPolicy | None = None, max_concurrent_programs: int = 16,
                 per_program_cap: int | None = None) -> None:
        self.backend = backend
        self.policy: AllocationPolicy = policy if policy is not None else EvenAllocation()
        self.per_program_cap = per_program_cap
        self._slots = asyncio.Semaphore(max_concurrent_programs)

    def grant(self, program: ReasoningProgram, requested: int) -> int:
        """Initial grant, bounded by the per-program cap."""
        return requested if self.per_program_cap is None else min(requested, self.per_program_cap)

    def should_continue(self, program: ReasoningProgram) -> bool:
        """The one place programs ask for more compute: the policy decides from knob and certaindex."""
        return self.policy.should_continue(program)

    @staticmethod
    def remaining_work(program: ReasoningProgram) -> float | None:
        work = program.remaining_work()
        return None if work is None else max(float(work), 0.0)

    async def generate(self, program: ReasoningProgram, prompt: Prompt, params: Mapping[str, Any],
                       hints: RequestHints = NO_HINTS) -> Generation:
        return await self.backend.generate(prompt, params, program.program_id,
                                           remaining_work=self.remaining_work(program), hints=hints)

    async def stop(self, program: ReasoningProgram) -> None:
        """Abort everything the program still has outstanding in the engine (one call)."""
        await self.backend.stop_program(program.program_id)

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int] | None:
        return await self.backend.tokenize(text, add_special_tokens)

    async def run_one(self, program: ReasoningProgram) -> ProgramResult:
        async with self._slots:
            return await program.execute(self)

    async def run(self, programs: Sequence[ReasoningProgram]) -> list[ProgramResult]:
        return list(await asyncio.gather(*[self.run_one(p) for p in programs]))

    async def run_with_progress(self, programs: Sequence[ReasoningProgram],
                                desc: str = "programs") -> tuple[list[ProgramResult], float]:
        """``run`` with a tqdm bar counting finished programs; also returns the wall time (s)."""
        from tqdm import tqdm

        results: list[ProgramResult | None] = [None] * len(programs)

        async def one(i: int) -> None:
            results[i] = await self.run_one(programs[i])

        started = time.perf_counter()
        with tqdm(total=len(programs), desc=desc, unit="program") as bar:
            for finished in asyncio.as_completed([one(i) for i in range(len(programs))]):
                await finished
                bar.update()
        return [r for r in results if r is not None], time.perf_counter() - started
