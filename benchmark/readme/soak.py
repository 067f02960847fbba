"""README rendering of a soak run (``benchmark/soak/soak.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num


def render_soak(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    minutes = num((data.get("duration_s") or 0) / 60, "g")
    out = [f"#### Soak: {minutes} minutes of mixed load on one server — `{link(path, readme)}`", "",
           f"- {machine_line(data.get('machine'))}",
           f"- {data.get('workers')} concurrent clients, a sample every {num(data.get('sample_every_s'), 'g')} s, "
           f"RSS slope fitted after {num(data.get('warmup_s'), 'g')} s, program TTL "
           f"{num(data.get('program_ttl_s'), 'g')} s, KV capacity {data.get('kv_tokens') or 'n/a'} tokens, "
           f"{data.get('requests')} requests", "",
           "| figure | value | target |", "|---|---|---|",
           f"| 5xx answers (`server_errors`) | {data.get('server_errors')} | 0 |",
           f"| other failed requests | {data.get('failed_requests')} | 0 |",
           f"| running + waiting at the end (`stuck_requests`) | {data.get('stuck_requests')} | 0 |",
           f"| KV in use back to idle at the end | {data.get('kv_idle_at_end')} | True |",
           f"| largest program table (`max_programs`) | {data.get('max_programs')} | bounded by the TTL |",
           f"| RSS slope after warm-up (`rss_slope_mb_per_min`) | {num(data.get('rss_slope_mb_per_min'), '+.2f')} "
           "MB/min | ≤ 1 MB/min |"]
    by_process = data.get("rss_slope_mb_per_min_by_process") or {}
    if by_process:
        out.append("| RSS slope by process | " + ", ".join(f"{name} {num(value, '+.2f')}" for name, value
                                                       in by_process.items()) + " MB/min | |")
    rss = data.get("rss_mb") or {}
    out += [f"| RSS first / after warm-up / last | {num(rss.get('first'), '.0f')} / "
            f"{num(rss.get('after_warmup'), '.0f')} / {num(rss.get('last'), '.0f')} MB | |", "",
            "| request kind | requests | p50 s | p99 s | 5xx |", "|---|---|---|---|---|"]
    for kind, row in (data.get("latency") or {}).items():
        out.append(f"| {kind} | {row.get('n')} | {num(row.get('p50'), '.2f')} | {num(row.get('p99'), '.2f')} | "
                   f"{row.get('server_errors')} |")
    if data.get("note"):
        out += ["", f"Note: {data['note']}"]
    if data.get("png"):
        out += ["", f"![soak]({link(data['png'], readme)})"]
    return [*out, ""]
