"""Summary, printed tables and PNG plots of an online run, all computed from the recorded programs.

Everything here is a pure function of the per-program records and the deadline model, so a saved
JSON can be re-summarised with other SLO scales or targets (``bench_online.py --replay``) without
running anything again.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.online.metrics import (
    ProgramRecord,
    attainment,
    cdf_points,
    fairness_values,
    met,
    tightest_slo_scale,
    window_stats,
)
from benchmark.online.systems import BASELINES
from benchmark.online.workload import DeadlineModel
from dynasor.evaluation.paired_ratio import paired_ratio_interval
from dynasor.evaluation.rate_bootstrap import attainment_interval, rate_ratio_intervals
from dynasor.evaluation.rate_curve import RateBound, max_sustained_rate, rate_ratio


def rate_key(rate: float) -> str:
    return f"{rate:g}"


def summarize_window(window: Mapping[str, Any], deadlines: DeadlineModel, slo_scale: float,
                     slo_scales: Sequence[float], target: float) -> dict[str, Any]:
    """One (system, rate) window: attainment at the primary scale and at every swept scale."""
    records = sorted((ProgramRecord.from_json(r) for r in window["records"]), key=lambda r: r.index)  # trace order
    units = [deadlines.unit(r.level) for r in records]
    outcomes = [met(r, slo_scale * u) for r, u in zip(records, units)]
    workload = window["workload"]
    by_level: dict[str, Any] = {}
    for level in sorted({r.level for r in records}):
        mine = [r for r in records if r.level == level]
        judged = [r.correct for r in mine if r.finished and r.correct is not None]
        by_level[str(level)] = {**attainment(mine, [deadlines.deadline(level, slo_scale)] * len(mine)).to_json(),
                                "accuracy": sum(judged) / len(judged) if judged else None}
    return {"rate": workload["rate"], **window_stats(records, workload["duration"]), "by_level": by_level,
            "primary": attainment(records, [slo_scale * u for u in units]).to_json(),
            "primary_interval": list(attainment_interval(outcomes)) if outcomes else None,
            "outcomes": outcomes,
            "vs_slo_scale": [{"slo_scale": s, **attainment(records, [s * u for u in units]).to_json()}
                             for s in slo_scales],
            "tightest_slo_scale": tightest_slo_scale(records, units, target),
            "fairness": fairness_values(records)}


def _ratio_json(low: float | None, high: float | None) -> dict[str, Any]:
    """A zero lower bound (our rate unbounded below) says nothing: reported as unknown."""
    low = low or None
    return {"ratio": low if low is not None and low == high else None, "low": low, "high": high}


def _bounds_at_scale(per_system: Mapping[str, Any], scale: float, target: float) -> dict[str, RateBound]:
    """Maximum sustained rate of every system with deadlines at SLO ``scale`` (same windows)."""
    out: dict[str, RateBound] = {}
    for name, entry in per_system.items():
        points = [(w["rate"], at["attainment"]) for w in entry["windows"] for at in w["vs_slo_scale"]
                  if at["slo_scale"] == scale and at["n"]]
        if points:
            out[name] = max_sustained_rate(points, target)
    return out


def summarize(systems: Mapping[str, Mapping[str, Any]], deadlines: DeadlineModel, slo_scale: float,
              slo_scales: Sequence[float], target: float) -> dict[str, Any]:
    """Per system: windows, maximum sustained rate, and ratios against each stock baseline run."""
    per_system: dict[str, Any] = {}
    bounds: dict[str, RateBound] = {}
    for name, run in systems.items():
        windows = [summarize_window(w, deadlines, slo_scale, slo_scales, target) for w in run.get("windows", [])]
        points = [(w["rate"], w["primary"]["attainment"]) for w in windows if w["primary"]["n"]]
        entry: dict[str, Any] = {"label": run["system"]["label"], "error": run.get("error"), "windows": windows,
                                 "max_rate": None}
        if points:
            bounds[name] = max_sustained_rate(points, target)
            entry["max_rate"] = bounds[name].to_json()
        per_system[name] = entry
    by_scale = {f"{scale:g}": _bounds_at_scale(per_system, scale, target) for scale in slo_scales}
    paired = {name: {w["rate"]: w["outcomes"] for w in entry["windows"]} for name, entry in per_system.items()
              if entry["windows"] and not entry["error"]}
    intervals = rate_ratio_intervals(paired, [b for b in BASELINES if b in paired], target) if paired else {}
    for name, entry in per_system.items():
        entry["rate_ratio_vs"] = {base: _ratio_json(*rate_ratio(bounds[name], bounds[base]))
                                  for base in BASELINES if name in bounds and base in bounds}
        entry["rate_ratio_interval_vs"] = intervals.get(name, {})
        entry["max_rate_by_slo_scale"] = {
            key: {"max_rate": found[name].to_json(),
                  "ratio_vs": {base: _ratio_json(*rate_ratio(found[name], found[base]))
                               for base in BASELINES if base in found}}
            for key, found in by_scale.items() if name in found}
        entry["slo_tightening_vs"] = {}
        for base in BASELINES:
            if base not in per_system:
                continue
            theirs = {rate_key(w["rate"]): w["tightest_slo_scale"] for w in per_system[base]["windows"]}
            entry["slo_tightening_vs"][base] = {
                rate_key(w["rate"]): (theirs[rate_key(w["rate"])] / w["tightest_slo_scale"]
                                      if theirs.get(rate_key(w["rate"])) and w["tightest_slo_scale"] else None)
                for w in entry["windows"]}
    _latency_ratios(systems, per_system)
    return {"target": target, "slo_scale": slo_scale, "slo_scales": list(slo_scales), "systems": per_system}


def _latency_ratios(systems: Mapping[str, Mapping[str, Any]], per_system: dict[str, Any]) -> None:
    """Mean program latency of each system over that of the first system run, per rate, with a paired
    95% bootstrap interval over the programs of the one trace that finished under both."""
    names = [n for n, run in systems.items() if run.get("windows") and not run.get("error")]
    if len(names) < 2:
        return
    first = names[0]

    def latencies(name: str) -> dict[float, dict[int, float]]:
        return {w["workload"]["rate"]: {r["index"]: r["latency"] for r in w["records"]
                                        if r.get("latency") is not None and r.get("error") is None}
                for w in systems[name]["windows"]}

    theirs = latencies(first)
    for name in names[1:]:
        ratios = {}
        for rate, mine in latencies(name).items():
            both = sorted(set(mine) & set(theirs.get(rate, {})))
            if both:
                ratios[rate_key(rate)] = paired_ratio_interval([mine[i] for i in both], [theirs[rate][i] for i in both])
        per_system[name]["latency_ratio_vs_first"] = {"first": first, "by_rate": ratios}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rate_cell(bound: Mapping[str, Any] | None) -> str:
    if bound is None:
        return "-"
    if bound["kind"] == "interpolated":
        return f"{bound['rate']:.3f}"
    return f">={bound['low']:g}" if bound["kind"] == "above-swept" else f"<{bound['high']:g}"


def _ratio_cell(ratio: Mapping[str, Any] | None) -> str:
    if not ratio:
        return "-"
    if ratio["ratio"] is not None:
        return f"{ratio['ratio']:.2f}x"
    low, high = ratio["low"], ratio["high"]
    if low is not None and high is not None:
        return f"{low:.2f}-{high:.2f}x"
    return f">={low:.2f}x" if low is not None else (f"<={high:.2f}x" if high is not None else "?")


def _grid(title: str, head: str, rows: list[str]) -> list[str]:
    return ["", title, head, "-" * len(head), *rows]


def _rate_table(systems: Mapping[str, Any], rates: list[float], target: float, scale: float) -> list[str]:
    head = (f"{'system':<30} | " + " | ".join(f"att@{rate_key(r):>5}" for r in rates)
            + f" | {'max rate':>9} | {'vs fcfs':>9} | {'vs lpm':>9} | {'tok/prog':>8} | {'acc':>5} | {'stopped':>7}")
    rows = []
    for name, s in systems.items():
        if s["error"]:
            rows.append(f"{name:<30} | failed: {s['error'].splitlines()[0][:100]}")
            continue
        by_rate = {w["rate"]: w for w in s["windows"]}
        cells = [_fmt(by_rate[r]["primary"]["attainment"], '9.2f') if r in by_rate else f"{'-':>9}" for r in rates]
        finished = sum(w["finished"] for w in s["windows"])
        judged = [(w["accuracy"], w["finished"]) for w in s["windows"] if w["accuracy"] is not None]
        n_judged = sum(n for _, n in judged)
        ratios = s["rate_ratio_vs"]
        rows.append(f"{name:<30} | " + " | ".join(cells) + f" | {_rate_cell(s['max_rate']):>9} | "
                    f"{_ratio_cell(ratios.get('sglang-fcfs')):>9} | {_ratio_cell(ratios.get('sglang-lpm')):>9} | "
                    f"{_fmt(sum(w['tokens'] for w in s['windows']) / finished if finished else None, '8.1f')} | "
                    f"{_fmt(sum(a * n for a, n in judged) / n_judged if n_judged else None, '5.2f')} | "
                    f"{sum(w['stopped_early'] for w in s['windows']):>3}/{finished:<3}")
    return _grid(f"deadline attainment at SLO scale {scale:g} per rate (programs/s), maximum rate at {target:.0%} "
                 "attainment and its ratio to stock SGLang; tokens, accuracy and early stops of finished programs",
                 head, rows)[1:]


def _scale_table(systems: Mapping[str, Any], target: float) -> list[str]:
    scales = sorted({float(k) for s in systems.values() for k in s.get("max_rate_by_slo_scale", {})})
    head = f"{'system':<30} | " + " | ".join(f"{'scale ' + format(sc, 'g'):>18}" for sc in scales)
    rows = []
    for name, s in systems.items():
        if s["error"]:
            continue
        cells = []
        for sc in scales:
            at = s.get("max_rate_by_slo_scale", {}).get(f"{sc:g}")
            cells.append(f"{_rate_cell(at['max_rate']) + ' ' + _ratio_cell(at['ratio_vs'].get('sglang-fcfs')):>18}"
                         if at else f"{'-':>18}")
        rows.append(f"{name:<30} | " + " | ".join(cells))
    return _grid(f"maximum rate with {target:.0%} attainment at each SLO scale, and its ratio to SGLang fcfs",
                 head, rows)


def _tightest_table(systems: Mapping[str, Any], rates: list[float], target: float) -> list[str]:
    head = f"{'system':<30} | " + " | ".join(f"{'scale@' + rate_key(r):>11} {'x fcfs':>6}" for r in rates)
    rows = []
    for name, s in systems.items():
        if s["error"]:
            continue
        by_rate = {w["rate"]: w for w in s["windows"]}
        tight = s["slo_tightening_vs"].get("sglang-fcfs", {})
        cells = []
        for r in rates:
            scale_at = by_rate[r]["tightest_slo_scale"] if r in by_rate else None
            vs = tight.get(rate_key(r))
            cells.append(f"{_fmt(scale_at, '.2f'):>11} {_fmt(vs, '.2f') + 'x' if vs else '-':>6}")
        rows.append(f"{name:<30} | " + " | ".join(cells))
    return _grid(f"tightest SLO scale with {target:.0%} attainment per rate, and how much tighter than SGLang fcfs",
                 head, rows)


def _latency_ratio_table(systems: Mapping[str, Any], rates: list[float]) -> list[str]:
    rows, first = [], None
    for name, s in systems.items():
        entry = s.get("latency_ratio_vs_first")
        if not entry:
            continue
        first = entry["first"]
        cells = []
        for r in rates:
            cell = entry["by_rate"].get(rate_key(r))
            cells.append("-" if not cell else f"{cell['ratio']:.3f} [{cell['low']:.3f}, {cell['high']:.3f}]"
                         f"{' excl. 1' if cell['excludes_1'] else ' incl. 1'}")
        rows.append(f"{name:<38} | " + " | ".join(f"{c:>28}" for c in cells))
    if not rows:
        return []
    head = f"{'system':<38} | " + " | ".join(f"{'at ' + rate_key(r) + '/s':>28}" for r in rates)
    return _grid(f"mean program latency / that of {first} (paired over the trace's programs, 95% bootstrap)",
                 head, rows)


def _cache_table(systems: Mapping[str, Any], rates: list[float]) -> list[str]:
    """Prompt tokens the engine found cached, and those it prefilled, per rate (runs that record them)."""
    head = f"{'system':<38} | " + " | ".join(f"{'hit@' + rate_key(r):>9} {'prefill':>8} {'mean s':>7}" for r in rates)
    rows = []
    for name, s in systems.items():
        by_rate = {w["rate"]: w for w in s["windows"]}
        if s["error"] or all(by_rate.get(r, {}).get("cache_hit_rate") is None for r in rates):
            continue
        cells = []
        for r in rates:
            w = by_rate.get(r, {})
            cells.append(f"{_fmt(w.get('cache_hit_rate'), '.1%'):>9} {_fmt(w.get('prefill_tokens'), 'd'):>8} "
                         f"{_fmt(w.get('mean_latency'), '.2f'):>7}")
        rows.append(f"{name:<38} | " + " | ".join(cells))
    if not rows:
        return []
    return _grid("prompt tokens found in the prefix cache, prompt tokens prefilled, mean program latency", head, rows)


def _interval_cell(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "-"
    if entry.get("low") is None:
        return f"undefined ({entry.get('defined', 0):.0%})"
    verdict = "excl. 1" if entry["excludes_1"] else "incl. 1"
    return f"{entry['low']:.2f}-{entry['high']:.2f}x {verdict}"


def _interval_table(systems: Mapping[str, Any], rates: list[float]) -> list[str]:
    head = (f"{'system':<30} | " + " | ".join(f"{'att@' + rate_key(r):>13}" for r in rates)
            + f" | {'max rate vs fcfs':>24} | {'max rate vs lpm':>24}")
    rows = []
    for name, s in systems.items():
        if s["error"]:
            continue
        by_rate = {w["rate"]: w for w in s["windows"]}
        cells = []
        for r in rates:
            ci = by_rate[r].get("primary_interval") if r in by_rate else None
            cells.append(f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-")
        ratio = s.get("rate_ratio_interval_vs", {})
        vs = [f"{_interval_cell(ratio.get(base)):>24}" for base in ("sglang-fcfs", "sglang-lpm")]
        rows.append(f"{name:<30} | " + " | ".join(f"{c:>13}" for c in cells) + " | " + " | ".join(vs))
    return _grid("95% bootstrap intervals (paired over the one trace): attainment per rate, and the maximum-rate ratio "
                 "(whether it excludes 1.0; 'undefined' when too few replicates interpolate a rate)", head, rows)


def format_tables(summary: Mapping[str, Any]) -> str:
    """Attainment per rate, maximum sustained rate and its ratios; the maximum rate at every SLO
    scale; the tightest SLO scale per rate."""
    systems = summary["systems"]
    rates = sorted({w["rate"] for s in systems.values() for w in s["windows"]})
    target = summary["target"]
    lines = (_rate_table(systems, rates, target, summary["slo_scale"]) + _interval_table(systems, rates)
             + _scale_table(systems, target) + _tightest_table(systems, rates, target) + _cache_table(systems, rates)
             + _latency_ratio_table(systems, rates))
    return "\n".join(lines)


def fairness_rate(summary: Mapping[str, Any], requested: float | None) -> float | None:
    """The rate whose fairness CDF is plotted: the requested one, else the highest swept rate."""
    rates = sorted({w["rate"] for s in summary["systems"].values() for w in s["windows"]})
    if not rates:
        return None
    return requested if requested is not None and requested in rates else rates[-1]


def plot(summary: Mapping[str, Any], prefix: Path, title: str, fairness_at: float | None) -> list[Path]:
    """Three PNGs: attainment vs rate, attainment vs SLO scale (one panel per rate), fairness CDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = {n: s for n, s in summary["systems"].items() if s["windows"]}
    target = summary["target"]
    title = textwrap.fill(title, 90)
    paths = [prefix.with_name(prefix.name + suffix) for suffix in ("_rate.png", "_slo.png", "_fairness.png")]
    prefix.parent.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in systems.values():
        pts = [(w["rate"], w["primary"]["attainment"]) for w in s["windows"] if w["primary"]["n"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s["label"])
    ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="program rate (programs/s)", ylabel=f"deadline attainment (SLO scale {summary['slo_scale']:g})",
           ylim=(-0.02, 1.02), title=f"Attainment vs rate\n{title}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    rates = sorted({w["rate"] for s in systems.values() for w in s["windows"]})
    fig, axes = plt.subplots(1, max(1, len(rates)), figsize=(4.5 * max(1, len(rates)), 4.2), squeeze=False)
    for ax, rate in zip(axes[0], rates):
        for s in systems.values():
            for w in s["windows"]:
                if w["rate"] == rate and w["n"]:
                    pts = w["vs_slo_scale"]
                    ax.plot([p["slo_scale"] for p in pts], [p["attainment"] for p in pts], marker="o",
                            label=s["label"])
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="SLO scale", ylabel="deadline attainment", ylim=(-0.02, 1.02), title=f"rate {rate:g}/s")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Attainment vs SLO scale\n{title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in systems.values():
        for w in s["windows"]:
            if w["rate"] == fairness_at and w["n"]:
                pts = cdf_points(w["fairness"], w["n"])
                if pts:
                    ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", label=s["label"])
    ax.set(xlabel="latency / output tokens (s per token)", ylabel="fraction of programs", ylim=(0, 1.02),
           title=f"Finish-time fairness CDF at {_fmt(fairness_at, 'g')} programs/s\n{title}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=120)
    plt.close(fig)
    return paths
