"""Attainment-vs-rate sweeps in the simulator, with the online benchmark's maths.

A program's deadline is SLO scale × its solo latency: the program alone in the same engine under
stock ``fcfs``, every branch to the end (so at scale 1 a deadline is what the program needs with
the machine to itself). Each system plays the same programs at every rate (one unit-rate trace,
time-scaled), so outcomes are paired across systems and rates; the maximum rate at the target
attainment and its ratio to each baseline, with paired-bootstrap intervals, come from
``dynasor.core.rate_curve`` and ``dynasor.core.rate_bootstrap``, as in the online benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dynasor.core.rate_bootstrap import attainment_interval, rate_ratio_intervals
from dynasor.core.rate_curve import max_sustained_rate
from dynasor.sim.request import EngineLimits
from dynasor.sim.simulation import SYSTEMS, SystemSpec, run
from dynasor.sim.step_cost import StepCost
from dynasor.sim.workload import ProgramShape, at_rate, unit_arrivals

BASELINES = ("sglang-fcfs", "sglang-lpm")


@dataclass(frozen=True)
class SweepSpec:
    shapes: tuple[ProgramShape, ...]
    detect_at: int
    max_new_tokens: int
    rates: tuple[float, ...]
    scales: tuple[float, ...]
    systems: tuple[str, ...]
    seed: int = 0
    target: float = 0.9
    replicates: int = 1000


def solo_latencies(spec: SweepSpec, cost: StepCost, limits: EngineLimits) -> list[float]:
    base = SYSTEMS["sglang-fcfs"]
    out = []
    for program in at_rate(spec.shapes, [0.0] * len(spec.shapes), 1.0, spec.detect_at, spec.max_new_tokens):
        latency = run([program], base, cost, limits).runs[0].latency
        assert latency is not None
        out.append(latency)
    return out


def sweep(spec: SweepSpec, cost: StepCost, limits: EngineLimits,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    solo = solo_latencies(spec, cost, limits)
    unit = unit_arrivals(len(spec.shapes), spec.seed)
    per_system: dict[str, Any] = {}
    outcomes: dict[float, dict[str, dict[float, list[bool | None]]]] = {s: {} for s in spec.scales}
    simulated = 0.0
    for name in spec.systems:
        system: SystemSpec = SYSTEMS[name]
        rows = []
        for rate in spec.rates:
            result = run(at_rate(spec.shapes, unit, rate, spec.detect_at, spec.max_new_tokens), system, cost, limits)
            simulated += result.simulated_seconds
            latencies = [r.latency for r in result.runs]
            for scale in spec.scales:
                outcomes[scale].setdefault(name, {})[rate] = [
                    lat is not None and lat <= scale * s for lat, s in zip(latencies, solo)]
            rows.append({"rate": rate, "tokens_per_program": sum(r.tokens for r in result.runs) / len(result.runs),
                         "stopped": sum(r.stopped for r in result.runs), "retractions": result.retractions,
                         "mean_latency": sum(x or 0.0 for x in latencies) / len(latencies),
                         "simulated_seconds": result.simulated_seconds, "busy_seconds": result.busy_seconds,
                         "attainment": {str(s): _share(outcomes[s][name][rate]) for s in spec.scales},
                         "attainment_interval": {str(s): list(attainment_interval(outcomes[s][name][rate],
                                                                                  spec.replicates, spec.seed))
                                                 for s in spec.scales}})
            if progress is not None:
                progress(f"{name} @ {rate:g}/s")
        per_system[name] = {"rows": rows}
    by_scale: dict[str, Any] = {}
    for scale in spec.scales:
        entry: dict[str, Any] = {}
        for name in spec.systems:
            bound = max_sustained_rate([(r, _share(outcomes[scale][name][r])) for r in spec.rates], spec.target)
            entry[name] = {"max_rate": bound.to_json()}
        baselines = [b for b in BASELINES if b in spec.systems]
        intervals = rate_ratio_intervals(outcomes[scale], baselines, spec.target, spec.replicates, spec.seed)
        for name in spec.systems:
            ours = entry[name]["max_rate"]
            for base in baselines:
                theirs = entry[base]["max_rate"]
                point = ours["rate"] / theirs["rate"] if ours["rate"] and theirs["rate"] else None
                entry[name][f"max_rate_ratio_vs_{base.removeprefix('sglang-')}"] = {
                    "ratio": point, **intervals[name][base]}
        by_scale[str(scale)] = entry
    wall = time.perf_counter() - started
    return {"systems": per_system, "by_scale": by_scale, "solo_latency": {"mean": sum(solo) / len(solo),
                                                                          "max": max(solo)},
            "simulated_seconds": simulated, "wall_seconds": wall, "simulated_per_wall_second": simulated / wall}


def _share(values: Sequence[bool | None]) -> float:
    return sum(v is True for v in values) / len(values)
