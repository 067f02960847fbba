"""Allocation policies: should a program get more compute, given its certaindex?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dynasor.programs.base import ReasoningProgram


class Policy(Protocol):
    def should_continue(self, program: ReasoningProgram) -> bool: ...


@dataclass(frozen=True)
class EvenAllocation:
    """Baseline: every program runs to its cap."""

    def should_continue(self, program: ReasoningProgram) -> bool:
        return True


@dataclass(frozen=True)
class StaticThreshold:
    """The paper's end-to-end policy: stop at the detection step if certaindex ≥ threshold
    (Table 3: SC 0.7 at 5 samples)."""

    threshold: float = 0.7

    def should_continue(self, program: ReasoningProgram) -> bool:
        return program.certaindex is None or program.certaindex < self.threshold
