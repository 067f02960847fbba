"""Online workload: seeded Poisson arrivals of generated arithmetic problems, and their deadlines.

Every system sees the same arrivals and problems at a given rate: both streams are seeded from
(``seed``, rate) only, not from the order of ``--rates``, so one rate can be re-run alone.
``scaled``: one trace for all rates instead, seeded from ``seed`` alone (the same problems in the
same order, with inter-arrival gaps of a unit-rate Poisson process divided by the rate). Only the
load changes between rates, so with a handful of programs per rate the attainment curve is not
dominated by which problems, and which bursts, each rate happened to draw.

Deadline of a program (paper App. F.2) = SLO scale × difficulty factor(level) × base deadline.
Two ways to get the factor and base:

- fixed: ``--base-deadline`` seconds and factors 1/2/3 by level (``min(max(level, 1), 3)``: level 0
  counts as 1, level 4 as 3; the paper's 1/2/3 are "always / sometimes / never solved" from oracle runs, and
  the generated levels are our dial for that difficulty), or explicit ``--difficulty-factors``;
- oracle: the mean solo latency per level (one program alone on the server). The base is the
  easiest level's solo latency and each factor is that level's solo latency over the base, so at
  SLO scale 1 a program's deadline is exactly its level's solo latency.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynasor.datasets.arithmetic import generate
from dynasor.datasets.loaders import Problem


def stream_seed(seed: int, rate: float, stream: str) -> int:
    """A 32-bit seed per (seed, rate, stream): crc32 is stable across runs and Python versions."""
    return zlib.crc32(f"{stream}:{seed}:{rate:.6g}".encode())


def poisson_arrivals(rate: float, duration: float, seed: int, fixed_count: bool = False) -> list[float]:
    """Arrival times in [0, duration) of a Poisson process of ``rate``.

    ``fixed_count``: the process conditioned on exactly round(rate × duration) arrivals, which are
    then sorted independent uniforms over the window (the order-statistics property of Poisson
    processes). Short windows of a few programs otherwise vary so much in count that a lower
    rate can offer more programs than a higher one; the conditioned process keeps the offered
    load at its nominal rate while arrivals stay Poisson-like within the window."""
    if rate <= 0 or duration <= 0:
        raise ValueError(f"need rate > 0 and duration > 0, got rate={rate}, duration={duration}")
    rng = random.Random(seed)
    if fixed_count:
        return sorted(rng.uniform(0.0, duration) for _ in range(round(rate * duration)))
    times: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        times.append(t)
        t += rng.expovariate(rate)
    return times


@dataclass(frozen=True)
class Arrival:
    index: int
    time: float
    problem: Problem


@dataclass(frozen=True)
class Workload:
    rate: float
    duration: float
    arrival_seed: int
    problem_seed: int
    arrivals: tuple[Arrival, ...]
    problems: Mapping[str, Any] = field(default_factory=dict)
    fixed_count: bool = False
    scaled: bool = False

    @property
    def mode(self) -> str:
        return "scaled" if self.scaled else "fixed-count" if self.fixed_count else "poisson"

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "duration": self.duration, "arrival_seed": self.arrival_seed,
                "problem_seed": self.problem_seed, "arrivals": self.mode, "n": len(self.arrivals),
                "problems": dict(self.problems)}


def build_workload(rate: float, duration: float, seed: int, levels: Mapping[int, float],
                   fixed_count: bool = False, scaled: bool = False) -> Workload:
    """Poisson arrivals over ``duration`` seconds, one generated problem each (exact level mix).

    ``scaled``: round(rate × duration) arrivals of the rate-independent unit trace (fixed count
    over [0, rate × duration) at rate 1), their times divided by ``rate``."""
    key = 1.0 if scaled else rate
    arrival_seed, problem_seed = stream_seed(seed, key, "arrivals"), stream_seed(seed, key, "problems")
    if scaled:
        times = [t / rate for t in poisson_arrivals(1.0, rate * duration, arrival_seed, fixed_count=True)]
    else:
        times = poisson_arrivals(rate, duration, arrival_seed, fixed_count)
    generated = generate(len(times), problem_seed, levels)
    arrivals = tuple(Arrival(i, t, p) for i, (t, p) in enumerate(zip(times, generated.problems)))
    return Workload(rate, duration, arrival_seed, problem_seed, arrivals, generated.metadata,
                    fixed_count or scaled, scaled)


def oracle_problems(levels: Sequence[int], runs: int, seed: int) -> dict[int, list[Problem]]:
    """``runs`` problems per level for solo runs, from their own seed (not the measured streams)."""
    out: dict[int, list[Problem]] = {}
    for level in sorted(levels):
        out[level] = generate(runs, stream_seed(seed, float(level), "oracle"), {level: 1.0}).problems
    return out


def parse_factors(spec: str) -> dict[int, float]:
    """``"1:1,2:2,3:3"`` -> {1: 1.0, 2: 2.0, 3: 3.0}."""
    factors: dict[int, float] = {}
    for part in spec.split(","):
        level, sep, value = part.strip().partition(":")
        if not sep:
            raise ValueError(f"difficulty factors look like 1:1,2:2, got {spec!r}")
        factors[int(level)] = float(value)
    if any(v <= 0 for v in factors.values()):
        raise ValueError(f"difficulty factors must be > 0, got {spec!r}")
    return factors


@dataclass(frozen=True)
class DeadlineModel:
    """Deadline = scale × factors[level] × base_deadline (seconds)."""

    base_deadline: float
    factors: Mapping[int, float]
    source: str
    solo_latency: Mapping[int, float] = field(default_factory=dict)

    def unit(self, level: int) -> float:
        """The deadline at SLO scale 1."""
        return self.factors[level] * self.base_deadline

    def deadline(self, level: int, scale: float) -> float:
        return scale * self.unit(level)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "base_deadline": self.base_deadline,
                "factors": {str(k): v for k, v in sorted(self.factors.items())},
                "solo_latency": {str(k): v for k, v in sorted(self.solo_latency.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeadlineModel:
        return cls(data["base_deadline"], {int(k): v for k, v in data["factors"].items()}, data["source"],
                   {int(k): v for k, v in data.get("solo_latency", {}).items()})


def fixed_deadlines(base_deadline: float, levels: Sequence[int],
                    factors: Mapping[int, float] | None = None) -> DeadlineModel:
    """Fixed base; factors from ``factors`` or 1/2/3 by level (``min(max(level, 1), 3)``)."""
    if base_deadline <= 0:
        raise ValueError(f"base deadline must be > 0, got {base_deadline}")
    chosen = {level: float(min(max(level, 1), 3)) for level in levels} if factors is None else dict(factors)
    missing = set(levels) - set(chosen)
    if missing:
        raise ValueError(f"no difficulty factor for levels {sorted(missing)}")
    return DeadlineModel(base_deadline, {level: chosen[level] for level in sorted(levels)}, "fixed")


def oracle_deadlines(solo_latency: Mapping[int, float]) -> DeadlineModel:
    """Base = the easiest level's mean solo latency; factor = each level's solo latency / base."""
    if not solo_latency or any(v <= 0 for v in solo_latency.values()):
        raise ValueError(f"need a positive solo latency per level, got {dict(solo_latency)}")
    base = solo_latency[min(solo_latency)]
    return DeadlineModel(base, {level: v / base for level, v in sorted(solo_latency.items())}, "oracle",
                         dict(solo_latency))
