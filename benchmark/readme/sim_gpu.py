"""README rendering of the SIMULATED GPU-scale study (``benchmark.sim.gpu_scale``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, num

HEADING = ["### Simulated at GPU scale", "",
           "Every figure in this section is **SIMULATED**: `dynasor simulate` plays one SGLang engine (its admission, "
           "prefix-cache and retraction rules) with the real `dynasor.scheduler` ordering code, on an iteration-time "
           "profile. The validation against the live CPU engine comes first; the GPU-scale study after it uses "
           "profiles built from measured A100/H100 operator times (attention and LM head modelled; assumptions in "
           "the JSON).", ""]


def ratio_cell(cell: Mapping[str, Any] | None) -> str:
    """``1.52x [1.40, 1.66]``; an interval that excludes 1.0 is bold."""
    if not cell or cell.get("ratio") is None:
        return "undefined"
    if cell.get("low") is None:
        return f"{cell['ratio']:.2f}x [no interval]"
    text = f"{cell['ratio']:.2f}x [{cell['low']:.2f}, {cell['high']:.2f}]"
    # bold only where the shown bounds exclude 1.00 (an interval of [0.993, 0.999] reads as 1.00)
    shown_excludes = round(cell["low"], 2) > 1.0 or round(cell["high"], 2) < 1.0
    return f"**{text}**" if cell.get("excludes_1") and shown_excludes else text


def rate_cell(bound: Mapping[str, Any] | None) -> str:
    if not bound:
        return "–"
    if bound.get("rate") is not None:
        return num(bound["rate"], ".2f")
    high = bound.get("high")
    return f"< {num(high, '.2f')}" if bound.get("kind") == "below-swept" else f"> {num(bound.get('low'), '.2f')}"


def render_sim_gpu(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    ablations = {name: mechanism for mechanism, name in (data.get("ablations") or {}).items()}
    scales = [str(float(s)) for s in data.get("slo_scales", [])]
    out = [f"#### SIMULATED GPU-scale study — `{link(path, readme)}`", "",
           f"{data.get('programs_per_rate')} programs per rate point, rates {data.get('rates')} programs/s, "
           f"deadline = SLO scale x the program's solo latency, target attainment "
           f"{data.get('target_attainment')}; ratios: paired-bootstrap 95% intervals (bold: excludes 1.00 as shown); "
           f"{num(data.get('wall_seconds'), '.0f')} s wall on the 2-core build machine.", ""]
    for key, study in (data.get("studies") or {}).items():
        summary = study.get("summary") or {}
        background = (study.get("workload") or {}).get("background")
        limits = study.get("limits") or {}
        out += [f"**{key}** (SIMULATED): KV pool {limits.get('kv_tokens')} tokens, running cap "
                f"{limits.get('max_running_requests')}, chunked prefill {limits.get('chunked_prefill_size')}"
                + (f"; background: {background.get('trace')} at {background.get('rate_per_s')} requests/s, untagged"
                   if background else "") + f"; tightest SLO at the fixed rate {summary.get('fixed_rate')}/s.", "",
                "| system | " + " | ".join(f"max rate @ scale {s} | vs fcfs | vs lpm" for s in scales)
                + " | tightest SLO scale | tighter than fcfs | tighter than lpm |",
                "|---|" + "---|---|---|" * len(scales) + "---|---|---|"]
        for name, entry in (summary.get("systems") or {}).items():
            label = f"{name} (− {ablations[name]})" if name in ablations else name
            cells = []
            for s in scales:
                cell = (entry.get("by_scale") or {}).get(s) or {}
                cells += [rate_cell(cell.get("max_rate")), ratio_cell(cell.get("max_rate_ratio_vs_fcfs")),
                          ratio_cell(cell.get("max_rate_ratio_vs_lpm"))]
            out.append(f"| {label} | " + " | ".join(cells) + f" | {num(entry.get('tightest_scale'), '.2f')} | "
                       f"{ratio_cell(entry.get('slo_ratio_vs_fcfs'))} | {ratio_cell(entry.get('slo_ratio_vs_lpm'))} |")
        out.append("")
    png = path.with_suffix(".png")
    if png.exists():
        out += [f"![SIMULATED attainment vs rate]({link(png, readme)})", ""]
    return out
