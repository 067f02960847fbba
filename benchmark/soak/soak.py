"""Soak: a mixed load against one Dynasor server for a given duration, sampled as it runs.

    python -m benchmark.soak.soak --duration 1800                  # starts a server, 30 minutes
    python -m benchmark.soak.soak --url http://127.0.0.1:30000 --duration 120 --out /tmp/soak.json

The load (``load.py``): OpenAI ``sc`` and streamed ``cot`` requests, tagged programs, programs aborted
mid-way, clients that disconnect, malformed tags and untagged requests, from ``--workers`` concurrent
clients. Every ``--sample-every`` seconds: the server's RSS (its whole process group), the program
table's size (``/dynasor/programs``), running and waiting requests and KV tokens in use
(``/dynasor/load``), and p50/p99 latency per request kind over the interval. After the load the
server is given ``--drain`` seconds to become idle, then sampled once more.

Memory: the KV pool is allocated at start but paged in as its slots are first written, so the
server's RSS grows until the radix cache has once filled the pool (``cached_tokens`` reaching
``capacity_tokens``), then stays flat. A started server therefore gets ``--kv-tokens`` of KV (8,192:
the load fills it within the warm-up; the CPU default of 32,768 takes about 18 minutes).

Figures (top-level keys of the JSON): ``server_errors`` (5xx answers), ``stuck_requests`` (running +
waiting at the end), ``kv_idle_at_end`` (KV in use back to its value before the load),
``max_programs`` (largest program table; it must stay bounded by the TTL), ``rss_slope_mb_per_min``
(least-squares slope of the RSS samples after ``--warmup`` seconds). Writes the JSON and a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from benchmark.common import RESULTS, add_server_flags, display_path, dynasor_server, machine_info
from benchmark.soak.load import KINDS, Outcome, worker
from dynasor.core.stats import quantile


def group_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of every process in ``pid``'s process group (the server and its children),
    per process name (``sglang::scheduler``, ...; the launcher is ``main``) and in ``total``."""
    import os

    import psutil

    pgid = os.getpgid(pid)
    out: dict[str, float] = {}
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if os.getpgid(proc.pid) != pgid:
                continue
            name = "main" if proc.pid == pid else str(proc.info["name"])
            out[name] = out.get(name, 0.0) + proc.memory_info().rss / 2**20
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    out["total"] = sum(out.values())
    return out


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def latency_summary(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        done = [o for o in outcomes if o.kind == kind]
        ok = [o.latency for o in done if o.status in ("ok", "client_error")]
        out[kind] = {"n": len(done), "p50": quantile(ok, 0.5) if ok else None,
                     "p99": quantile(ok, 0.99) if ok else None,
                     "server_errors": sum(o.status == "server_error" for o in done),
                     "failed": sum(o.status == "failed" for o in done)}
    return out


async def sample(http: httpx.AsyncClient, pid: int, began: float, outcomes: list[Outcome],
                 since: int) -> dict[str, Any]:
    load = (await http.get("/dynasor/load")).json()
    programs = (await http.get("/dynasor/programs")).json()
    live = sum(p["state"] != "done" for p in programs["programs"])
    rss = group_rss_mb(pid)
    return {"t": time.monotonic() - began, "rss_mb": rss.pop("total"), "rss_mb_by_process": rss,
            "programs": programs["count"],
            "live_programs": live, "running": load["running"], "waiting": load["waiting"],
            "used_tokens": load["used_tokens"], "cached_tokens": load.get("cached_tokens"),
            "capacity_tokens": load.get("capacity_tokens"), "requests": len(outcomes) - since,
            "latency": latency_summary(outcomes[since:])}


async def soak(url: str, duration: float, sample_every: float, workers: int, seed: int,
               drain: float) -> dict[str, Any]:
    from tqdm import tqdm

    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120, connect=10), limits=limits) as http:
        instance = (await http.get("/dynasor/instance")).json()
        pid = int(instance["pid"])
        idle_tokens = (await http.get("/dynasor/load")).json()["used_tokens"]
        outcomes: list[Outcome] = []
        began = time.monotonic()
        until = began + duration
        samples = [await sample(http, pid, began, outcomes, 0)]
        tasks = [asyncio.create_task(worker(http, random.Random(seed * 1000 + i), began, until, outcomes))
                 for i in range(workers)]
        with tqdm(total=int(duration), desc="soak", unit="s") as bar:
            while time.monotonic() < until:
                await asyncio.sleep(min(sample_every, max(until - time.monotonic(), 0.0)))
                since = sum(s["requests"] for s in samples[1:])
                samples.append(await sample(http, pid, began, outcomes, since))
                last = samples[-1]
                bar.n = min(int(last["t"]), int(duration))
                bar.set_postfix(rss=f"{last['rss_mb']:.0f}MB", programs=last["programs"], running=last["running"])
        await asyncio.gather(*tasks)
        drained_at = time.monotonic()
        while time.monotonic() - drained_at < drain:
            load = (await http.get("/dynasor/load")).json()
            if load["running"] == 0 and load["waiting"] == 0 and load["used_tokens"] == idle_tokens:
                break
            await asyncio.sleep(0.5)
        since = sum(s["requests"] for s in samples[1:])
        final = await sample(http, pid, began, outcomes, since)
        final["drain_seconds"] = time.monotonic() - drained_at
    return {"pid": pid, "idle_tokens": idle_tokens, "samples": samples, "final": final,
            "outcomes": [asdict(o) for o in outcomes]}


def summarize(run: dict[str, Any], warmup: float) -> dict[str, Any]:
    samples, final = run["samples"], run["final"]
    outcomes = [Outcome(**o) for o in run["outcomes"]]
    after = [(s["t"], s["rss_mb"]) for s in samples if s["t"] >= warmup]
    return {
        "server_errors": sum(o.status == "server_error" for o in outcomes),
        "failed_requests": sum(o.status == "failed" for o in outcomes),
        "stuck_requests": final["running"] + final["waiting"],
        "kv_idle_at_end": final["used_tokens"] == run["idle_tokens"],
        "max_programs": max(s["programs"] for s in [*samples, final]),
        "rss_slope_mb_per_min": slope_per_minute(after),
        "rss_slope_mb_per_min_by_process": {
            name: slope_per_minute([(s["t"], s["rss_mb_by_process"][name]) for s in samples
                                    if s["t"] >= warmup and name in s.get("rss_mb_by_process", {})])
            for name in samples[-1].get("rss_mb_by_process", {})},
        "rss_mb": {"first": samples[0]["rss_mb"], "after_warmup": after[0][1] if after else None,
                   "last": final["rss_mb"]},
        "requests": len(outcomes),
        "latency": latency_summary(outcomes),
        "errors": sorted({o.detail for o in outcomes if o.status in ("server_error", "failed")})[:20],
    }


def samples_capacity(run: dict[str, Any]) -> int | None:
    return run["final"].get("capacity_tokens")


def plot(run: dict[str, Any], summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [*run["samples"], run["final"]]
    minutes = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(minutes, [s["rss_mb"] for s in samples], marker=".", label="RSS")
    axes[0].set(title=f"server RSS (slope {summary['rss_slope_mb_per_min'] or 0:+.2f} MB/min after warm-up)",
                xlabel="minutes", ylabel="MB")
    cache = axes[0].twinx()
    cache.plot(minutes, [(s.get("cached_tokens") or 0) / max(s.get("capacity_tokens") or 1, 1) for s in samples],
               color="tab:gray", linestyle="--", label="radix cache / KV capacity")
    cache.set(ylabel="cached tokens / KV capacity", ylim=(0, 1.05))
    cache.legend(loc="lower right", fontsize=7)
    axes[1].plot(minutes, [s["programs"] for s in samples], label="programs in table", marker=".")
    axes[1].plot(minutes, [s["running"] + s["waiting"] for s in samples], label="running + waiting", marker=".")
    axes[1].set(title="program table and engine queue", xlabel="minutes")
    axes[1].legend()
    for kind in KINDS:
        p99 = [s["latency"][kind]["p99"] for s in samples[1:]]
        axes[2].plot(minutes[1:], [v if v is not None else float("nan") for v in p99], label=kind, marker=".")
    axes[2].set(title="p99 latency per kind and interval", xlabel="minutes", ylabel="s", yscale="log")
    axes[2].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_flags(ap)
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds of load")
    ap.add_argument("--sample-every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=300.0, help="seconds before the RSS slope is fitted")
    ap.add_argument("--workers", type=int, default=3, help="concurrent clients")
    ap.add_argument("--drain", type=float, default=60.0, help="seconds the server has to become idle after the load")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--program-ttl", type=float, default=60.0, help="--dynasor-program-ttl of a started server")
    ap.add_argument("--kv-tokens", type=int, default=8192, help="--max-total-tokens of a started server")
    ap.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = ap.parse_args(argv)
    extra = ["--dynasor-program-ttl", str(args.program_ttl), "--max-total-tokens", str(args.kv_tokens)]
    with dynasor_server(args, "soak_server", extra) as served:
        run = asyncio.run(soak(served.url, args.duration, args.sample_every, args.workers, args.seed, args.drain))
    summary = summarize(run, args.warmup)
    report = {**summary, "benchmark": "soak", "machine": machine_info(), "server": served.info,
              "duration_s": args.duration, "sample_every_s": args.sample_every, "warmup_s": args.warmup,
              "workers": args.workers, "seed": args.seed, "program_ttl_s": args.program_ttl if not args.url else None,
              "kv_tokens": args.kv_tokens if not args.url else samples_capacity(run),
              "samples": [*run["samples"], run["final"]], "outcomes": run["outcomes"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    title = f"soak: {args.duration / 60:g} min, {args.workers} clients, {summary['requests']} requests"
    plot(run, summary, png, title)
    report["png"] = display_path(png)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\n{title}")
    for key in ("server_errors", "failed_requests", "stuck_requests", "kv_idle_at_end", "max_programs",
                "rss_slope_mb_per_min", "rss_slope_mb_per_min_by_process", "rss_mb"):
        print(f"  {key}: {summary[key]}")
    for kind, row in summary["latency"].items():
        p50 = f"{row['p50']:.2f}s" if row["p50"] is not None else "-"
        p99 = f"{row['p99']:.2f}s" if row["p99"] is not None else "-"
        print(f"  {kind:<14} n {row['n']:>5}  p50 {p50:>7}  p99 {p99:>7}  5xx {row['server_errors']}")
    if summary["errors"]:
        print("  errors:", *summary["errors"], sep="\n    ")
    print(f"wrote {display_path(args.out)} and {display_path(png)}")
    return report


if __name__ == "__main__":
    main()
