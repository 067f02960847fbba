"""README rendering of the KV-bound regime: the SIMULATED long-reasoning study
(``benchmark.sim.reasoning``) and the LIVE alternating run (``benchmark.online.bench_kvbound``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num
from benchmark.readme.parity import ratio_cell as live_cell


def interval_cell(cell: Mapping[str, Any] | None) -> str:
    """``0.62x [0.57, 0.67] vs routing-key``; bold where the shown interval excludes 1.00."""
    if not cell or cell.get("value") is None:
        return "undefined"
    lo, hi = cell.get("lo"), cell.get("hi")
    text = f"{cell['value']:.2f}x" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "")
    if lo is not None and hi is not None and (round(lo, 2) > 1.0 or round(hi, 2) < 1.0):
        text = f"**{text}**"
    base = str(cell.get("baseline") or "").removeprefix("sglang-")
    return f"{text} vs {base}" if base else text


def render_sim_reasoning(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    out = [f"#### SIMULATED long-reasoning programs that fill the KV pool — `{link(path, readme)}`", "",
           f"{data.get('programs_per_rate')} programs per rate point; every ratio against the **best stock SGLang "
           f"baseline at that point** (of {', '.join(data.get('baselines') or [])}; priority = the client's budget); "
           "max rate: 90% of programs within the SLO scale x their solo latency; SLO: the tightest scale 90% meet "
           "(> 1: tighter than stock); latency: mean program latency (< 1: faster); paired-bootstrap 95% "
           f"intervals, bold where they exclude 1.00; {num(data.get('wall_seconds'), '.0f')} s wall.", ""]
    for key, study in (data.get("studies") or {}).items():
        head = study.get("headline") or {}
        limits, workload = study.get("limits") or {}, study.get("workload") or {}
        out += [f"**{key}** (SIMULATED): KV pool {limits.get('kv_tokens')} tokens, {workload.get('branches')} "
                f"branches a program, budget {workload.get('max_new_tokens')} tokens a branch, expected stop share "
                f"{num(workload.get('expected_stop_share'), '.2f')}; max rate at SLO scale "
                f"{head.get('max_rate_slo_scale')}, SLO and latency at {head.get('overload_rate')}/s.", "",
                "| system | max rate | SLO | mean latency | waiting iterations | mean KV use | retractions |",
                "|---|---|---|---|---|---|---|"]
        rate = str(head.get("overload_rate"))
        capacity = head.get("capacity") or {}
        ablations = (head.get("ablations") or {}).items()
        rows = [(f"{head.get('system')} (full)", head.get("system"), head),
                ("without the KV mechanisms", "gang-sjf+certaindex/deferred", head.get("without_kv_mechanisms") or {}),
                *((f"− {mechanism}", cell.get("system"), cell) for mechanism, cell in ablations)]
        for label, system, cell in rows:
            cap = (capacity.get(str(system)) or {}).get(rate) or {}
            out.append(f"| {label} | {interval_cell(cell.get('max_rate_ratio_vs_best_stock'))} | "
                       f"{interval_cell(cell.get('slo_ratio_vs_best_stock'))} | "
                       f"{interval_cell(cell.get('latency_ratio_vs_best_stock'))} | "
                       f"{num(cap.get('waiting_step_share'), '.0%')} | {num(cap.get('mean_kv_use'), '.0%')} | "
                       f"{cap.get('retractions', '–')} |")
        for base in data.get("baselines") or []:
            cap = (capacity.get(base) or {}).get(rate) or {}
            out.append(f"| {base} | – | – | – | {num(cap.get('waiting_step_share'), '.0%')} | "
                       f"{num(cap.get('mean_kv_use'), '.0%')} | {cap.get('retractions', '–')} |")
        out.append("")
    png = path.with_suffix(".png")
    if png.exists():
        out += [f"![SIMULATED attainment vs rate]({link(png, readme)})", ""]
    return out


def render_live_kvbound(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    workload = data.get("workload") or {}
    pilot = " (a pilot: fewer than the 3 rounds x 40 programs a result needs)" if (data.get("rounds") or 0) < 3 or \
        len(workload.get("programs") or []) < 40 else ""
    out = [f"#### LIVE (CPU) KV-bound programs, {data.get('rounds')} alternating rounds{pilot} — "
           f"`{link(path, readme)}`", "",
           f"- {machine_line(data.get('machine'))}",
           f"- {len(workload.get('programs') or [])} programs of {workload.get('branches')} branches per (system, "
           f"rate, round) at {data.get('rates')} programs/s; branch lengths drawn (short median "
           f"{workload.get('short_median')}, long {workload.get('long_median')} tokens), unknown to client and "
           f"server; budget {workload.get('cap')} tokens a branch; KV pool {workload.get('kv_tokens')} tokens",
           f"- ratio = mean program latency / the best stock system's ({data.get('best_stock')}), paired by "
           "(round, rate), 95% bootstrap; bold where the interval excludes 1.0", "",
           "| system | mean program latency vs best stock | speed probe vs best stock |", "|---|---|---|"]
    systems = (data.get("alternation") or {}).get("systems") or {}
    for name, entry in systems.items():
        cells = [live_cell(_as_interval(entry.get(key))) for key in ("mean_latency_ratio", "probe_ratio")]
        if pilot:  # two or three pairs make no interval worth bolding
            cells = [c.replace("**", "") for c in cells]
        out.append(f"| {name} | {cells[0]} | {cells[1]} |")
    out += ["", "Each round (systems in the order run; speed probe, then mean program latency per rate):", ""]
    for r in data.get("round_data") or []:
        turns = "; ".join(f"{name} probe {num(run.get('probe_s'), '.2f')} s, " + ", ".join(
            f"{k}/s {num(v, '.1f')} s" for k, v in (run.get("mean_latency_s") or {}).items())
            for name, run in (r.get("systems") or {}).items())
        out.append(f"- round {r.get('round')}: {turns}")
    out.append("")
    return out


def _as_interval(ratio: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not ratio:
        return None
    return {"value": ratio.get("ratio"), "lo": ratio.get("low"), "hi": ratio.get("high"),
            "excludes_1": ratio.get("excludes_1")}
