"""The README's one headline table: a few figures, each from its result JSON, each linking to the
full results (``benchmark/results/README.md``) and its file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, num, pct
from benchmark.readme.kv_bound import interval_cell
from benchmark.readme.parity import ratio_cell, untagged_design
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


def _untagged_parity(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    systems = data.get("systems") or ["?", "?"]
    return [f"| LIVE (CPU, {untagged_design(data)}): decode throughput of untagged traffic, "
            f"{systems[1]} / {systems[0]} | {ratio_cell(data.get('untagged_throughput_ratio_vs_stock'))} | "
            f"[`{path.name}`]({link(path, readme)}) |"]


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


def _sim_reasoning(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    where = f"[`{path.name}`]({link(path, readme)})"
    rows = []
    for key, study in (data.get("studies") or {}).items():
        head = study.get("headline") or {}
        rows.append(f"| SIMULATED {key} (KV pool binds): mean program latency at {head.get('overload_rate')}/s, "
                    f"full system / best stock SGLang | {interval_cell(head.get('latency_ratio_vs_best_stock'))} | "
                    f"{where} |")
        rows.append(f"| SIMULATED {key}: max program rate at 90% within 4x solo, full system / best stock | "
                    f"{interval_cell(head.get('max_rate_ratio_vs_best_stock'))} | {where} |")
    return rows


def _live_kvbound(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    cell = data.get("mean_latency_ratio_vs_best_stock")
    if (data.get("rounds") or 0) < 3:  # a pilot is in the full results, not the headline
        return []
    return [f"| LIVE (CPU, {data.get('rounds')} alternating rounds, KV pool binds): mean program latency, Dynasor / "
            f"best stock SGLang ({data.get('best_stock')}) | {ratio_cell(cell)} | "
            f"[`{path.name}`]({link(path, readme)}) |"]


EXTRACTORS = {"parity": _parity, "untagged_parity": _untagged_parity, "live_kvbound": _live_kvbound,
              "sim_gpu": _sim_gpu, "sim_reasoning": _sim_reasoning, "sim_validation": _sim_validation}


def render_headline(found: Mapping[str, list[tuple[Path, dict]]], readme: Path) -> list[str]:
    rows = [row for kind, extract in EXTRACTORS.items() for path, data in found.get(kind, [])
            for row in extract(path, data, readme)]
    full = link(FULL, readme)
    if not rows:
        return [f"No results yet: run `make bench-quick`. Full results: [{FULL}]({full})."]
    return ["| result | value (95% interval) | source |", "|---|---|---|", *rows, "",
            f"Every result, its machine and its command: [{FULL}]({full}). Bold: the interval excludes 1.0."]
