"""The reasoning-program abstraction of the paper (App. D.1): ``certaindex``, ``knob``, ``state``,
``update_certaindex()`` and ``execute()``. A program asks its runner for compute; the runner's
allocation policy grants or denies it from the program's certaindex, and a denial ends the program.

``ProgramRunner`` is what a program may ask of whoever runs it (``dynasor.program_runtime.ProgramRuntime``
is the implementation): programs depend on this interface, the runtime depends on programs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Protocol

from dynasor.core.generation import Generation, Prompt
from dynasor.core.result import ProgramResult
from dynasor.core.tag import NO_HINTS, RequestHints, new_program_id


class ProgramRunner(Protocol):
    def grant(self, program: ReasoningProgram, requested: int) -> int:
        """Knob units the program may use at most (its initial grant)."""
        ...

    def should_continue(self, program: ReasoningProgram) -> bool:
        """The allocation policy's decision at one of the program's decision points."""
        ...

    async def generate(self, program: ReasoningProgram, prompt: Prompt, params: Mapping[str, Any],
                       hints: RequestHints = NO_HINTS) -> Generation:
        """One request of the program (tagged with it and its remaining-work estimate); ``hints``:
        what else the tag asks (``dynasor.core.tag.RequestHints``)."""
        ...

    async def stop(self, program: ReasoningProgram) -> None:
        """Abort everything the program still has outstanding in the engine (one call)."""
        ...

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int] | None:
        """The engine's token ids of ``text``, or None when the backend cannot tell."""
        ...


class ReasoningProgram(ABC):
    """One query's reasoning program. ``knob``: compute spent so far in the algorithm's own unit."""

    def __init__(self) -> None:
        self.program_id = new_program_id()
        self.certaindex: float | None = None
        self.knob = 0
        self.generated_tokens = 0  # everything generated so far: what token budgets and recordings read
        self.state: dict[str, Any] = {}  # the algorithm's own state (the paper's App. D.1 ``state``)

    @abstractmethod
    def update_certaindex(self) -> float:
        """Recompute ``self.certaindex`` from ``self.state`` and return it."""

    def remaining_work(self) -> float | None:
        """Estimated tokens the whole program still has to generate (the scheduler's SJF hint),
        or None when the program cannot tell; the server then estimates from its history."""
        return None

    @abstractmethod
    async def execute(self, runner: ProgramRunner) -> ProgramResult:
        """Run the algorithm: expand, aggregate, update certaindex, ask the runner, repeat."""
