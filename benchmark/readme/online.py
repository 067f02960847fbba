"""README rendering of online results (``bench_online.py``: deadline attainment vs rate)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num, pngs

BASELINES = ("sglang-fcfs", "sglang-lpm")
ONLINE_DETAILS = ("model_path", "server_args", "seed", "seeds", "sizes", "level_mix", "rates", "duration",
                  "programs_per_rate", "arrivals", "program", "deadlines", "slo")


def _systems(data: Mapping[str, Any]) -> Mapping[str, Any]:
    for holder in (data.get("summary"), data):
        if isinstance(holder, Mapping) and isinstance(holder.get("systems"), Mapping):
            return holder["systems"]
    return {}


def _rate(bound: Any) -> str:
    if isinstance(bound, (int, float)):
        return f"{bound:.3f}"
    if not isinstance(bound, Mapping):
        return "–"
    if bound.get("rate") is not None:
        return f"{bound['rate']:.3f}"
    if bound.get("kind") == "above-swept":
        return f"≥ {num(bound.get('low'), 'g')} (every swept rate)"
    if bound.get("kind") == "below-swept":
        return f"< {num(bound.get('high'), 'g')} (no swept rate)"
    return "–"


def _ratio(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.2f}x"
    if not isinstance(value, Mapping):
        return "–"
    if value.get("ratio") is not None:
        return f"{value['ratio']:.2f}x"
    low, high = value.get("low"), value.get("high")
    if low is not None and high is not None:
        return f"{low:.2f}–{high:.2f}x"
    return f"≥ {low:.2f}x" if low is not None else (f"≤ {high:.2f}x" if high is not None else "–")


def _attainment_cell(window: Mapping[str, Any]) -> str:
    """Attainment, with its 95% bootstrap interval when the result has one."""
    value = num((window.get("primary") or {}).get("attainment"), ".2f")
    interval = window.get("primary_interval")
    return f"{value} [{interval[0]:.2f}–{interval[1]:.2f}]" if interval else value


def _ratio_interval(entry: Any) -> str:
    """The ratio's 95% bootstrap interval and whether it excludes 1.0 (when the result has one)."""
    if not isinstance(entry, Mapping):
        return ""
    if entry.get("low") is None:
        return f" (interval undefined: {num((entry.get('defined') or 0) * 100, '.0f')}% of replicates)"
    verdict = "excludes 1.0" if entry.get("excludes_1") else "includes 1.0"
    return f" (95% {entry['low']:.2f}–{entry['high']:.2f}x, {verdict})"


def _windows(system: Mapping[str, Any]) -> dict[float, Mapping[str, Any]]:
    return {w["rate"]: w for w in system.get("windows") or [] if isinstance(w, Mapping) and "rate" in w}


def _rates(systems: Mapping[str, Any]) -> list[float]:
    return sorted({r for s in systems.values() if isinstance(s, Mapping) for r in _windows(s)})


def _online_rate_table(systems: Mapping[str, Any], target: float, scale: Any) -> list[str]:
    """Attainment per rate, maximum sustained rate, its ratios, and what the programs cost."""
    rates = _rates(systems)
    out = [f"Deadline attainment at SLO scale {num(scale, 'g')} per rate (programs/s) [95% bootstrap interval]; "
           "the maximum rate with "
           f"{num(target * 100, '.0f')}% attainment (interpolated) and its ratio to stock SGLang; tokens, "
           "accuracy and early stops of the finished programs.", "",
           "| system | " + " | ".join(f"att@{r:g}" for r in rates) + " | max rate | "
           + " | ".join(f"vs {b}" for b in BASELINES) + " | tokens/program | accuracy | stopped early |",
           "|---|" + "---|" * (len(rates) + len(BASELINES) + 4)]
    for name, s in systems.items():
        s = s if isinstance(s, Mapping) else {}
        label = s.get("label") or name
        if s.get("error"):
            out.append(f"| {label} | failed: {str(s['error']).splitlines()[0][:80]} |"
                       + " – |" * (len(rates) + len(BASELINES) + 3))
            continue
        by_rate = _windows(s)
        cells = [_attainment_cell(by_rate[r]) if r in by_rate else "–" for r in rates]
        ws = list(by_rate.values())
        finished = sum(w.get("finished") or 0 for w in ws)
        judged = [(w["accuracy"], w.get("finished") or 0) for w in ws if isinstance(w.get("accuracy"), (int, float))]
        n_judged = sum(n for _, n in judged)
        ratios = s.get("rate_ratio_vs") or {}
        tokens = sum(w.get("tokens") or 0 for w in ws) / finished if finished else None
        accuracy = sum(a * n for a, n in judged) / n_judged if n_judged else None
        stopped = sum(w.get("stopped_early") or 0 for w in ws)
        intervals = s.get("rate_ratio_interval_vs") or {}
        out.append(f"| {label} | " + " | ".join(cells) + f" | {_rate(s.get('max_rate'))} | "
                   + " | ".join(_ratio(ratios.get(b)) + _ratio_interval(intervals.get(b)) for b in BASELINES)
                   + f" | {num(tokens)} | {num(accuracy, '.2f')} | {stopped}/{finished} |")
    return out + [""]


def _online_scale_table(systems: Mapping[str, Any], target: float) -> list[str]:
    """The maximum rate with the target attainment at every swept SLO scale, and its ratio to fcfs."""
    scales = sorted({float(k) for s in systems.values() if isinstance(s, Mapping)
                     for k in (s.get("max_rate_by_slo_scale") or {})})
    if not scales:
        return []
    out = [f"Maximum rate (programs/s) with {num(target * 100, '.0f')}% attainment at every SLO scale, from the "
           "same windows (x = ratio to SGLang fcfs).", "",
           "| system | " + " | ".join(f"scale {sc:g}" for sc in scales) + " |", "|---|" + "---|" * len(scales)]
    for name, s in systems.items():
        if not isinstance(s, Mapping) or s.get("error"):
            continue
        cells = []
        for sc in scales:
            at = (s.get("max_rate_by_slo_scale") or {}).get(f"{sc:g}") or {}
            ratio = (at.get("ratio_vs") or {}).get("sglang-fcfs")
            shown = _ratio(ratio) if ratio else "–"
            cells.append(_rate(at.get("max_rate")) + (f" ({shown})" if shown != "–" else ""))
        out.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    return out + [""]


def _online_level_table(systems: Mapping[str, Any]) -> list[str]:
    """Attainment at the primary SLO scale per difficulty level, over every rate."""
    levels = sorted({lv for s in systems.values() if isinstance(s, Mapping) for w in _windows(s).values()
                     for lv in (w.get("by_level") or {})}, key=lambda v: (len(v), v))
    if not levels:
        return []
    out = ["Per difficulty level, all rates together: programs meeting the deadline / programs.", "",
           "| system | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    for name, s in systems.items():
        if not isinstance(s, Mapping) or s.get("error"):
            continue
        cells = []
        for lv in levels:
            parts = [(w.get("by_level") or {}).get(lv) or {} for w in _windows(s).values()]
            met, n = sum(p.get("met") or 0 for p in parts), sum(p.get("n") or 0 for p in parts)
            cells.append(f"{met}/{n}" if n else "–")
        out.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    return out + [""]


def _online_slo_table(systems: Mapping[str, Any], target: float) -> list[str]:
    """The tightest SLO scale reaching the target at each rate, and how much tighter than SGLang fcfs."""
    rates = _rates(systems)
    out = [f"Tightest SLO scale with {num(target * 100, '.0f')}% attainment at each rate (x = how much tighter "
           "than SGLang fcfs).", "", "| system | " + " | ".join(f"scale@{r:g}" for r in rates) + " |",
           "|---|" + "---|" * len(rates)]
    for name, s in systems.items():
        if not isinstance(s, Mapping) or s.get("error"):
            continue
        by_rate, tight = _windows(s), (s.get("slo_tightening_vs") or {}).get("sglang-fcfs") or {}
        cells = []
        for r in rates:
            scale = by_rate[r].get("tightest_slo_scale") if r in by_rate else None
            vs = tight.get(f"{r:g}")
            cells.append(num(scale, ".2f") + (f" ({vs:.2f}x)" if isinstance(vs, (int, float)) else ""))
        out.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    return out + [""]


def _online_cache_table(systems: Mapping[str, Any]) -> list[str]:
    """Prompt tokens found in the prefix cache and prompt tokens prefilled (runs that record them)."""
    rates = _rates(systems)
    rows = []
    for name, s in systems.items():
        if not isinstance(s, Mapping) or s.get("error"):
            continue
        by_rate = _windows(s)
        if all(by_rate.get(r, {}).get("cache_hit_rate") is None for r in rates):
            continue
        cells = []
        for r in rates:
            w = by_rate.get(r, {})
            hit = w.get("cache_hit_rate")
            cells.append("–" if hit is None else f"{hit:.1%} / {num(w.get('prefill_tokens'), 'd')} / "
                         f"{num(w.get('mean_latency'), '.2f')} s")
        rows.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["Prompt tokens found in the prefix cache / prompt tokens prefilled / mean program latency, per rate.", "",
            "| system | " + " | ".join(f"{r:g}/s" for r in rates) + " |", "|---|" + "---|" * len(rates),
            *rows, ""]


def _online_latency_ratio_table(systems: Mapping[str, Any]) -> list[str]:
    """Mean program latency against the first system run, paired over the trace's programs."""
    rates, rows, first = _rates(systems), [], None
    for name, s in systems.items():
        entry = s.get("latency_ratio_vs_first") if isinstance(s, Mapping) else None
        if not isinstance(entry, Mapping):
            continue
        first = entry.get("first")
        cells = []
        for r in rates:
            c = (entry.get("by_rate") or {}).get(f"{r:g}")
            cells.append("–" if not isinstance(c, Mapping) else
                         f"{c['ratio']:.3f} [{c['low']:.3f}–{c['high']:.3f}]"
                         + (" excludes 1" if c.get("excludes_1") else " includes 1"))
        rows.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    first_label = (systems.get(str(first)) or {}).get("label") or first
    return [f"Mean program latency / that of {first_label}, paired over the trace's programs that finished under "
            "both [95% bootstrap over programs; it does not cover run-to-run drift of the machine].", "",
            "| system | " + " | ".join(f"{r:g}/s" for r in rates) + " |", "|---|" + "---|" * len(rates), *rows, ""]


def render_online(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    summary: Mapping[str, Any] = data["summary"] if isinstance(data.get("summary"), Mapping) else data
    target = summary.get("target", 0.9)
    out = [f"#### Online: program deadline attainment vs rate — `{link(path, readme)}`", ""]
    label = data.get("title") or data.get("label") or data.get("scale")
    if label:
        out += [f"> {label}" + (" — partial run (interrupted)" if data.get("complete") is False else ""), ""]
    if not data.get("rounds"):  # recorded before bench_online alternated systems, or run with --sequential
        out += ["> **SEQUENTIAL**: one run per system, one after the other; machine drift between the runs is "
                "not cancelled, so the ratios between systems below are not evidence (the alternating runs are: "
                "see the parity result).", ""]
    else:
        out += [f"> Alternating: {len(data['rounds'])} rounds, every system once per round on the same trace, "
                "the order swapped each round; records pooled over the rounds.", ""]
    out.append(f"- {machine_line(data.get('machine'))}")
    for key in ONLINE_DETAILS:
        if data.get(key) is not None:
            out.append(f"- {key}: `{json.dumps(data[key], separators=(', ', ': '))[:240]}`")
    out.append("")
    systems = _systems(data)
    if systems:
        out += _online_rate_table(systems, target, summary.get("slo_scale"))
        out += _online_scale_table(systems, target)
        out += _online_level_table(systems)
        out += _online_slo_table(systems, target)
        out += _online_cache_table(systems)
        out += _online_latency_ratio_table(systems)
    else:
        out.append("(no per-system maximum rates in this file)")
    out.append("")
    for png in pngs(path, data):
        out += [f"![online]({link(png, readme)})", ""]
    return out
