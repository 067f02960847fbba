"""README rendering of the simulator's CPU profile fit and its validation against the live engine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num, pct


def _error(fit: Mapping[str, Any], kind: str) -> str:
    part = fit.get(kind, {})
    return f"error median {pct(part.get('median_error'))}, P90 {pct(part.get('p90_error'))} ({part.get('n')} steps)"


def render_sim_profile(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    p, fit = data.get("profile", {}), data.get("fit", {})
    sweep, transport = data.get("sweep", {}), data.get("transport") or {}
    prefill = (f"{num(p.get('prefill_fixed_s'), '.4f')} s + {num(p.get('prefill_per_token_s'), '.6f')} s/token + "
               f"{num(p.get('prefill_per_token_context_s'), '.6f')} s per token x 1000 context tokens")
    decode = (f"{num(p.get('decode_fixed_s'), '.4f')} s + {num(p.get('decode_per_request_s'), '.5f')} s/request + "
              f"{num(p.get('decode_per_kv_token_s'), '.7f')} s/context token")
    outside = transport.get("round_trip_outside_loop_s")
    return [f"#### Simulator CPU profile (`cpu-smollm2`) — `{link(path, readme)}`", "",
            f"- {machine_line(data.get('machine'))}; {p.get('source', '')}",
            f"- sweep: batches {sweep.get('batches')} x prompts {sweep.get('prompts')} tokens, "
            f"{sweep.get('output_tokens')} output tokens each",
            f"- prefill = {prefill}; {_error(fit, 'prefill')}",
            f"- decode = {decode}; {_error(fit, 'decode')}",
            f"- outside the engine loop (HTTP, tokenizer) per request: {num(outside, '.4f')} s "
            f"(median of {len(transport.get('samples', []))} round trips)", ""]


def _noise_floor(data: Mapping[str, Any]) -> list[str]:
    repeat = data.get("repeat") or {}
    floor, again = repeat.get("live_vs_live") or {}, repeat.get("sim_vs_repeat") or {}
    if not floor.get("programs_compared"):
        return []
    solo = {run: ", ".join(f"level {k}: {num(v, '.2f')} s" for k, v in (levels or {}).items())
            for run, levels in (floor.get("solo_latency") or {}).items()}
    return [f"Noise floor: the same live configuration ({', '.join(floor.get('systems', []))}) run a second time "
            f"(`{repeat.get('live')}`) lands from the first by a per-program median "
            f"**{pct(floor.get('median_latency_error'))}** (P90 {pct(floor.get('p90_latency_error'))}, "
            f"{floor.get('programs_compared')} programs; largest attainment gap "
            f"{num(floor.get('max_attainment_gap'), '.2f')}; solo latency {solo.get('run')} in the first run, "
            f"{solo.get('repeat')} in the second). Against that second run the simulator's median error is "
            f"**{pct(again.get('median_latency_error'))}** (P90 {pct(again.get('p90_latency_error'))}, "
            f"{again.get('programs_compared')} programs).", ""]


def _layers(data: Mapping[str, Any]) -> list[str]:
    agreement = data.get("decision_agreement")
    if not agreement:
        return []
    cost, repeats = data.get("step_cost_median_error") or {}, data.get("median_latency_error_vs_live_median") or {}
    rows = [f"| decision agreement on the live clock, {name} ({e.get('policy')}) | {num(e.get('agreement'), '.3f')} "
            f"over {e.get('steps')} steps | >= {agreement.get('target')} |"
            for name, e in (agreement.get("by_system") or {}).items()]
    rows.append(f"| step-cost model vs live steps (median error) | {pct(cost.get('median_error'))} (prefill "
                f"{pct((cost.get('prefill') or {}).get('median_error'))}, decode "
                f"{pct((cost.get('decode') or {}).get('median_error'))}) | <= 10% |")
    spread = repeats.get("live_repeat_spread")
    rows.append(f"| latency vs the median of the live rounds (median error) | {pct(repeats.get('median'))} | "
                f"<= max(10%, live repeat spread {pct(spread)}) |")
    return ["Layered validation (`benchmark.sim.layers`): what the simulator decides, what a step costs, what "
            "a program's latency is against the median of alternating live rounds.", "",
            "| layer | SIMULATED vs live | target |", "|---|---|---|", *rows, ""]


def render_sim_validation(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    engines = int(data.get("engines") or 1)
    where = f"{engines} live data-parallel ranks vs {engines} SIMULATED engines" if engines > 1 else (
        "SIMULATED vs live CPU engine")
    out = [f"#### Simulator validation: {where} — `{link(path, readme)}`", "",
           f"Replays `{data.get('live')}` (every request recorded) in the simulator on the CPU profile "
           f"`{data.get('profile_json') or (data.get('profile') or {}).get('name')}`. "
           f"Per-program latency error |sim − live| / live: **median {pct(data.get('median_latency_error'))}, "
           f"P90 {pct(data.get('p90_latency_error'))}** over {data.get('programs_compared')} programs "
           f"(target: median <= 10%); largest attainment gap **{num(data.get('max_attainment_gap'), '.2f')}** "
           f"(target <= 0.1) at SLO scale {data.get('slo_scale')}. Shared few-shot header: "
           f"{data.get('shared_header_tokens')} tokens per level.", "",
           *_layers(data),
           *_noise_floor(data),
           "| system | launch | rate | attainment live | attainment SIMULATED | median latency error |",
           "|---|---|---|---|---|---|"]
    out += [f"| {name} | {entry.get('launch')} | {row.get('rate')} | {num(row.get('attainment_live'), '.2f')} | "
            f"{num(row.get('attainment_sim'), '.2f')} | {pct(row.get('median_error'))} |"
            for name, entry in (data.get("systems") or {}).items() for row in entry.get("rates", [])]
    out.append("")
    ratios = data.get("latency_ratios") or {}
    if engines > 1 and ratios:
        out += ["Mean program latency of one system over another, live and SIMULATED (the comparison the live "
                "run makes, predicted):", "", "| systems | rate | live | SIMULATED |", "|---|---|---|---|"]
        out += [f"| {pair} | {row['rate']} | {num(row['live'], '.3f')}x | {num(row['sim'], '.3f')}x |"
                for pair, rows in ratios.items() for row in rows]
        out.append("")
    return out
