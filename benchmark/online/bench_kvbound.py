"""LIVE on CPU: self-consistency programs whose branches fill a small KV pool, Dynasor against stock SGLang.

    python -m benchmark.online.bench_kvbound                      # 3 rates x 3 rounds x 40 programs, ~1 hour
    python -m benchmark.online.bench_kvbound --rates 0.45 --rounds 2 --programs 20 --tag pilot   # ~10 minutes

The regime long chain-of-thought creates, scaled to 2 CPU cores: a program is ``BRANCHES`` branches
of one prompt; a program is *short* or *long* (branch lengths ~8x apart, drawn per branch), and the
KV pool (``--max-total-tokens``) holds two to four long programs. A branch's length is unknown to
the server and the client until it ends, as a reasoning model's is: every request asks for the same
budget (``max_new_tokens`` = ``CAP``) and SGLang's custom logit processor
``dynasor.srt.forced_length.ForcedLength`` ends it at its drawn length. So admission, retraction
and order decide latency, on the same model and the same work for every system.

Systems: stock SGLang ``fcfs``, ``lpm``, and priority scheduling driven by the client (each request's
``priority`` = its program's remaining budget as the client knows it, branches x cap; SGLang's
preemption and priority retraction on); Dynasor's default server (requests tagged, no
``remaining_work`` hint: the server estimates each program's work itself), and the same with
``--dynasor-retraction program``. Every server stays up; each round runs every system on the same
seeded trace, the order reversed every other round, after a cache flush and a speed probe (one
short program alone). Ratios: Dynasor's mean program latency over the best stock system's (the one
with the lowest mean over the whole run), paired by (round, rate), 95% bootstrap. Writes
benchmark/results/live_kvbound.json (``--tag`` another name).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmark.common import RESULTS, machine_info
from benchmark.online.alternation import QueueSampler, alternation_summary, interval, queue_summary, round_order
from dynasor.core.tag import ProgramTag, new_program_id

BRANCHES = 4
CAP = 192  # every branch's token budget (max_new_tokens): all the client and the server know
SHORT_MEDIAN, LONG_MEDIAN, LENGTH_SIGMA, LONG_SHARE = 16.0, 128.0, 0.3, 0.5
KV_TOKENS = 2000  # a long program holds ~4 x (40 + 128) = 670 tokens: the pool holds about three
MAX_RUNNING = 16
TEMPERATURE = 0.8


@dataclass(frozen=True)
class System:
    name: str
    stock: bool
    flags: tuple[str, ...] = ()
    client_priority: bool = False


SYSTEMS = {s.name: s for s in (
    System("sglang-fcfs", True, ("--schedule-policy", "fcfs")),
    System("sglang-lpm", True, ("--schedule-policy", "lpm")),
    System("sglang-priority", True, ("--schedule-policy", "fcfs", "--enable-priority-scheduling",
                                     "--schedule-low-priority-values-first", "--retraction-policy", "priority"),
           client_priority=True),
    System("dynasor", False),
    System("dynasor+program-retraction", False, ("--dynasor-retraction", "program")),
)}
STOCK = ("sglang-fcfs", "sglang-lpm", "sglang-priority")


@dataclass(frozen=True)
class Program:
    index: int
    unit_arrival: float  # arrival time at rate 1 (a unit-rate Poisson process); divided by the rate
    long: bool
    lengths: tuple[int, ...]
    prompt: str


def draw_programs(count: int, seed: int) -> list[Program]:
    """Seeded programs; the same for every system, rate and round."""
    rng = random.Random(seed)
    out, t = [], 0.0
    for i in range(count):
        t += rng.expovariate(1.0)
        long = rng.random() < LONG_SHARE
        median = LONG_MEDIAN if long else SHORT_MEDIAN
        lengths = tuple(max(4, min(CAP, round(median * math.exp(rng.gauss(0.0, LENGTH_SIGMA)))))
                        for _ in range(BRANCHES))
        out.append(Program(i, t, long, lengths, f"Problem {i} ({rng.randrange(10**6)}): think step by step, "
                           "then give the answer. What is the sum of the first hundred odd numbers?"))
    return out


def request_body(system: System, program: Program, length: int, program_id: str, stop_token: int,
                 processor: str) -> dict[str, Any]:
    from dynasor.srt.forced_length import forced_length_params

    custom = forced_length_params(length, stop_token)
    body: dict[str, Any] = {"text": program.prompt, "custom_logit_processor": processor,
                            "sampling_params": {"max_new_tokens": CAP, "temperature": TEMPERATURE,
                                                "custom_params": custom}}
    if system.client_priority:
        body["priority"] = BRANCHES * CAP  # the program's remaining budget: the same for every program
    if not system.stock:
        custom.update(ProgramTag(program_id).to_custom_params())
        body["rid"] = uuid.uuid4().hex
    return body


async def run_program(http: httpx.AsyncClient, url: str, system: System, program: Program, stop_token: int,
                      processor: str) -> dict[str, Any]:
    program_id, start = new_program_id(), time.monotonic()

    async def branch(length: int) -> int:
        response = await http.post(f"{url}/generate", json=request_body(system, program, length, program_id,
                                                                           stop_token, processor))
        response.raise_for_status()
        return int(response.json()["meta_info"]["completion_tokens"])

    made = await asyncio.gather(*(branch(n) for n in program.lengths))
    return {"index": program.index, "long": program.long, "lengths": list(program.lengths), "made": made,
            "latency": time.monotonic() - start}


async def run_turn(url: str, system: System, programs: list[Program], rate: float, stop_token: int,
                   processor: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(900.0)) as http, QueueSampler([url]) as sampler:
        start = time.monotonic()

        async def arrive(p: Program) -> dict[str, Any]:
            await asyncio.sleep(max(0.0, start + p.unit_arrival / rate - time.monotonic()))
            return await run_program(http, url, system, p, stop_token, processor)

        records = await asyncio.gather(*(arrive(p) for p in programs))
    latencies = [r["latency"] for r in records]
    return {"rate": rate, "mean_latency_s": statistics.mean(latencies), "records": records,
            "queue": queue_summary(sampler.samples), "wall_s": time.monotonic() - start}


async def speed_probe(url: str, system: System, stop_token: int, processor: str) -> float:
    probe = Program(-1, 0.0, False, (32,) * BRANCHES, "Speed probe: count from one to forty.")
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as http:
        return float((await run_program(http, url, system, probe, stop_token, processor))["latency"])


def stop_token_id() -> int:
    from dynasor.model import default_model_path

    return int(json.loads((default_model_path() / "config.json").read_text())["eos_token_id"])


def start_servers(names: list[str], log_dir: Path) -> dict[str, Any]:
    from dynasor.evaluation.ports import free_port
    from dynasor.evaluation.server_process import ServerProcess
    from dynasor.model import default_model_path

    common = ["--max-total-tokens", str(KV_TOKENS), "--max-running-requests", str(MAX_RUNNING),
              "--enable-custom-logit-processor"]
    servers: dict[str, Any] = {}
    for name in names:
        system = SYSTEMS[name]
        log = log_dir / f"kvbound_{name}.log"
        argv = [*common, *system.flags]
        server = (ServerProcess.stock_sglang(str(default_model_path()), free_port(), log, argv) if system.stock
                  else ServerProcess.dynasor(free_port(), log, argv))
        servers[name] = server
        server.start()
        print(f"[kvbound] {name} ready at {server.url}", flush=True)
    return servers


def best_stock(rounds: list[dict[str, Any]], names: list[str]) -> str:
    stock = [n for n in names if n in STOCK]
    return min(stock, key=lambda n: statistics.mean(
        v for r in rounds for v in r["systems"][n]["mean_latency_s"].values()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--rates", default="0.2,0.3,0.4", help="programs per second (0.4: well past the knee)")
    ap.add_argument("--programs", type=int, default=40, help="programs per (system, rate, round)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="live_kvbound")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not any(n in STOCK for n in names) or all(n in STOCK for n in names):
        ap.error(f"--systems: known {list(SYSTEMS)}; name at least one stock and one Dynasor system")
    rates = [float(x) for x in args.rates.split(",")]
    from dynasor.evaluation.server_process import stop_servers_on_sigterm
    from dynasor.srt.forced_length import ForcedLength

    stop_servers_on_sigterm()
    programs, stop_token, processor = draw_programs(args.programs, args.seed), stop_token_id(), ForcedLength.to_str()
    started = time.monotonic()
    servers = start_servers(names, args.out_dir / "tmp")
    rounds: list[dict[str, Any]] = []
    try:
        for index in range(args.rounds):
            order = round_order(names, index)
            entry: dict[str, Any] = {"round": index, "order": order, "systems": {}}
            for name in order:
                url, system = servers[name].url, SYSTEMS[name]
                httpx.post(f"{url}/flush_cache", params={"timeout": 30}, timeout=60).raise_for_status()
                probe = asyncio.run(speed_probe(url, system, stop_token, processor))
                turns = [asyncio.run(run_turn(url, system, programs, rate, stop_token, processor)) for rate in rates]
                entry["systems"][name] = {"probe_s": probe, "turns": turns,
                                          "mean_latency_s": {f"{t['rate']:g}": t["mean_latency_s"] for t in turns}}
                print(f"[kvbound] round {index} {name}: probe {probe:.2f}s, mean latency " + ", ".join(
                    f"{t['rate']:g}/s {t['mean_latency_s']:.1f}s (waiting in {t['queue']['share_with_waiting']:.0%} "
                    "of samples)" for t in turns), flush=True)
            rounds.append(entry)
    finally:
        for server in servers.values():
            server.stop()
    baseline = best_stock(rounds, names)
    summary = alternation_summary(rounds, names, baseline, rates)
    ours = {n: interval(summary["systems"][n]["mean_latency_ratio"]) for n in names if n not in STOCK}
    report = {"benchmark": "live_kvbound", "label": "LIVE (CPU), alternating rounds", "machine": machine_info(),
              "workload": {"branches": BRANCHES, "cap": CAP, "short_median": SHORT_MEDIAN, "long_median": LONG_MEDIAN,
                           "length_sigma": LENGTH_SIGMA, "long_share": LONG_SHARE, "kv_tokens": KV_TOKENS,
                           "max_running_requests": MAX_RUNNING, "temperature": TEMPERATURE,
                           "programs": [asdict(p) for p in programs]},
              "systems": {n: asdict(SYSTEMS[n]) for n in names}, "rates": rates, "rounds": len(rounds),
              "interleaved": True, "best_stock": baseline,
              "mean_latency_ratio_vs_best_stock": ours.get("dynasor") or next(iter(ours.values())),
              "by_system": ours, "alternation": summary, "round_data": rounds,
              "wall_seconds": time.monotonic() - started}
    out = args.out_dir / f"{args.tag}.json"
    out.write_text(json.dumps(report, indent=1))
    for name, cell in ours.items():
        print(f"[kvbound] {name} / {baseline}: {cell['value']:.3f}x [{cell['lo']:.3f}, {cell['hi']:.3f}] "
              f"({cell['pairs']} paired (round, rate) means)")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
