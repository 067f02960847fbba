"""Allocation policies: should a program get more compute, given its certaindex? (paper §2.6, App. G.4)

(Not to be confused with the server's queue policies, ``dynasor.scheduler.ordering.QueuePolicy``,
which order waiting requests.) A program consults its runtime's policy
(``ProgramRuntime.should_continue``) at its decision points:
``SelfConsistency`` once, at its detection step; ``DynasorCoT`` after every probe. A policy reads
only the program's ``knob``, ``certaindex`` (None: no evidence yet, so continue), ``state["tokens"]``
(generated tokens, kept by every built-in program), ``state["signals"]`` (named signals, kept by the
tree searches) and the optional ``detect_at`` attribute; it returns False to stop the program.
Policies hold no per-program state, so one instance serves every program of a runtime.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dynasor.certaindex import all_pass
from dynasor.core.stats import quantile as quantile_of
from dynasor.programs.base import ReasoningProgram


class AllocationPolicy(Protocol):
    def should_continue(self, program: ReasoningProgram) -> bool: ...


@dataclass(frozen=True)
class EvenAllocation:
    """Baseline: every program runs to its cap."""

    def should_continue(self, program: ReasoningProgram) -> bool:
        return True


@dataclass(frozen=True)
class StaticThreshold:
    """The paper's end-to-end policy: stop at the detection step if certaindex ≥ threshold
    (Table 3: SC 0.7 at 5 samples; use 1.0 for DynasorCoT's "all N probes agree")."""

    threshold: float = 0.7

    def stops(self, certaindex: float | None) -> bool:
        """The threshold rule itself (also used by the offline replay and ``fork_until_certain``)."""
        return certaindex is not None and certaindex >= self.threshold

    def should_continue(self, program: ReasoningProgram) -> bool:
        return not self.stops(program.certaindex)


@dataclass(frozen=True)
class SignalThresholds:
    """AND of per-signal thresholds (§2.4; Table 3: MCTS-GSM8K stops only if H̃ ≥ 0.99 and R ≥ 0.4) over
    ``program.state["signals"]`` (name → value, e.g. "answer", "reward"); a missing signal fails."""

    thresholds: Mapping[str, float]

    def should_continue(self, program: ReasoningProgram) -> bool:
        signals = program.state.get("signals")
        return not signals or not all_pass(signals, self.thresholds)


@dataclass(frozen=True)
class PeriodicRecheck:
    """Threshold re-read every ``every_k`` knob steps from detection on (App. G.4, "5-step threshold"):
    checks at knob d, d+k, d+2k, … and continues in between. d is ``detect_at`` if given, else the
    program's ``detect_at``, else ``every_k``. It saves a few more tokens than one check but
    serialises the program; a program that asks only once (SelfConsistency) sees a static threshold.
    """

    threshold: float = 0.7
    every_k: int = 5
    detect_at: int | None = None

    def __post_init__(self) -> None:
        if self.every_k < 1:
            raise ValueError(f"every_k must be >= 1, got {self.every_k}")

    def is_check_step(self, program: ReasoningProgram) -> bool:
        start = self.detect_at if self.detect_at is not None else getattr(program, "detect_at", self.every_k)
        return program.knob >= start and (program.knob - start) % self.every_k == 0

    def should_continue(self, program: ReasoningProgram) -> bool:
        if program.certaindex is None or not self.is_check_step(program):
            return True
        return program.certaindex < self.threshold


@dataclass(frozen=True)
class LengthCap:
    """The paper's baseline-length: ignore certaindex, stop once the program has generated
    ``max_tokens`` tokens (``program.generated_tokens``). A uniform token budget for CoT."""

    max_tokens: int

    def should_continue(self, program: ReasoningProgram) -> bool:
        return program.generated_tokens < self.max_tokens


@dataclass(frozen=True)
class BudgetCurve:
    """Curve-fitting allocation (§2.6 item 2): a knob budget per certaindex bucket, non-increasing in
    certaindex (settled programs get little, unsettled ones more). ``should_continue`` stops a program
    once its knob reaches the budget for its current certaindex, so as certaindex rises the cap falls
    ("dynamic curve fitting" when asked every step; "initial-step" when asked once).

    ``edges``: n+1 increasing bucket bounds; bucket i is [edges[i], edges[i+1]) (the last one closed),
    values outside are clamped. ``budgets``: n knob budgets.
    """

    edges: tuple[float, ...]
    budgets: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.budgets) + 1 or not self.budgets:
            raise ValueError("need len(edges) == len(budgets) + 1 >= 2")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError(f"edges must increase, got {self.edges}")
        if any(b > a for a, b in zip(self.budgets, self.budgets[1:])) or min(self.budgets) < 0:
            raise ValueError(f"budgets must be >= 0 and non-increasing in certaindex, got {self.budgets}")

    @classmethod
    def fit(cls, profiles: Iterable[tuple[float, float]], buckets: int = 5, quantile: float = 1.0,
            min_budget: int = 1) -> BudgetCurve:
        """Fit from profiled ``(certaindex_at_detection, knob_needed_to_converge)`` pairs.

        Per equal-width bucket over [0, 1]: the ``quantile`` of the knob needed (1.0, the default, is
        the upper envelope: no profiled program is cut before it converged; lower trades accuracy for
        tokens), rounded up. Then a suffix maximum makes it non-increasing, and empty buckets take the
        budget of their higher-certaindex neighbour (or, at the top, of the nearest lower one).
        """
        if buckets < 1 or not 0.0 <= quantile <= 1.0:
            raise ValueError(f"need buckets >= 1 and 0 <= quantile <= 1, got {buckets}, {quantile}")
        edges = tuple(i / buckets for i in range(buckets + 1))
        needed: list[list[float]] = [[] for _ in range(buckets)]
        for certaindex, knob in profiles:
            needed[_bucket(edges, certaindex)].append(float(knob))
        raw = [max(min_budget, math.ceil(quantile_of(v, quantile))) if v else None for v in needed]
        if all(b is None for b in raw):
            raise ValueError("no profiles to fit a budget curve from")
        budgets: list[int] = []
        running: int | None = None
        for value in reversed(raw):
            running = value if running is None else max(running, value or 0)
            budgets.append(running if running is not None else -1)
        budgets.reverse()
        top = next(b for b in reversed(budgets) if b >= 0)
        return cls(edges, tuple(top if b < 0 else b for b in budgets))

    def budget_for(self, certaindex: float) -> int:
        return self.budgets[_bucket(self.edges, certaindex)]

    def should_continue(self, program: ReasoningProgram) -> bool:
        return program.certaindex is None or program.knob < self.budget_for(program.certaindex)

    def to_json(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "budgets": list(self.budgets)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BudgetCurve:
        return cls(tuple(float(e) for e in data["edges"]), tuple(int(b) for b in data["budgets"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BudgetCurve:
        return cls.from_json(json.loads(Path(path).read_text()))


def _bucket(edges: tuple[float, ...], value: float) -> int:
    return min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)
