"""From recorded runs to the benchmark's workloads: points, savings, per-level breakdowns (pure).

``records`` is the JSON that ``bench_batch`` saves next to its results (``batch_<tag>.records.json``):
{"sc": [profile + "seed"], "cot": [CoTTrace + "seed"], "rebase": [RebaseTrace + "seed"], ...}. Everything
here is a function of it and the policy grid, so ``bench_batch --from-records`` redoes the analysis
with other thresholds or caps without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmark.batch.curves import best_saving, evaluate, savings
from benchmark.batch.offline import (
    CoTTrace,
    RebaseTrace,
    Spec,
    cot_result,
    cot_specs,
    deepconf_specs,
    detection_tokens,
    rebase_result,
    rebase_specs,
    sc_result,
    sc_specs,
)
from dynasor.core.stats import quantile
from dynasor.program_runtime.replay import Profile

DEEPCONF_REPLAY = ("recorded branches in arrival order; warm-up = the first `warmup`; a later branch is cut where the "
                   "scheduler's per-token check first finds its window confidence below the threshold, charged "
                   "crossing + 1 tokens, no answer; a cut branch keeps its recorded arrival position; partial tokens "
                   "of branches a certaindex stop would abort are not charged")


def by_seed(rows: Sequence[Mapping[str, Any]], parse: Callable[[Mapping[str, Any]], Any]) -> dict[int, list[Any]]:
    groups: dict[int, list[Any]] = {}
    for row in rows:
        groups.setdefault(int(row["seed"]), []).append(parse({k: v for k, v in row.items() if k != "seed"}))
    return dict(sorted(groups.items()))


def levels_of(groups: Mapping[int, Sequence[Any]]) -> list[int]:
    return sorted({r.level for records in groups.values() for r in records if r.level is not None})


def best_by_family(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The best point at matched accuracy of every stopping family (the headline rows per level)."""
    families = dict.fromkeys(r["family"] for r in rows)
    return {f: best for f in families if (best := best_saving(rows, f)) is not None}


def workload(groups: Mapping[int, Sequence[Any]], knobs: Sequence[int], specs: Sequence[Spec],
             result: Callable[[Any, int, Spec], Any], knob_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Points and savings over all problems, and per difficulty level when levels are mixed."""
    points = evaluate(groups, knobs, specs, result)
    rows = savings(points)
    out: dict[str, Any] = {"knob": knob_name, "config": dict(config), "points": points, "savings": rows,
                           "best": best_saving(rows), "best_by_family": best_by_family(rows), "by_level": {}}
    levels = levels_of(groups)
    if len(levels) > 1:
        for level in levels:
            sub = {s: [r for r in recs if r.level == level] for s, recs in groups.items()}
            sub = {s: recs for s, recs in sub.items() if recs}
            lpoints = evaluate(sub, knobs, specs, result)
            lrows = savings(lpoints)
            out["by_level"][str(level)] = {"programs": sum(len(r) for r in sub.values()), "points": lpoints,
                                           "savings": lrows, "best": best_saving(lrows),
                                           "best_by_family": best_by_family(lrows)}
    return out


@dataclass(frozen=True)
class DeepConfGrid:
    """The DeepConf policies of the SC analysis: ``etas`` for offline, online and certaindex +
    online, the online ``warmup`` branches and the confidence ``window`` in tokens."""

    etas: tuple[float, ...]
    warmup: int
    window: int


def analyse_sc(rows: Sequence[Mapping[str, Any]], caps: Sequence[int], detect_at: int, thresholds: Sequence[float],
               length_quantiles: Sequence[float], resamples: int,
               deepconf: DeepConfGrid | None = None) -> dict[str, Any]:
    """DeepConf policies only when every recorded branch carries its token confidences."""
    groups = by_seed(rows, Profile.from_json)
    recorded = min(len(p.branches) for ps in groups.values() for p in ps)
    knobs = sorted({c for c in caps if c <= recorded})
    at_detection = [detection_tokens(p, detect_at) for ps in groups.values() for p in ps]
    lengths = [round(quantile(at_detection, q)) for q in length_quantiles]
    config = {"caps": knobs, "recorded_cap": recorded, "detect_at": detect_at, "thresholds": list(thresholds),
              "length_quantiles": list(length_quantiles), "length_thresholds": lengths, "resamples": resamples,
              "programs": sum(len(p) for p in groups.values()),
              "branches": sum(len(p.branches) for ps in groups.values() for p in ps)}
    specs = sc_specs(thresholds, lengths, detect_at)
    with_stats = all(b.confidences for ps in groups.values() for p in ps for b in p.branches)
    if deepconf is not None and with_stats:
        specs += deepconf_specs(deepconf.etas, deepconf.warmup, deepconf.window, thresholds, detect_at)
        config["deepconf"] = {"etas": list(deepconf.etas), "warmup": deepconf.warmup, "window": deepconf.window,
                              "replay": DEEPCONF_REPLAY}
    elif deepconf is not None:
        config["deepconf"] = "not replayed: the recording has no per-token confidences"
    return workload(groups, knobs, specs,
                    lambda p, k, s: sc_result(p, k, s, resamples), "cap", config)


def analyse_cot(rows: Sequence[Mapping[str, Any]], chunk_tokens: int, budget: int,
                windows: Sequence[int]) -> dict[str, Any]:
    groups = by_seed(rows, CoTTrace.from_json)
    budgets = [chunk_tokens * i for i in range(1, budget // chunk_tokens + 1)]
    config = {"chunk_tokens": chunk_tokens, "budgets": budgets, "windows": list(windows),
              "programs": sum(len(t) for t in groups.values()),
              "probe_tokens_recorded": sum(p.tokens for ts in groups.values() for t in ts for p in t.probes if p)}
    return workload(groups, budgets, cot_specs(windows),
                    lambda t, b, s: cot_result(t, b // chunk_tokens, s), "budget", config)


def analyse_rebase(rows: Sequence[Mapping[str, Any]], thresholds: Sequence[float],
                   length_quantiles: Sequence[float]) -> dict[str, Any]:
    groups = by_seed(rows, RebaseTrace.from_json)
    traces = [t for ts in groups.values() for t in ts]
    detects = sorted({t.detect_at for t in traces})
    if len(detects) != 1:
        raise ValueError(f"Rebase recordings need one detection width, got {detects}")
    detect = detects[0]
    smallest = min(t.width for t in traces)
    lengths = [round(quantile([t.tokens_first for t in traces], q)) for q in length_quantiles]

    def result(trace: RebaseTrace, width: int, spec: Spec) -> Any:
        if width == trace.detect_at and trace.width != smallest:  # one first-search point per problem
            return None
        return rebase_result(trace, width, spec)

    knobs = sorted({detect, *(t.width for t in traces)})
    config = {"widths": knobs, "detect_at": detect, "thresholds": list(thresholds),
              "length_quantiles": list(length_quantiles), "length_thresholds": lengths,
              "programs": len(traces), "judge_tokens": sum(t.judge_tokens for t in traces)}
    return workload(groups, knobs, rebase_specs(thresholds, lengths, detect), result, "width", config)
