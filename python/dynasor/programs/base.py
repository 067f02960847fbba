"""The reasoning-program abstraction of the paper (App. D.1): ``certaindex``, ``knob``, ``state``,
``update_certaindex()`` and ``execute()``. A program asks its runtime for compute; the runtime's
policy grants or denies it from the program's certaindex, and a denial ends the program."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dynasor.tags import new_program_id

if TYPE_CHECKING:
    from dynasor.runtime.runtime import ProgramRuntime


@dataclass
class ProgramResult:
    answer: str | None
    knob_used: int
    generated_tokens: int
    stopped_early: bool
    certaindex: float | None
    extra: dict[str, Any] = field(default_factory=dict)


class ReasoningProgram(ABC):
    """One query's reasoning program. ``knob``: compute spent so far in the algorithm's own unit."""

    def __init__(self) -> None:
        self.program_id = new_program_id()
        self.certaindex: float | None = None
        self.knob = 0
        self.state: dict[str, Any] = {}

    @abstractmethod
    def update_certaindex(self) -> float:
        """Recompute ``self.certaindex`` from ``self.state`` and return it."""

    def remaining_work(self) -> float | None:
        """Estimated tokens the whole program still has to generate (the scheduler's SJF hint),
        or None when the program cannot tell; the server then estimates from its history."""
        return None

    @abstractmethod
    async def execute(self, runtime: "ProgramRuntime") -> ProgramResult:
        """Run the algorithm: expand, aggregate, update certaindex, ask the runtime, repeat."""
