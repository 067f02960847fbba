"""README rendering of the SIMULATED scale-out study (``benchmark.sim.scale_out``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, num
from benchmark.readme.sim_gpu import rate_cell, ratio_cell


def render_sim_scale_out(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    profile = (data.get("profile") or {}).get("name")
    baselines = data.get("baselines") or []
    scales = [str(float(s)) for s in data.get("slo_scales", [])]
    specs = data.get("system_specs") or {}
    out = [f"#### SIMULATED scale-out: {data.get('engines')} engines on `{profile}` — `{link(path, readme)}`", "",
           f"{data.get('programs_per_rate')} programs per rate point (the paper's self-consistency workload), "
           f"{data.get('engines')} engines each with its own queue, program table and prefix cache; dispatch per "
           "system: " + ", ".join(f"`{name}` {spec.get('dispatch')}" for name, spec in specs.items())
           + ". Latency ratios are paired by program (bootstrap 95%; bold: excludes 1.00 as shown); "
           f"{num(data.get('wall_seconds'), '.0f')} s wall on the 2-core build machine.", "",
           "| system | " + " | ".join(f"max rate @ scale {s} | " + " | ".join(f"vs {b}" for b in baselines)
                                      for s in scales) + " |",
           "|---|" + ("---|" * (1 + len(baselines))) * len(scales)]
    summary = data.get("summary") or {}
    for name, entry in summary.items():
        cells = []
        for s in scales:
            cell = (entry.get("max_rate") or {}).get(s) or {}
            cells.append(rate_cell(cell.get("max_rate")))
            cells += [ratio_cell(cell.get(f"max_rate_ratio_vs_{b.removeprefix('sglang-')}")) for b in baselines]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    first: Mapping[str, Any] = next(iter(summary.values()), {})
    rates = [row["rate"] for row in first.get("rows", [])]
    out += ["", "Mean program latency (s), its ratio to round-robin dispatch of the same Dynasor system, "
            "prefix-cache hit rate and prefill tokens per program, by rate (programs/s):", "",
            "| rate | " + " | ".join(summary) + " |", "|---|" + "---|" * len(summary)]
    for i, rate in enumerate(rates):
        cells = []
        for entry in summary.values():
            row = entry["rows"][i]
            hit = row.get("cache_hit_rate")
            ratio = ratio_cell(row.get("latency_ratio_vs_round_robin"))
            cells.append(f"{num(row.get('mean_latency'), '.2f')} s, {ratio}, "
                         f"hit {num(100 * hit if hit is not None else None, '.1f')}%, "
                         f"prefill {num(row.get('prefill_tokens_per_program'), '.0f')}")
        out.append(f"| {num(rate, 'g')} | " + " | ".join(cells) + " |")
    out.append("")
    png = path.with_suffix(".png")
    if png.exists():
        out += [f"![SIMULATED scale-out attainment vs rate]({link(png, readme)})", ""]
    return out
