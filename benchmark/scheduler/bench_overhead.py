"""Scheduler overhead: waiting-queue ordering time per step, and untagged throughput vs stock SGLang.

    python -m benchmark.scheduler.bench_overhead # both parts
    python -m benchmark.scheduler.bench_overhead --skip-live # ordering table only

Part 1 (``ordering_cost.py``, which says what each column is) times one scheduling step's ordering
with SGLang's own ``fcfs`` and ``lpm`` and with Dynasor's hook, in one process: a rank from
scratch, the steady state (arrivals, admissions, progress and finishes every step) and a step in
which nothing changed, from 100 to 10,000 waiting requests.

Part 2 sends the same untagged load to a stock SGLang server (``fcfs``) and to a Dynasor server
(``gang-sjf``), one after the other in this run, and prints tokens/s and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, machine_info


def ordering_table(sizes: list[tuple[int, int]], args: argparse.Namespace) -> list[dict]:
    from sglang.srt.runtime_context import publish
    from sglang.srt.server_args import ServerArgs

    from benchmark.scheduler.ordering_cost import HEADER, format_row, measure
    from dynasor.model import default_model_path

    # SGLang's policies read the process-wide server arguments, as inside a scheduler process.
    publish(ServerArgs(model_path=str(default_model_path()), device="cpu"), role="scheduler")
    print(HEADER)
    print("-" * len(HEADER))
    rows = []
    for n, n_programs in sizes:
        rows.append(measure(n, n_programs, args.repeats, args.steps, args.admit, args.in_service))
        print(format_row(rows[-1]), flush=True)
    return rows


async def untagged_load(url: str, concurrency: int, max_new_tokens: int, rounds: int) -> list[float]:
    from dynasor.client import AsyncDynasorClient

    async with AsyncDynasorClient(url) as client:
        await client.generate("warm up", {"max_new_tokens": 8})
        rates = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            outs = await asyncio.gather(*[
                client.generate(f"Story {i}: once upon a time", {"max_new_tokens": max_new_tokens,
                                                                 "temperature": 0.8, "ignore_eos": True})
                for i in range(concurrency)])
            rates.append(sum(o["meta_info"]["completion_tokens"] for o in outs) / (time.perf_counter() - t0))
        return rates


def live_table(concurrency: int, max_new_tokens: int, rounds: int) -> dict:
    from dynasor.evaluation.ports import free_port
    from dynasor.evaluation.server_process import ServerProcess
    from dynasor.model import default_model_path

    logs = RESULTS / "tmp"
    results = {}
    for name in ("stock-sglang-fcfs", "dynasor-gang-sjf"):
        server = (ServerProcess.stock_sglang(str(default_model_path()), free_port(), logs / f"{name}.log")
                  if name.startswith("stock") else ServerProcess.dynasor(free_port(), logs / f"{name}.log"))
        with server:
            results[name] = asyncio.run(untagged_load(server.url, concurrency, max_new_tokens, rounds))
    stock, ours = (statistics.median(results[k]) for k in ("stock-sglang-fcfs", "dynasor-gang-sjf"))
    print(f"\nuntagged throughput, {concurrency} concurrent x {max_new_tokens} tokens, {rounds} rounds:")
    for name, rates in results.items():
        print(f"  {name:<20} {statistics.median(rates):7.1f} tok/s  rounds {[round(r, 1) for r in rates]}")
    print(f"  ratio dynasor/stock: {ours / stock:.3f}x")
    return {"rounds": results, "ratio": ours / stock}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15, help="full re-ranks timed per size")
    ap.add_argument("--steps", type=int, default=200, help="steady-state steps timed per size")
    ap.add_argument("--admit", type=int, default=8, help="requests admitted (and arriving) per steady step")
    ap.add_argument("--in-service", type=int, default=64, help="requests running in the steady state")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_overhead.json")
    args = ap.parse_args()
    sizes = [(100, 10), (100, 100), (1000, 10), (1000, 100), (1000, 1000), (10000, 100), (10000, 1000)]
    report: dict[str, Any] = {"benchmark": "overhead", "machine_info": machine_info(), "admit": args.admit,
                              "in_service": args.in_service, "ordering": ordering_table(sizes, args)}
    if not args.skip_live:
        report["live"] = live_table(args.concurrency, args.max_new_tokens, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
