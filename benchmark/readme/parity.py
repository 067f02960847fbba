"""README rendering of the live parity run: Dynasor's default server against stock SGLang fcfs in
alternating rounds, each round's speed probes beside the ratios."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num


def ratio_cell(r: Mapping[str, Any] | None) -> str:
    if not r:
        return "–"
    text = f"{num(r.get('value'), '.3f')}x [{num(r.get('lo'), '.3f')}, {num(r.get('hi'), '.3f')}]"
    return f"**{text}**" if r.get("excludes_1") else text


def render_parity(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    system, rounds = data.get("system"), data.get("rounds")
    out = [f"#### Never slower than stock SGLang: {system} vs SGLang fcfs, {rounds} alternating rounds "
           f"— `{link(path, readme)}`", "",
           f"- {machine_line(data.get('machine'))}",
           f"- {data.get('title')}; source `{data.get('source')}`",
           "- ratio = mean program latency of the system / stock SGLang fcfs, paired by round (and rate), 95% "
           "bootstrap; bold where the interval excludes 1.0", "",
           "| compared | ratio |", "|---|---|",
           f"| mean program latency, all rates | {ratio_cell(data.get('mean_latency_ratio_vs_stock_fcfs'))} |"]
    out += [f"| mean program latency at {rate}/s | {ratio_cell(r)} |"
            for rate, r in (data.get("by_rate") or {}).items()]
    if data.get("untagged_throughput_ratio_vs_stock_fcfs"):
        out.append(f"| decode throughput of untagged traffic (SGLang's bench_serving) | "
                   f"{ratio_cell(data['untagged_throughput_ratio_vs_stock_fcfs'])} |")
    out.append(f"| speed probe (one program alone, before each turn) | {ratio_cell(data.get('speed_probe_ratio'))} |")
    out += [f"| {name}: mean program latency | {ratio_cell(e.get('mean_latency_ratio_vs_stock_fcfs'))} |"
            for name, e in (data.get("others") or {}).items()]
    out += ["", "Each round (systems in the order run; speed probe, then mean program latency per rate):", ""]
    for r in data.get("speed_probes") or []:
        cells = "; ".join(f"{name} probe {num(r['probe_s'].get(name), '.2f')} s, "
                          + ", ".join(f"{k}/s {num(v, '.2f')} s" for k, v in r["mean_latency_s"].get(name, {}).items())
                          for name in r.get("order", []))
        out.append(f"- round {r.get('round')}: {cells}")
    out.append("")
    return out


def untagged_design(data: Mapping[str, Any]) -> str:
    """How the untagged comparison paired its runs, in words with the count."""
    n = len(data.get("pairs") or [])
    if data.get("design") == "simultaneous":
        return f"{n} simultaneous rounds, schedulers pinned, cores swapped"
    return f"{n} alternating pairs"


def render_untagged_parity(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    """The dedicated untagged-throughput comparison (``bench_untagged.py``): one row per pair or round."""
    stock, dynasor = (data.get("systems") or ["?", "?"])[:2]
    ratio = data.get("untagged_throughput_ratio_vs_stock")
    simultaneous = data.get("design") == "simultaneous"
    how = ("both servers loaded at once, each scheduler pinned to its own core, the cores swapped each round"
           if simultaneous else "both servers up, order swapped each pair")
    out = [f"#### Untagged traffic: {dynasor} vs {stock}, {untagged_design(data)} — `{link(path, readme)}`", "",
           f"- {machine_line(data.get('machine'))}",
           f"- SGLang's bench_serving, {data.get('prompts')} random prompts per turn, "
           f"`--max-running-requests {data.get('max_running_requests')}`, {how}",
           f"- output throughput {dynasor} / {stock}, paired by {'round' if simultaneous else 'pair'}, "
           f"95% bootstrap: {ratio_cell(ratio)}", "",
           f"| {'round' if simultaneous else 'pair'} | {'cores' if simultaneous else 'order'} | {stock} tok/s | "
           f"{dynasor} tok/s | ratio |", "|---|---|---|---|---|"]
    for pair in data.get("pairs") or []:
        runs = pair.get("systems") or {}
        a, b = (runs.get(stock) or {}).get("output_throughput"), (runs.get(dynasor) or {}).get("output_throughput")
        cores = pair.get("cores") or {}
        where = (", ".join(f"{name} on {cores.get(name)}" for name in (stock, dynasor)) if simultaneous
                 else " → ".join(pair.get("order") or []))
        out.append(f"| {pair.get('pair')} | {where} | {num(a, '.1f')} | "
                   f"{num(b, '.1f')} | {num(b / a if a and b else None, '.3f')} |")
    out.append("")
    return out
