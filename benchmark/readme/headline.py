"""The README's one headline table: a few figures, each from its result JSON, each linking to the
full results (``benchmark/results/README.md``) and its file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, num, pct
from benchmark.readme.parity import ratio_cell
from benchmark.readme.sim_gpu import ratio_cell as sim_ratio_cell

FULL = "benchmark/results/README.md"


def _parity(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    where = f"[`{path.name}`]({link(path, readme)})"
    rows = [f"| LIVE (CPU, {data.get('rounds')} alternating rounds): mean program latency, {data.get('system')} / "
            f"stock SGLang fcfs | {ratio_cell(data.get('mean_latency_ratio_vs_stock_fcfs'))} | {where} |"]
    if data.get("untagged_throughput_ratio_vs_stock_fcfs"):
        rows.append(f"| LIVE (CPU): decode throughput of untagged traffic, Dynasor / stock | "
                    f"{ratio_cell(data['untagged_throughput_ratio_vs_stock_fcfs'])} | {where} |")
    return rows


def _sim_gpu(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    where = f"[`{path.name}`]({link(path, readme)})"
    rows = []
    for key, study in list((data.get("studies") or {}).items())[:1]:
        entry = ((study.get("summary") or {}).get("systems") or {}).get("gang-sjf+certaindex") or {}
        scale = (entry.get("by_scale") or {}).get("4.0") or {}
        rows.append(f"| SIMULATED {key}: max program rate at 90% attainment (SLO scale 4), full system / fcfs | "
                    f"{sim_ratio_cell(scale.get('max_rate_ratio_vs_fcfs'))} | {where} |")
        rows.append(f"| SIMULATED {key}: tightest SLO, fcfs / full system | "
                    f"{sim_ratio_cell(entry.get('slo_ratio_vs_fcfs'))} | {where} |")
    return rows


def _sim_validation(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    agreement = data.get("decision_agreement")
    if not agreement:
        return []
    where = f"[`{path.name}`]({link(path, readme)})"
    cost = data.get("step_cost_median_error") or {}
    return [f"| Simulator vs live CPU engine: decisions agreeing on the live clock (lowest policy) / step-cost "
            f"error | {num(agreement.get('min'), '.3f')} / {pct(cost.get('median_error'))} | {where} |"]


EXTRACTORS = {"parity": _parity, "sim_gpu": _sim_gpu, "sim_validation": _sim_validation}


def render_headline(found: Mapping[str, list[tuple[Path, dict]]], readme: Path) -> list[str]:
    rows = [row for kind, extract in EXTRACTORS.items() for path, data in found.get(kind, [])
            for row in extract(path, data, readme)]
    full = link(FULL, readme)
    if not rows:
        return [f"No results yet: run `make bench-quick`. Full results: [{FULL}]({full})."]
    return ["| result | value (95% interval) | source |", "|---|---|---|", *rows, "",
            f"Every result, its machine and its command: [{FULL}]({full}). Bold: the interval excludes 1.0."]
