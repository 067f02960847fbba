"""README rendering of the scheduler's ordering cost and untagged throughput (``bench_overhead.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num


def render_overhead(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    out = [f"#### Scheduler overhead — `{link(path, readme)}`", "", "- " + machine_line(data.get("machine_info")),
           "- milliseconds per scheduling step, median (p90 for the steady state), one process, SGLang's own "
           "`fcfs` and `lpm` on the same queues; steady state = every step "
           f"{data.get('admit', '?')} admissions from the front of the ordered queue, as many arrivals, one token "
           f"of progress for each of {data.get('in_service', '?')} running requests and "
           f"{data.get('admit', '?')} finishes (`benchmark/scheduler/ordering_cost.py` defines every column)", "",
           "| waiting | programs | SGLang fcfs | SGLang lpm | Dynasor from scratch | SGLang lpm, steady | "
           "Dynasor steady | p90 | over lpm, steady (paired) | of which reorder | Dynasor unchanged | "
           "full re-ranks in steady state |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data.get("ordering") or []:
        over = r.get("dynasor_over_lpm_steady_ms")
        out.append(f"| {r.get('waiting')} | {r.get('programs')} | {num(r.get('sglang_fcfs_ms'), '.3f')} | "
                   f"{num(r.get('sglang_lpm_ms'), '.3f')} | {num(r.get('dynasor_full_rerank_ms'), '.3f')} | "
                   f"{num(r.get('sglang_lpm_steady_ms'), '.3f')} | {num(r.get('dynasor_steady_ms'), '.3f')} | "
                   f"{num(r.get('dynasor_steady_p90_ms'), '.3f')} | {num(over, '+.3f')} | "
                   f"{num(r.get('dynasor_reorder_steady_ms'), '.3f')} | "
                   f"{num(r.get('dynasor_unchanged_ms'), '.3f')} | "
                   f"{r.get('full_reranks_in_steady_state', '?')} of {r.get('steady_steps', '?')} |")
    live = data.get("live")
    if isinstance(live, Mapping) and live.get("ratio") is not None:
        out += ["", f"Untagged throughput, Dynasor `gang-sjf` / stock SGLang `fcfs` in the same run: "
                f"{num(live.get('ratio'), '.3f')}x (median of rounds)."]
    return [*out, ""]
