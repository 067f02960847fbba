"""README rendering of two engine-level CPU measurements: decode throughput with the token-stats hook
and the confidence stop (``bench_entropy.py``'s live part), and chunked against one-shot greedy
decoding (``bench_chunked.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, num


def _ratio(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "–"
    verdict = "excludes 1.0" if entry.get("excludes_1") else "includes 1.0"
    return (f"{num(entry.get('ratio'), '.3f')}x [{num(entry.get('low'), '.3f')}, {num(entry.get('high'), '.3f')}] "
            f"({verdict}; {entry.get('pairs')} paired rounds)")


def render_entropy_live(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    live = data["live"]
    means = {mode: sum(live[f"tok_per_s_{mode}"]) / len(live[f"tok_per_s_{mode}"]) for mode in ("off", "on", "stop")}
    ratios = live["paired_ratios"]
    return [f"#### Decode throughput with token stats and the confidence stop (CPU) — `{link(path, readme)}`", "",
            f"- {live['concurrency']} concurrent tagged requests × {live['max_new_tokens']} tokens, temperature "
            f"{live.get('temperature', 0.8)}, "
            f"rounds rotating the three settings on one server, {data.get('threads')} thread(s)", "",
            "| setting | mean tok/s |", "|---|---|",
            f"| `return_entropy` false (hook idle) | {num(means['off'])} |",
            f"| `return_entropy` true | {num(means['on'])} |",
            f"| true + `stop_below_confidence` (checked every token, never fires) | {num(means['stop'])} |", "",
            f"- entropy on / off: {_ratio(ratios.get('on_over_off'))}",
            f"- confidence stop / entropy on: {_ratio(ratios.get('stop_over_on'))}", ""]


def render_chunked(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    settings, summary = data["settings"], data["summary"]
    out = [f"#### Chunked vs one-shot greedy decoding (CPU) — `{link(path, readme)}`", "",
           f"- {settings['n']} GSM8K problems, {settings['tokens']} greedy tokens each, chunks of "
           f"{settings['chunk']}, one request at a time (fixed batch composition)", "",
           "| chunks continue from | identical to one shot | median first divergence (token) | "
           "diverged at the first chunk boundary |", "|---|---|---|---|"]
    for mode, label in (("ids", "token ids (Dynasor-CoT)"), ("text", "re-tokenized text (before)")):
        row = summary[mode]
        out.append(f"| {label} | {row['identical']}/{row['problems']} | {num(row['median_first_divergence'], '.0f')} "
                   f"| {row['diverged_at_first_chunk_boundary']} |")
    return [*out, ""]
