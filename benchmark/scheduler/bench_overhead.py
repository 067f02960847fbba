"""Scheduler overhead: waiting-queue ordering time per step, and untagged throughput vs stock SGLang.

    python -m benchmark.scheduler.bench_overhead # both parts
    python -m benchmark.scheduler.bench_overhead --skip-live # ordering table only

Part 1 orders a waiting queue of real SGLang ``Req`` objects (programs share a 64-token prompt,
each request adds 8 tokens of its own) with SGLang's own ``SchedulePolicy`` (``fcfs``, ``lpm``
over a radix cache holding half the program prompts) and with Dynasor's hook (SGLang's ``lpm``
pass followed by the program ordering), in one process. It prints milliseconds per scheduling step
(median over repeats, each on a freshly shuffled queue: a full re-rank). The last column is a step
in which nothing the order depends on changed since the previous step (same queue, same table
epoch, no starvation bound due): Dynasor then keeps the queue as it is. Note that SGLang's ``lpm``
itself switches to fcfs beyond 128 waiting requests (``WAITING_QUEUE_PREFIX_MATCH_MAX``), and
below that its own sort reorders the queue, so every step there is a full re-rank.

Part 2 sends the same untagged load to a stock SGLang server (``fcfs``) and to a Dynasor server
(``gang-sjf``), one after the other in this run, and prints tokens/s and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS


def build_queue(n: int, n_programs: int, seed: int) -> tuple[list[Any], Any, list[array]]:
    from sglang.srt.managers.schedule_batch import Req
    from sglang.srt.sampling.sampling_params import SamplingParams

    from dynasor.core.tag import new_program_id
    from dynasor.scheduler.program_table import ProgramTable

    rng = random.Random(seed)
    table = ProgramTable()
    pids = [new_program_id() for _ in range(n_programs)]
    prompts = [array("q", (rng.randrange(1, 49000) for _ in range(64))) for _ in range(n_programs)]
    queue = []
    for i in range(n):
        p = i % n_programs
        ids = prompts[p] + array("q", (rng.randrange(1, 49000) for _ in range(8)))
        req = Req(f"r{i}", "", ids, SamplingParams(max_new_tokens=rng.choice([64, 256, 1024])))
        table.on_arrival(req.rid, pids[p], len(ids), now=time.time() - rng.random() * 10,
                         max_new_tokens=req.sampling_params.max_new_tokens)
        queue.append(req)
    for i in rng.sample(range(n), k=min(n // 10, 64)):  # some programs in service
        table.on_admitted(queue[i].rid, now=time.time())
    return queue, table, prompts


def ordering_table(sizes: list[tuple[int, int]], repeats: int) -> list[dict]:
    import torch
    from sglang.srt.managers.schedule_policy import SchedulePolicy
    from sglang.srt.mem_cache.base_prefix_cache import InsertParams
    from sglang.srt.mem_cache.radix_cache import RadixCache, RadixKey
    from sglang.srt.runtime_context import publish
    from sglang.srt.server_args import ServerArgs

    # SGLang's policies read the process-wide server arguments, as inside a scheduler process.
    from dynasor.model import default_model_path
    from dynasor.srt.config import DynasorServerConfig
    from dynasor.srt.context import SchedulerContext, activate_context
    from dynasor.srt.queue_order_hooks import keep_deprioritized, order_with_programs, skip_lpm_sort

    publish(ServerArgs(model_path=str(default_model_path()), device="cpu"), role="scheduler")
    rows = []
    print(f"{'waiting':>8} {'programs':>8} | {'sglang fcfs':>11} {'sglang lpm':>10} | "
          f"{'gang-sjf (lpm+order)':>20} {'order only':>10} {'unchanged step':>14}")
    print("-" * 95)
    for n, n_programs in sizes:
        queue, table, prompts = build_queue(n, n_programs, seed=n + n_programs)
        cache = RadixCache.create_simulated()
        for prompt in prompts[: n_programs // 2]:
            value = torch.zeros(len(prompt), dtype=torch.int64)
            cache.insert(InsertParams(key=RadixKey(token_ids=prompt), value=value))
        fcfs = SchedulePolicy("fcfs", cache, False, False, False)
        lpm = SchedulePolicy("lpm", cache, False, False, False)
        context = SchedulerContext(DynasorServerConfig(schedule_policy="gang-sjf"), table)
        activate_context(context)

        lpm_calc = getattr(SchedulePolicy.calc_priority, "__wrapped__", SchedulePolicy.calc_priority)
        original_matches = SchedulePolicy._compute_prefix_matches
        original_sort = SchedulePolicy._sort_by_longest_prefix

        def dynasor_step(q: list[Any]) -> None:  # the plugin's three scheduling hooks around SGLang's lpm pass
            def matches(self: Any, *a: Any, **k: Any) -> Any:
                result = original_matches(self, *a, **k)
                keep_deprioritized(result, self)
                return result
            SchedulePolicy._compute_prefix_matches = matches
            SchedulePolicy._sort_by_longest_prefix = staticmethod(
                lambda *a: skip_lpm_sort(original_sort, *a))
            try:
                order_with_programs(lpm_calc, lpm, q)
            finally:
                SchedulePolicy._compute_prefix_matches = original_matches
                SchedulePolicy._sort_by_longest_prefix = staticmethod(original_sort)

        def order_only(q: list[Any]) -> None:
            ordering = context.queue.order(q, set())
            q[:] = [q[i] for i in ordering.order]

        def timed(step: Callable[[list[Any]], Any], warm: bool = False) -> float:
            times = []
            rng = random.Random(0)
            for _ in range(repeats):
                q = queue[:]
                rng.shuffle(q)
                if warm:  # the previous step ordered this very queue
                    step(q)
                t0 = time.perf_counter()
                step(q)
                times.append(time.perf_counter() - t0)
            return statistics.median(times) * 1e3

        rec = {"waiting": n, "programs": n_programs,
               "sglang_fcfs_ms": timed(lambda q: fcfs.calc_priority(q)),
               "sglang_lpm_ms": timed(lambda q: lpm_calc(lpm, q)),
               "dynasor_gang_sjf_ms": timed(dynasor_step),
               "dynasor_order_only_ms": timed(order_only),
               "dynasor_unchanged_step_ms": timed(dynasor_step, warm=True)}
        rows.append(rec)
        print(f"{n:>8} {n_programs:>8} | {rec['sglang_fcfs_ms']:>11.3f} {rec['sglang_lpm_ms']:>10.3f} | "
              f"{rec['dynasor_gang_sjf_ms']:>20.3f} {rec['dynasor_order_only_ms']:>10.3f} "
              f"{rec['dynasor_unchanged_step_ms']:>14.3f}", flush=True)
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
    from dynasor.model import default_model_path
    from dynasor.server_process import ServerProcess, free_port

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
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_overhead.json")
    args = ap.parse_args()
    sizes = [(100, 10), (100, 100), (1000, 10), (1000, 100), (1000, 1000), (10000, 100), (10000, 1000)]
    report: dict[str, Any] = {"machine": platform.platform(), "ordering": ordering_table(sizes, args.repeats)}
    if not args.skip_live:
        report["live"] = live_table(args.concurrency, args.max_new_tokens, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
