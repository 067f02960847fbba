"""README rendering of the burst benchmark (``bench_burst.py``): where the makespan of a burst goes."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num


def _mean(rounds: Sequence[Mapping[str, Any]], key: str, in_steps: bool = True) -> float | None:
    values = [(r.get("steps") or {}).get(key) if in_steps else r.get(key) for r in rounds]
    present = [v for v in values if isinstance(v, (int, float))]
    return statistics.mean(present) if present else None


def render_burst(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    settings = data.get("settings") or {}
    out = [f"#### Burst: where the makespan goes — `{link(path, readme)}`", "",
           f"- {machine_line(data.get('machine_info'))}",
           f"- {settings.get('programs')} self-consistency programs × {settings.get('branches')} branches of "
           f"{settings.get('min_tokens')}–{settings.get('max_tokens')} tokens (`ignore_eos`: every system generates "
           f"the same tokens) sent at once, `--max-running-requests {settings.get('max_running_requests')}`, "
           f"{settings.get('rounds')} rounds per server (mean shown), servers one after the other; step figures from "
           "`--dynasor-step-log` (Dynasor servers only)", "",
           "| system | makespan s | mean program s | decode steps | mean decode batch | forward ms/step | "
           "scheduling s | ordering s | radix cache s | split gangs | escalations |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, rounds in (data.get("systems") or {}).items():
        out.append(f"| {name} | {num(_mean(rounds, 'makespan_s', False), '.1f')} | "
                   f"{num(_mean(rounds, 'mean_program_latency_s', False), '.1f')} | "
                   f"{num(_mean(rounds, 'decode_steps'), '.0f')} | {num(_mean(rounds, 'mean_decode_batch'), '.2f')} | "
                   f"{num(_mean(rounds, 'forward_ms_per_step'), '.1f')} | {num(_mean(rounds, 'schedule_s'), '.2f')} | "
                   f"{num(_mean(rounds, 'order_s'), '.3f')} | {num(_mean(rounds, 'tree_s'), '.2f')} | "
                   f"{num(_mean(rounds, 'split_gangs'), '.1f')} | {num(_mean(rounds, 'escalations', False), '.1f')} |")
    paired = data.get("paired_ratios_gang_sjf_over_fcfs")
    if isinstance(paired, Mapping):
        out += ["", f"gang-sjf / fcfs, paired by burst over {paired.get('pairs')} rounds (mean, 95% bootstrap "
                "interval, whether it excludes 1.0):", ""]
        for key, value in paired.items():
            if isinstance(value, Mapping):
                verdict = "excludes 1.0" if value.get("excludes_1") else "includes 1.0"
                out.append(f"- {key.replace('_', ' ')}: {num(value.get('mean'), '.3f')}x "
                           f"[{num(value.get('low'), '.3f')}, {num(value.get('high'), '.3f')}], {verdict}")
    if data.get("note"):
        out += ["", f"Note: {data['note']}"]
    return [*out, ""]
