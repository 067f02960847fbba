"""README rendering of the alternating A/B (``bench_alternate.py``): a policy against machine drift."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num


def _interval(value: Any) -> str:
    if not isinstance(value, Mapping):
        return "–"
    verdict = "excludes 1.0" if value.get("excludes_1") else "includes 1.0"
    return (f"{num(value.get('ratio'), '.3f')}x [{num(value.get('low'), '.3f')}, {num(value.get('high'), '.3f')}], "
            f"{verdict}")


def render_alternating(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    names = list(data.get("systems") or [])
    out = [f"#### Alternating A/B: {' vs '.join(names)} — `{link(path, readme)}`", "",
           f"- {machine_line(data.get('machine'))}",
           f"- {data.get('programs')} programs at {data.get('rate')}/s, one seeded trace, {data.get('workload')}"
           + (f", --dp-size {data['dp_size']}" if (data.get("dp_size") or 1) > 1 else "")
           + (f", {data['workers']} servers behind SGLang's router" if (data.get("workers") or 1) > 1 else "") + "; "
           + f"{data.get('pairs')} rounds, both systems per round on fresh servers, the order swapped every round"
           + ("" if data.get("complete") else " — partial run (interrupted)"), "",
           "| round | system | ran | mean program s | p50 s | decode steps | mean decode batch | forward s | "
           "decode ms @ batch 4 / 8 / 16 |", "|---|---|---|---|---|---|---|---|---|"]
    for i, round_ in enumerate(data.get("rounds") or []):
        for name, run in sorted(round_.items(), key=lambda item: item[1].get("order", 0)):
            by_batch = run.get("median_decode_ms_by_batch") or {}
            out.append(f"| {i} | {name} | {'first' if run.get('order') == 0 else 'second'} | "
                       f"{num(run.get('mean_latency_s'), '.2f')} | {num(run.get('p50_latency_s'), '.2f')} | "
                       f"{num(run.get('decode_steps'), 'd')} | {num(run.get('mean_decode_batch'), '.2f')} | "
                       f"{num(run.get('forward_s'), '.1f')} | "
                       + " / ".join(num(by_batch.get(b), ".0f") for b in ("4", "8", "16")) + " |")
    summary = data.get("summary") or {}
    if summary:
        out += ["", f"{summary.get('ratio')}, paired by round (95% bootstrap over rounds):", "",
                f"- mean program latency: {_interval(summary.get('mean_latency_s'))}",
                f"- forward seconds: {_interval(summary.get('forward_s'))}"]
        corr = summary.get("latency_vs_decode_ms_at_batch_4")
        if isinstance(corr, Mapping):
            out.append(f"- Pearson correlation of a run's mean program latency with its median decode step at "
                       f"batch 4 (the machine's speed then), over {corr.get('runs')} runs: "
                       f"{num(corr.get('pearson'), '.2f')}")
    return [*out, ""]
