"""A burst of self-consistency programs arriving at once: where does the makespan go?

    python -m benchmark.scheduler.bench_burst                # 4 servers x 3 rounds, ~12 min on 2 cores

A burst of ``--programs`` programs × ``--branches`` branches (each branch generates a seeded
uniform 8-96 tokens, ``ignore_eos``, so every system generates exactly the same tokens) is sent at
once to a server capped at ``--max-running-requests`` 8; ``--rounds`` rounds per server, each with
new prompts and the prefix cache flushed before it. Systems, each on its own freshly started server,
one after the other, so that adjacent rows differ by one thing:

- ``sglang-fcfs``: stock SGLang (``python -m sglang.launch_server``), untagged requests;
- ``dynasor-fcfs-rust-tree``: Dynasor's server and tags, SGLang's own fcfs order and SGLang's
  default radix-tree core (``--dynasor-eviction sglang``): Dynasor's machinery alone;
- ``dynasor-fcfs``: the same with the Python tree core that program-aware eviction uses;
- ``dynasor-gang-sjf``: Dynasor's default order on top.

Per round: makespan (first send to last answer) and mean program latency. The Dynasor servers run
with ``--dynasor-step-log`` (``python/dynasor/srt/step_log.py``): per round, steps by mode, mean
decode batch, seconds in the forward pass, in scheduling, in Dynasor's ordering and tracking and in
the radix cache, prefill and cached tokens, and the *tail*: decode steps that ran below the running
cap while nothing waited. Writes ``benchmark/results/burst.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmark.common import RESULTS, display_path, machine_info


@dataclass(frozen=True)
class BurstSystem:
    name: str
    stock: bool
    flags: tuple[str, ...]
    token_stats: bool = True  # tags ask for per-token entropy and confidence (the tag's default)


NO_ESCALATION = ("--dynasor-starvation-floor", "3600", "--dynasor-starvation-cap", "3600")
SYSTEMS = (
    BurstSystem("sglang-fcfs", True, ("--schedule-policy", "fcfs")),
    BurstSystem("dynasor-fcfs-rust-tree", False, ("--dynasor-schedule-policy", "fcfs", "--dynasor-eviction", "sglang")),
    BurstSystem("dynasor-fcfs", False, ("--dynasor-schedule-policy", "fcfs")),
    BurstSystem("dynasor-fcfs-no-token-stats", False, ("--dynasor-schedule-policy", "fcfs"), token_stats=False),
    BurstSystem("dynasor-gang-sjf", False, ("--dynasor-schedule-policy", "gang-sjf")),
    BurstSystem("dynasor-gang-sjf-no-escalation", False, ("--dynasor-schedule-policy", "gang-sjf", *NO_ESCALATION)),
)
DEFAULT_SYSTEMS = ("sglang-fcfs", "dynasor-fcfs-rust-tree", "dynasor-fcfs", "dynasor-gang-sjf")


@dataclass(frozen=True)
class Branch:
    program: int
    prompt: str
    max_new_tokens: int


def burst(round_index: int, args: argparse.Namespace) -> list[Branch]:
    """The same burst for every system: prompts and lengths depend on the seed and round only."""
    from dynasor.datasets.arithmetic import generate, make_prompt

    rng = random.Random(args.seed * 1000 + round_index)
    problems = generate(args.programs, seed=args.seed * 1000 + round_index, levels={1: 0.5, 2: 0.5}).problems
    return [Branch(p, make_prompt(problem), rng.randint(args.min_tokens, args.max_tokens))
            for p, problem in enumerate(problems) for _ in range(args.branches)]


async def run_round(url: str, branches: list[Branch], system: BurstSystem) -> dict[str, Any]:
    import httpx

    from dynasor.core.tag import new_program_id, tag_sampling_params

    program_ids = [new_program_id() for _ in range(len({b.program for b in branches}))]

    async def send(client: httpx.AsyncClient, b: Branch) -> tuple[int, float, int]:
        params: dict[str, Any] = {"max_new_tokens": b.max_new_tokens, "temperature": 0.8, "ignore_eos": True}
        if not system.stock:
            params = tag_sampling_params(params, {"program_id": program_ids[b.program],
                                                  "return_entropy": system.token_stats})
        r = await client.post(url + "/generate", json={"text": b.prompt, "sampling_params": params})
        r.raise_for_status()
        return b.program, time.perf_counter(), int(r.json()["meta_info"]["completion_tokens"])

    async with httpx.AsyncClient(timeout=600) as client:
        (await client.post(url + "/flush_cache")).raise_for_status()
        await asyncio.sleep(0.5)
        started, wall = time.perf_counter(), time.time()
        done = await asyncio.gather(*[send(client, b) for b in branches])
        escalations = 0
        if not system.stock:  # the table keeps finished programs for the TTL (60 s)
            for pid in program_ids:
                found = await client.get(f"{url}/dynasor/programs/{pid}")
                escalations += found.json().get("escalations", 0) if found.status_code == 200 else 0
    finish: dict[int, float] = {}
    for program, at, _ in done:
        finish[program] = max(finish.get(program, 0.0), at)
    return {"escalations": escalations,"started_at": wall, "makespan_s": max(at for _, at, _ in done) - started,
            "mean_program_latency_s": statistics.mean(t - started for t in finish.values()),
            "completion_tokens": sum(tokens for _, _, tokens in done)}


def split_gangs(steps: list[dict[str, Any]]) -> int:
    """Programs whose branches were not admitted back to back: another program's request was
    admitted between two of theirs."""
    order = [p for s in steps if s["mode"] == "prefill" for p in s.get("admitted_programs") or [] if p]
    last_seen: dict[str, int] = {}
    split: set[str] = set()
    for i, program in enumerate(order):
        if program in last_seen and last_seen[program] != i - 1:
            split.add(program)
        last_seen[program] = i
    return len(split)


def step_summary(steps: list[dict[str, Any]], cap: int) -> dict[str, Any]:
    """What the step log says about one round's steps."""
    decode = [s for s in steps if s["mode"] == "decode"]
    prefill = [s for s in steps if s["mode"] == "prefill"]
    tail = [s for s in decode if s["batch_size"] < cap and s["waiting"] == 0]
    return {
        "steps": len(steps), "prefill_steps": len(prefill), "decode_steps": len(decode),
        "split_gangs": split_gangs(steps),
        "mean_decode_batch": statistics.mean(s["batch_size"] for s in decode) if decode else None,
        "tail_decode_steps": len(tail), "tail_run_s": sum(s["run_s"] for s in tail),
        "tail_mean_batch": statistics.mean(s["batch_size"] for s in tail) if tail else None,
        "prefill_tokens": sum(s.get("new_tokens", 0) for s in prefill),
        "cached_tokens": sum(s.get("cached_tokens", 0) for s in prefill),
        **{key: sum(s.get(key, 0.0) for s in steps) for key in ("run_s", "schedule_s", "result_s", "order_s",
                                                                  "track_s", "tree_s", "gc_s")},
        "decode_run_s": sum(s["run_s"] for s in decode), "prefill_run_s": sum(s["run_s"] for s in prefill),
        "forward_ms_per_step": 1e3 * sum(s["run_s"] for s in steps) / len(steps) if steps else None,
    }


def run_system(system: BurstSystem, args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    from dynasor.evaluation.ports import free_port
    from dynasor.evaluation.server_process import ServerProcess
    from dynasor.model import default_model_path

    engine = ["--max-running-requests", str(args.max_running_requests)]
    step_log = logs / f"burst-{system.name}.steps.jsonl"
    step_log.unlink(missing_ok=True)
    if system.stock:
        server = ServerProcess.stock_sglang(str(default_model_path()), free_port(), logs / f"burst-{system.name}.log",
                                            [*engine, *system.flags])
    else:
        server = ServerProcess.dynasor(free_port(), logs / f"burst-{system.name}.log",
                                       [*engine, *system.flags, "--dynasor-step-log", str(step_log)])
    rounds = []
    with server:
        asyncio.run(run_round(server.url, burst(-1, args)[: args.branches], system))  # warm-up
        for index in tqdm(range(args.rounds), desc=system.name, leave=False):
            outcome = asyncio.run(run_round(server.url, burst(index, args), system))
            outcome["ended_at"] = time.time()
            rounds.append(outcome)
    if not system.stock:
        from dynasor.srt.step_log import read_step_log

        steps = read_step_log(str(step_log))
        for outcome in rounds:
            inside = [s for s in steps if outcome["started_at"] <= s["t"] <= outcome["ended_at"]]
            outcome["steps"] = step_summary(inside, args.max_running_requests)
    return rounds


def print_table(results: dict[str, list[dict[str, Any]]]) -> None:
    print(f"\n{'system':<30} {'makespan s':>10} {'mean prog s':>11} {'decode steps':>12} {'mean batch':>10} "
          f"{'tail steps':>10} {'tail s':>7} {'forward s':>9} {'ms/step':>7} {'sched s':>8} {'order s':>8} "
          f"{'tree s':>7} {'gc s':>6} {'split':>5} {'escal':>5}")
    for name, rounds in results.items():
        def mean(key: str, rounds: list[dict[str, Any]] = rounds) -> float | None:
            values = [r["steps"][key] for r in rounds if "steps" in r and r["steps"][key] is not None]
            return statistics.mean(values) if values else None

        def cell(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        print(f"{name:<30} {statistics.mean(r['makespan_s'] for r in rounds):>10.2f} "
              f"{statistics.mean(r['mean_program_latency_s'] for r in rounds):>11.2f} "
              f"{cell(mean('decode_steps'), '.0f'):>12} {cell(mean('mean_decode_batch'), '.2f'):>10} "
              f"{cell(mean('tail_decode_steps'), '.0f'):>10} {cell(mean('tail_run_s'), '.2f'):>7} "
              f"{cell(mean('run_s'), '.2f'):>9} {cell(mean('forward_ms_per_step'), '.1f'):>7} "
              f"{cell(mean('schedule_s'), '.2f'):>8} {cell(mean('order_s'), '.3f'):>8} "
              f"{cell(mean('tree_s'), '.2f'):>7} {cell(mean('gc_s'), '.2f'):>6} {cell(mean('split_gangs'), '.1f'):>5} "
              f"{statistics.mean(r['escalations'] for r in rounds):>5.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", type=int, default=12)
    ap.add_argument("--branches", type=int, default=6)
    ap.add_argument("--min-tokens", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--max-running-requests", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                    help=f"comma-separated, in run order, of {', '.join(s.name for s in SYSTEMS)}")
    ap.add_argument("--out", type=Path, default=RESULTS / "burst.json")
    args = ap.parse_args(argv)
    by_name = {s.name: s for s in SYSTEMS}
    unknown = [n for n in args.systems.split(",") if n not in by_name]
    if unknown:
        ap.error(f"unknown systems {unknown}")
    chosen = [by_name[n] for n in args.systems.split(",")]
    logs = RESULTS / "tmp"
    logs.mkdir(parents=True, exist_ok=True)
    results = {system.name: run_system(system, args, logs) for system in chosen}
    print_table(results)
    report = {"benchmark": "burst", "machine_info": machine_info(),
              "settings": {k: v for k, v in vars(args).items() if k != "out"}, "systems": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {display_path(args.out)}")


if __name__ == "__main__":
    main()
