"""Decode throughput of untagged traffic: stock SGLang against a Dynasor server, alternated.

    python -m benchmark.online.bench_untagged                       # sglang-fcfs vs gang-sjf, 8 pairs
    python -m benchmark.online.bench_untagged --pairs 4 --prompts 32
    python -m benchmark.online.bench_untagged --pairs 8 --extend     # 8 more pairs onto the saved file
    python -m benchmark.online.bench_untagged --simultaneous --pairs 8 --prompts 48
    python -m benchmark.online.bench_untagged --systems sglang-fcfs,sglang-lpm   # stock against stock

A user who never tags a request must not pay for Dynasor. Both servers stay up at once (idle
servers sleep), with the same engine flags; each pair runs SGLang's ``bench_serving`` once on each
(random token ids, fixed lengths, ``untagged.py``), the stock server first in even pairs and second
in odd ones, after a cache flush and a warm-up. The ratio Dynasor / stock of output tokens per
second is paired by pair (95% bootstrap over the pairs), so drift common to a pair cancels.
Writes ``benchmark/results/untagged_parity.json``.

``--simultaneous`` is the other design: in each round both servers get the same load at the same
time, each scheduler pinned to a core of its own, the cores swapped every round. Drift then hits
both systems at once, and a core that is busier with other work (the clients, the HTTP processes)
favours each system in half the rounds. Writes ``untagged_parity_simultaneous.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, display_path, machine_info
from benchmark.online.alternation import interval, round_order
from benchmark.online.bench_online import flush_cache, portable
from benchmark.online.systems import SYSTEMS, System, make_server
from benchmark.online.untagged import untagged_throughput
from dynasor.evaluation.paired_ratio import paired_ratio_interval

DEFAULT_SYSTEMS = ("sglang-fcfs", "gang-sjf")
MAX_RUNNING = 16  # the parity preset's cap
LABELS = {"alternating": "LIVE (CPU), alternating pairs",
          "simultaneous": "LIVE (CPU), simultaneous rounds, schedulers pinned, cores swapped"}


def summarize(pairs: list[dict[str, Any]], baseline: str, system: str) -> dict[str, Any]:
    """The ratio ``system`` / ``baseline`` of output throughput over the pairs, with its interval."""
    stock = [p["systems"][baseline]["output_throughput"] for p in pairs]
    dynasor = [p["systems"][system]["output_throughput"] for p in pairs]
    return {**interval(paired_ratio_interval(dynasor, stock)), "per_pair": [d / s for d, s in zip(dynasor, stock)]}


def warm(url: str) -> None:
    """A flushed cache and one short generation, so neither system's turn pays a cold start."""
    from benchmark.online.loadgen import warmup

    flush_cache(url)
    asyncio.run(warmup(url, ["Warm up: say one word."]))


def pin_scheduler(server: Any, core: int) -> None:
    """Every thread of the server's scheduler process (SGLang titles it ``sglang::scheduler``) onto
    ``core``; threads it starts later inherit that."""
    import psutil

    for process in psutil.Process(server.pid).children(recursive=True):
        if "scheduler" in process.name():
            for thread in process.threads():
                with contextlib.suppress(OSError):  # a thread that has just ended
                    os.sched_setaffinity(thread.id, {core})


def swapped_cores(names: list[str], k: int) -> dict[str, int]:
    """The two systems' cores in round ``k``: swapped every round."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--simultaneous needs two cores")
    first, second = (cores[0], cores[1]) if k % 2 == 0 else (cores[1], cores[0])
    return {names[0]: first, names[1]: second}


def alternating_pair(servers: dict[str, Any], k: int, args: argparse.Namespace) -> dict[str, Any]:
    """Each system in turn on the idle machine, the order swapped every pair."""
    pair: dict[str, Any] = {"pair": k, "order": [], "systems": {}}
    for name in round_order(list(servers), k):
        warm(servers[name].url)
        result = untagged_throughput(servers[name].url, args)
        pair["order"].append(name)
        pair["systems"][name] = {**result, "at": time.time()}
    return pair


def simultaneous_round(servers: dict[str, Any], k: int, args: argparse.Namespace) -> dict[str, Any]:
    """Both systems under the same load at once, each scheduler on its own core."""
    names = list(servers)
    cores = swapped_cores(names, k)
    for name in names:
        pin_scheduler(servers[name], cores[name])
        warm(servers[name].url)
    results: dict[str, dict[str, Any]] = {}

    def measure(name: str) -> None:
        results[name] = untagged_throughput(servers[name].url, args)

    threads = [threading.Thread(target=measure, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = [name for name in names if name not in results]
    if missing:
        raise RuntimeError(f"bench_serving failed for {missing} in round {k}")
    return {"pair": k, "order": names, "cores": cores,
            "systems": {name: {**results[name], "at": time.time()} for name in names}}


def run(args: argparse.Namespace, saved: dict[str, Any] | None) -> dict[str, Any]:
    from tqdm import tqdm

    from dynasor.evaluation.ports import free_port

    systems: list[System] = [SYSTEMS[name] for name in args.systems.split(",")]
    if len(systems) != 2 or not systems[0].stock or systems[0] == systems[1]:
        raise SystemExit("--systems: a stock baseline, then the system compared with it: a Dynasor one "
                         "(sglang-fcfs,gang-sjf) or another stock one (sglang-fcfs,sglang-lpm)")
    design = "simultaneous" if args.simultaneous else "alternating"
    report: dict[str, Any] = saved or {"benchmark": "untagged_parity", "design": design, "label": LABELS[design],
                                       "machine": machine_info(), "systems": [s.name for s in systems],
                                       "prompts": args.prompts, "max_running_requests": MAX_RUNNING, "pairs": [],
                                       "servers": {}}
    if report["systems"] != [s.name for s in systems] or report["prompts"] != args.prompts:
        raise SystemExit(f"--extend: the saved run compared {report['systems']} with {report['prompts']} prompts")
    report.setdefault("sessions", []).append({"machine": machine_info(), "first_pair": len(report["pairs"])})
    extra = ["--max-running-requests", str(MAX_RUNNING)]
    with ExitStack() as stack:
        servers = {}
        for system in systems:
            log = args.out_dir / "tmp" / f"untagged_{system.name}.log"
            started = time.monotonic()
            server = make_server(system, free_port(), log, args.model_path, extra)
            stack.enter_context(server)
            servers[system.name] = server
            report["servers"][system.name] = {"argv": [portable(a) for a in server.argv[1:]],
                                              "log": display_path(log), "start_seconds": time.monotonic() - started}
        first = len(report["pairs"])  # pair numbers (and so the order) continue an extended run
        for k in tqdm(range(first, first + args.pairs), desc="pairs"):
            pair = simultaneous_round(servers, k, args) if args.simultaneous else alternating_pair(servers, k, args)
            tqdm.write(f"[{k}] " + ", ".join(f"{name}: {r['output_throughput']:.1f} tok/s"
                                             for name, r in pair["systems"].items()))
            report["pairs"].append(pair)
    report["untagged_throughput_ratio_vs_stock"] = summarize(report["pairs"], systems[0].name, systems[1].name)
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS), help="stock baseline, system compared with it")
    ap.add_argument("--pairs", type=int, default=8, help="alternating pairs (each system once per pair)")
    ap.add_argument("--prompts", type=int, default=64, help="bench_serving prompts per turn")
    ap.add_argument("--model-path", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extend", action="store_true", help="add the pairs to the saved result file")
    ap.add_argument("--simultaneous", action="store_true",
                    help="both systems at once, schedulers pinned to a core each, swapped every round")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.bench_serving = args.prompts  # what untagged_throughput reads
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = args.out_dir / ("untagged_parity_simultaneous.json" if args.simultaneous else "untagged_parity.json")
    saved = json.loads(out.read_text()) if args.extend and out.exists() else None
    report = run(args, saved)
    out.write_text(json.dumps(report, indent=1))
    ratio = report["untagged_throughput_ratio_vs_stock"]
    print(f"{report['systems'][1]} / {report['systems'][0]} untagged output throughput: {ratio['value']:.3f} "
          f"[{ratio['lo']:.3f}, {ratio['hi']:.3f}] over {ratio['pairs']} pairs -> {display_path(out)}")
    return report


if __name__ == "__main__":
    main()
