"""Attainment-vs-rate sweeps in the simulator, with the online benchmark's maths.

A program's deadline is SLO scale × its solo latency: the program alone in the same engine under
stock ``fcfs``, every branch to the end (so at scale 1 a deadline is what the program needs with
the machine to itself). Each system plays the same programs at every rate (one unit-rate trace,
time-scaled), so outcomes are paired across systems and rates; the maximum rate at the target
attainment and its ratio to each baseline, with paired-bootstrap intervals, come from
``dynasor.evaluation.rate_curve`` and ``dynasor.evaluation.rate_bootstrap``, as in the online benchmark; the
tightest SLO scale at each rate and its ratio to each baseline's from ``dynasor.evaluation.slo_scale``.

Background traffic (optional): the trace's requests that arrive while the programs do (up to the
last program's arrival) are played untagged beside them at their own times, the same at every rate.

Runs are independent: ``jobs`` > 1 plays them in that many processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from dynasor.evaluation.paired_ratio import paired_ratio_interval
from dynasor.evaluation.rate_bootstrap import attainment_interval, rate_ratio_intervals
from dynasor.evaluation.rate_curve import max_sustained_rate
from dynasor.evaluation.slo_scale import slo_ratio_intervals, tightest_scale
from dynasor.sim.background import TraceRequest, until
from dynasor.sim.request import EngineLimits
from dynasor.sim.simulation import ALL_SYSTEMS, run
from dynasor.sim.step_cost import StepCost
from dynasor.sim.workload import ProgramShape, at_rate, unit_arrivals

# Stock SGLang at its best is whichever of these does best at each point (``*_vs_best_stock``).
BASELINES = ("sglang-fcfs", "sglang-lpm", "sglang-priority", "sglang-routing-key")


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
    background: tuple[TraceRequest, ...] = ()
    engines: int = 1  # data-parallel ranks / servers, requests placed by each system's dispatch
    baselines: tuple[str, ...] = BASELINES  # the systems every other is compared with (those in ``systems``)


@dataclass(frozen=True)
class PlayedRun:
    """What one (system, rate) run leaves for the report."""

    system: str
    rate: float
    latencies: list[float | None]
    tokens_per_program: float
    stopped: int
    retractions: int
    simulated_seconds: float
    busy_seconds: float
    background: list[float]
    cache_hit_rate: float
    prefill_tokens: int
    capacity: dict[str, Any]  # CapacityMeter.to_json: where the pool and the batch bind


def solo_latencies(spec: SweepSpec, cost: StepCost, limits: EngineLimits) -> list[float]:
    base = ALL_SYSTEMS["sglang-fcfs"]
    out = []
    for program in at_rate(spec.shapes, [0.0] * len(spec.shapes), 1.0, spec.detect_at, spec.max_new_tokens):
        latency = run([program], base, cost, limits).runs[0].latency
        assert latency is not None
        out.append(latency)
    return out


def play(spec: SweepSpec, cost: StepCost, limits: EngineLimits, system: str, rate: float) -> PlayedRun:
    """One system at one rate (a module-level function: worker processes run it)."""
    unit = unit_arrivals(len(spec.shapes), spec.seed)
    programs = at_rate(spec.shapes, unit, rate, spec.detect_at, spec.max_new_tokens)
    background = until(spec.background, programs[-1].arrival) if spec.background else []
    result = run(programs, ALL_SYSTEMS[system], cost, limits, background=background, engines=spec.engines)
    capacity = result.capacity.to_json(len(result.runs), result.retractions, result.recomputed_tokens)
    return PlayedRun(system, rate, [r.latency for r in result.runs],
                     sum(r.tokens for r in result.runs) / len(result.runs), sum(r.stopped for r in result.runs),
                     result.retractions, result.simulated_seconds, result.busy_seconds, result.background_latencies,
                     result.cache_hit_rate, result.prefill_tokens, capacity)


def _play_job(args: tuple[SweepSpec, StepCost, EngineLimits, str, float]) -> PlayedRun:
    return play(*args)


def sweep(spec: SweepSpec, cost: StepCost, limits: EngineLimits,
          progress: Callable[[str], None] | None = None, jobs: int = 1) -> dict[str, Any]:
    started = time.perf_counter()
    solo = solo_latencies(spec, cost, limits)
    work = [(spec, cost, limits, name, rate) for name in spec.systems for rate in spec.rates]
    played: dict[tuple[str, float], PlayedRun] = {}
    with ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else nullcontext() as pool:
        for one in (pool.map if pool is not None else map)(_play_job, work):
            played[(one.system, one.rate)] = one
            if progress is not None:
                progress(f"{one.system} @ {one.rate:g}/s")
    report = summarize(spec, solo, played)
    wall = time.perf_counter() - started
    simulated = sum(p.simulated_seconds for p in played.values())
    return {**report, "simulated_seconds": simulated, "wall_seconds": wall, "jobs": jobs,
            "simulated_per_wall_second": simulated / wall}


def summarize(spec: SweepSpec, solo: Sequence[float], played: dict[tuple[str, float], PlayedRun]) -> dict[str, Any]:
    outcomes: dict[float, dict[str, dict[float, list[bool | None]]]] = {s: {} for s in spec.scales}
    per_system: dict[str, Any] = {}
    for name in spec.systems:
        rows = []
        for rate in spec.rates:
            one = played[(name, rate)]
            for scale in spec.scales:
                outcomes[scale].setdefault(name, {})[rate] = [
                    lat is not None and lat <= scale * s for lat, s in zip(one.latencies, solo)]
            finished = [x for x in one.latencies if x is not None]
            row = {"rate": rate, "tokens_per_program": one.tokens_per_program, "stopped": one.stopped,
                   "retractions": one.retractions, "unfinished": len(one.latencies) - len(finished),
                   "mean_latency": sum(finished) / len(finished) if finished else None,
                   "simulated_seconds": one.simulated_seconds, "busy_seconds": one.busy_seconds,
                   "cache_hit_rate": one.cache_hit_rate, "prefill_tokens_per_program": one.prefill_tokens / len(solo),
                   "capacity": one.capacity,
                   "attainment": {str(s): _share(outcomes[s][name][rate]) for s in spec.scales},
                   "attainment_interval": {str(s): list(attainment_interval(outcomes[s][name][rate],
                                                                            spec.replicates, spec.seed))
                                           for s in spec.scales}}
            if spec.background:
                row["background"] = _latency_summary(one.background)
            rows.append(row)
        per_system[name] = {"rows": rows}
    baselines = [b for b in spec.baselines if b in spec.systems]
    by_scale: dict[str, Any] = {}
    for scale in spec.scales:
        entry: dict[str, Any] = {}
        for name in spec.systems:
            bound = max_sustained_rate([(r, _share(outcomes[scale][name][r])) for r in spec.rates], spec.target)
            entry[name] = {"max_rate": bound.to_json()}
        intervals = rate_ratio_intervals(outcomes[scale], baselines, spec.target, spec.replicates, spec.seed)
        for name in spec.systems:
            ours = entry[name]["max_rate"]
            for base in baselines:
                theirs = entry[base]["max_rate"]
                point = ours["rate"] / theirs["rate"] if ours["rate"] and theirs["rate"] else None
                entry[name][f"max_rate_ratio_vs_{base.removeprefix('sglang-')}"] = {
                    "ratio": point, **intervals[name][base]}
        if baselines:
            best = max(baselines, key=lambda b: entry[b]["max_rate"]["rate"] or 0.0)
            for name in spec.systems:
                entry[name]["max_rate_ratio_vs_best_stock"] = {
                    "baseline": best, **entry[name][f"max_rate_ratio_vs_{best.removeprefix('sglang-')}"]}
        by_scale[str(scale)] = entry
    by_rate: dict[str, Any] = {}
    for rate in spec.rates:
        slowdowns = {name: [math.inf if lat is None else lat / s
                            for lat, s in zip(played[(name, rate)].latencies, solo)] for name in spec.systems}
        ratios = slo_ratio_intervals(slowdowns, baselines, spec.target, spec.replicates, spec.seed)
        by_rate[str(rate)] = {name: {"tightest_scale": _finite(tightest_scale(slowdowns[name], spec.target)),
                                     **{f"slo_ratio_vs_{b.removeprefix('sglang-')}": ratios[name][b]
                                        for b in baselines},
                                     **{f"latency_ratio_vs_{b.removeprefix('sglang-')}":
                                        _latency_ratio(played[(name, rate)], played[(b, rate)], spec)
                                        for b in baselines}}
                              for name in spec.systems}
        if baselines:
            _add_best_stock(by_rate[str(rate)], baselines, spec.systems, played, rate)
    return {"systems": per_system, "by_scale": by_scale, "by_rate": by_rate,
            "solo_latency": {"mean": sum(solo) / len(solo), "max": max(solo)}}


def _add_best_stock(entry: dict[str, Any], baselines: Sequence[str], systems: Sequence[str],
                    played: dict[tuple[str, float], PlayedRun], rate: float) -> None:
    """Each system against the stock baseline that does best at this rate: the tightest SLO scale
    (``slo_ratio_vs_best_stock``) and the lowest mean latency (``latency_ratio_vs_best_stock``)."""
    slo_best = min(baselines, key=lambda b: entry[b]["tightest_scale"] or math.inf)
    latency_best = min(baselines, key=lambda b: _mean_latency(played[(b, rate)]))
    for name in systems:
        short = entry[name]
        short["slo_ratio_vs_best_stock"] = {"baseline": slo_best,
                                            **short[f"slo_ratio_vs_{slo_best.removeprefix('sglang-')}"]}
        latency = short[f"latency_ratio_vs_{latency_best.removeprefix('sglang-')}"]
        short["latency_ratio_vs_best_stock"] = None if latency is None else {"baseline": latency_best, **latency}


def _mean_latency(one: PlayedRun) -> float:
    """Unfinished programs count as infinitely late."""
    finished = [x for x in one.latencies if x is not None]
    return sum(finished) / len(finished) if finished and len(finished) == len(one.latencies) else math.inf


def _latency_ratio(ours: PlayedRun, theirs: PlayedRun, spec: SweepSpec) -> dict[str, Any] | None:
    """Mean program latency over the baseline's, paired by program (both played the same ones)."""
    pairs = [(a, b) for a, b in zip(ours.latencies, theirs.latencies) if a is not None and b is not None]
    if not pairs:
        return None
    return paired_ratio_interval([a for a, _ in pairs], [b for _, b in pairs], spec.replicates, spec.seed)


def _latency_summary(latencies: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    if not ordered:
        return {"requests": 0}
    return {"requests": len(ordered), "mean_latency": sum(ordered) / len(ordered),
            "p90_latency": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _share(values: Sequence[bool | None]) -> float:
    return sum(v is True for v in values) / len(values)
