"""Every workload drawn from stated distributions, by name (``dynasor simulate --workload``)."""

from __future__ import annotations

from typing import Any, Protocol

from dynasor.sim.reasoning_workload import REASONING_WORKLOADS
from dynasor.sim.workload import PAPER_SC, ProgramShape


class StatedWorkload(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def detect_at(self) -> int: ...

    @property
    def max_new_tokens(self) -> int: ...

    def shapes(self, count: int, seed: int) -> list[ProgramShape]: ...

    def describe(self) -> dict[str, Any]: ...


def stated_workloads() -> dict[str, StatedWorkload]:
    return {PAPER_SC.name: PAPER_SC, **REASONING_WORKLOADS}
