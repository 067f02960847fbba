"""Systems compared round by round on one seeded trace: how ``bench_online`` compares systems.

On a 2-core machine an unchanged server's decode step drifts by tens of percent within minutes,
and near saturation a program's latency follows it (queueing multiplies it). A run per system one
after the other measures the machine as much as the system. Here every system's server stays up
(idle servers sleep: ``--sleep-on-idle``) and each round runs every system once on the same seeded
trace, in the given order in even rounds and reversed in odd ones. Before each system's turn its
radix cache is flushed and a *speed probe* runs: one fixed program alone, whose latency is the
machine's speed at that moment, recorded next to the round. During a turn the server's queue
length is sampled (``GET /v1/loads``). A ratio between two systems is the ratio of their mean
program latencies paired by round (and rate): 95% bootstrap over the pairs
(``dynasor.evaluation.paired_ratio``), so drift common to a round cancels.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx

from dynasor.evaluation.paired_ratio import paired_ratio_interval

T = TypeVar("T")
QUEUE_POLL_S = 1.0


def round_order(systems: Sequence[T], round_index: int) -> list[T]:
    """The given order in even rounds, reversed in odd ones (each system runs first as often)."""
    return list(systems) if round_index % 2 == 0 else list(systems)[::-1]


class QueueSampler:
    """Samples a server's waiting and running requests every ``interval`` seconds while it is open
    (``GET /v1/loads``, summed over data-parallel ranks): [seconds since open, waiting, running]."""

    def __init__(self, urls: Sequence[str], interval: float = QUEUE_POLL_S) -> None:
        self.urls, self.interval = list(urls), interval
        self.samples: list[list[float]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> QueueSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        start = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                waiting = running = 0
                for url in self.urls:
                    try:
                        for load in (await http.get(f"{url}/v1/loads", params={"include": "core"})).json()["loads"]:
                            core = load.get("core", load)
                            waiting += int(core.get("num_waiting_reqs", 0))
                            running += int(core.get("num_running_reqs", 0))
                    except (httpx.HTTPError, ValueError, KeyError, TypeError):
                        continue
                self.samples.append([round(time.monotonic() - start, 2), waiting, running])
                await asyncio.sleep(self.interval)


def queue_summary(samples: Sequence[Sequence[float]]) -> dict[str, Any]:
    waiting = [s[1] for s in samples]
    return {"samples": len(waiting), "mean_waiting": statistics.mean(waiting) if waiting else None,
            "max_waiting": max(waiting) if waiting else None,
            "share_with_waiting": sum(w > 0 for w in waiting) / len(waiting) if waiting else None}


def mean_latency(records: Sequence[Mapping[str, Any]]) -> float | None:
    """Mean latency of a window's finished programs (None if none finished)."""
    done = [r["latency"] for r in records if r.get("latency") is not None and r.get("error") is None]
    return statistics.mean(done) if done else None


def alternation_summary(rounds: Sequence[Mapping[str, Any]], systems: Sequence[str], baseline: str,
                        rates: Sequence[float]) -> dict[str, Any]:
    """Per system against ``baseline``: mean program latency ratio paired by round, per rate and over
    every (round, rate) pair; the speed probes' ratio, paired by round, beside it."""
    out: dict[str, Any] = {"baseline": baseline, "rounds": len(rounds), "interleaved": True, "systems": {}}
    for name in systems:
        if name == baseline:
            continue
        entry: dict[str, Any] = {"by_rate": {}}
        pairs: list[tuple[float, float]] = []
        for rate in rates:
            mine, base = [], []
            for r in rounds:
                a, b = r["systems"][name]["mean_latency_s"].get(f"{rate:g}"), \
                    r["systems"][baseline]["mean_latency_s"].get(f"{rate:g}")
                if a is not None and b is not None:
                    mine.append(a)
                    base.append(b)
            if mine:
                entry["by_rate"][f"{rate:g}"] = paired_ratio_interval(mine, base)
                pairs += zip(mine, base)
        if pairs:
            entry["mean_latency_ratio"] = paired_ratio_interval([p[0] for p in pairs], [p[1] for p in pairs])
        probes = [(r["systems"][name]["probe_s"], r["systems"][baseline]["probe_s"]) for r in rounds]
        entry["probe_ratio"] = paired_ratio_interval([p[0] for p in probes], [p[1] for p in probes])
        served = [(r["systems"][name].get("untagged_throughput"), r["systems"][baseline].get("untagged_throughput"))
                  for r in rounds]
        if served and all(a and b for a, b in served):
            entry["untagged_throughput_ratio"] = paired_ratio_interval(
                [a["output_throughput"] for a, _ in served], [b["output_throughput"] for _, b in served])
        out["systems"][name] = entry
    return out


def format_alternation(summary: Mapping[str, Any], rounds: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"alternating rounds: {summary['rounds']} (order swapped each round); ratios vs {summary['baseline']}, "
             "paired by round, 95% bootstrap"]
    lines.extend(f"  round {r['round']}: " + "; ".join(
        f"{name} probe {run['probe_s']:.2f}s, mean latency "
        + ", ".join(f"{k}/s {v:.2f}s" if v is not None else f"{k}/s -" for k, v in run["mean_latency_s"].items())
        for name, run in r["systems"].items()) for r in rounds)
    for name, entry in summary["systems"].items():
        for rate, ratio in entry["by_rate"].items():
            lines.append(f"  {name} @ {rate}/s: {ratio['ratio']:.3f}x [{ratio['low']:.3f}, {ratio['high']:.3f}]")
        if "mean_latency_ratio" in entry:
            m = entry["mean_latency_ratio"]
            lines.append(f"  {name} all rates: {m['ratio']:.3f}x [{m['low']:.3f}, {m['high']:.3f}] "
                         f"({m['pairs']} pairs); speed probe {entry['probe_ratio']['ratio']:.3f}x")
        if "untagged_throughput_ratio" in entry:
            u = entry["untagged_throughput_ratio"]
            lines.append(f"  {name} untagged decode throughput (bench_serving): {u['ratio']:.3f}x "
                         f"[{u['low']:.3f}, {u['high']:.3f}]")
    return "\n".join(lines)


def interval(ratio: Mapping[str, Any]) -> dict[str, Any]:
    """A paired ratio as ``value``, ``lo``, ``hi`` (and how many pairs)."""
    return {"value": ratio["ratio"], "lo": ratio["low"], "hi": ratio["high"], "pairs": ratio["pairs"],
            "excludes_1": ratio["excludes_1"]}


def parity_summary(report: Mapping[str, Any], system: str, source: str) -> dict[str, Any]:
    """What ``live_parity.json`` holds: ``system`` against stock SGLang fcfs from an alternating run,
    each round's speed probes beside it."""
    alternation = report["alternation"]
    if alternation["baseline"] != "sglang-fcfs":
        raise ValueError("the parity summary needs stock SGLang fcfs as the baseline")
    entry = alternation["systems"][system]
    out: dict[str, Any] = {
        "benchmark": "live_parity", "label": "LIVE (CPU), alternating rounds", "source": source,
        "title": report["title"], "machine": report["machine"], "system": system, "baseline": "sglang-fcfs",
        "rounds": alternation["rounds"], "interleaved": True, "rates": report["rates"],
        "mean_latency_ratio_vs_stock_fcfs": interval(entry["mean_latency_ratio"]),
        "by_rate": {rate: interval(r) for rate, r in entry["by_rate"].items()},
        "speed_probe_ratio": interval(entry["probe_ratio"]),
        "speed_probes": [{"round": r["round"], "order": r["order"],
                          "probe_s": {name: turn["probe_s"] for name, turn in r["systems"].items()},
                          "mean_latency_s": {name: turn["mean_latency_s"] for name, turn in r["systems"].items()}}
                         for r in report["rounds"]],
        "others": {name: {"mean_latency_ratio_vs_stock_fcfs": interval(e["mean_latency_ratio"])}
                   for name, e in alternation["systems"].items() if name != system and "mean_latency_ratio" in e},
    }
    if "untagged_throughput_ratio" in entry:
        out["untagged_throughput_ratio_vs_stock_fcfs"] = interval(entry["untagged_throughput_ratio"])
        out["untagged_throughput"] = [{name: (turn.get("untagged_throughput") or {}).get("output_throughput")
                                       for name, turn in r["systems"].items()} for r in report["rounds"]]
    return out
