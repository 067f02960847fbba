"""Fit the simulator's ``cpu-smollm2`` iteration-time profile on this machine's live server.

    python -m benchmark.sim.profile_cpu            # ~3 min on 2 cores: starts and stops its own server

A Dynasor server runs with ``--dynasor-step-log`` (and ``--disable-overlap-schedule``, so each
step's timings are its own); a sweep sends, for every batch size in
``--batches`` and prompt length in ``--prompts``, that many concurrent requests of random token ids
(distinct prompts: nothing cached) generating ``--output`` tokens each, ignoring EOS. The step
log then holds prefills of 1 to batch x prompt tokens and decode steps over the batch sizes and
context lengths the sweep passes, then prefills of 32 new tokens per request over a cached prefix
of each prompt length; ``dynasor.sim.fit`` fits the linear form to them and reports its
error. Writes benchmark/results/sim_cpu_profile.json (the profile ``dynasor simulate --profile``
reads, with the fit errors and the ranges it covers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, add_server_flags, display_path, dynasor_server, machine_info
from dynasor.sim.fit import fit_linear, read_steps, step_seconds, wall_timed


async def send_all(http: Any, prompts: list[list[int]], output: int, temperature: float) -> int:
    """The prompts (token ids) at once, each generating ``output`` tokens; how many were sent."""
    bodies = [{"input_ids": ids, "sampling_params": {"max_new_tokens": output, "ignore_eos": True,
                                                     "temperature": temperature}} for ids in prompts]
    for reply in await asyncio.gather(*(http.post("/generate", json=b) for b in bodies)):
        reply.raise_for_status()
    return len(bodies)


async def sweep(url: str, batches: list[int], prompts: list[int], output: int, seed: int,
                temperature: float) -> int:
    import httpx

    rng = random.Random(seed)
    sent = 0
    # No keep-alive: a connection idle past uvicorn's keep-alive timeout (5 s, a long batch) can be
    # closed by the server just as the next batch reuses it (httpx.ReadError).
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for prompt in prompts:
            for batch in batches:
                sent += await send_all(http, [[rng.randrange(100, 20000) for _ in range(prompt)]
                                              for _ in range(batch)], output, temperature)
                print(f"prompt {prompt:>5} x batch {batch:>3}: done ({sent} requests)", flush=True)
        # prefills over a cached prefix: one request caches `prompt` shared tokens, then batches
        # add 32 tokens of their own each (what programs sharing a few-shot header do)
        for prompt in prompts:
            prefix = [rng.randrange(100, 20000) for _ in range(prompt)]
            for batch in [1, *batches]:
                sent += await send_all(http, [prefix + [rng.randrange(100, 20000) for _ in range(32)]
                                              for _ in range(batch)], 2, temperature)
            print(f"cached prefix {prompt:>5}: done ({sent} requests)", flush=True)
    return sent


async def round_trips(url: str, count: int, seed: int) -> list[tuple[float, float]]:
    """(sent at, client latency) of single 32-token, 1-output-token requests to the idle server:
    one prefill step each, so latency minus that step's time is what happens outside the loop."""
    import httpx

    rng = random.Random(seed + 1)
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(count):
            await asyncio.sleep(0.5)
            body = {"input_ids": [rng.randrange(100, 20000) for _ in range(32)],
                    "sampling_params": {"max_new_tokens": 1, "temperature": 0.0}}
            sent = time.time()
            (await http.post("/generate", json=body)).raise_for_status()
            out.append((sent, time.time() - sent))
    return out


def transport_of(trips: list[tuple[float, float]], steps: list[dict]) -> dict:
    """Median over the round trips of latency minus the prefill step that served it."""
    import statistics

    outside = []
    for sent, latency in trips:
        served = [s for s in steps if s["mode"] == "prefill" and sent <= s["t"] <= sent + latency + 0.01]
        if len(served) == 1:
            outside.append(latency - step_seconds(served[0]))
    return {"round_trip_outside_loop_s": statistics.median(outside) if outside else None, "samples": outside,
            "spacing_s_stated": REQUEST_SPACING_S}


# Requests sent at once reach the scheduler one after another (the tokenizer manager takes them in
# turn): stated, not measured; any small positive spacing makes an idle engine start on the first alone.
REQUEST_SPACING_S = 0.001


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_flags(ap, url=False)
    ap.add_argument("--batches", default="1,2,4,8,16,32")
    ap.add_argument("--prompts", default="32,256,1024")
    ap.add_argument("--output", type=int, default=24, help="tokens per request")
    ap.add_argument("--temperature", type=float, default=0.3,
                    help="sampling temperature of the sweep: the workload's (sampling costs time per step on a CPU; "
                         "greedy is a cheaper path)")
    ap.add_argument("--max-running", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overlap", action="store_true",
                    help="keep SGLang's overlap scheduler (the default of live servers) and time steps by the "
                         "wall clock between log lines (dynasor.sim.fit.wall_timed)")
    ap.add_argument("--out", type=Path, help="default sim_cpu_profile.json (--overlap: sim_cpu_profile_overlap.json)")
    ap.add_argument("--refit", action="store_true", help="fit the last sweep's step log again (no server)")
    args = ap.parse_args(argv)
    batches, prompts = [int(x) for x in args.batches.split(",")], [int(x) for x in args.prompts.split(",")]
    tag = "sim_cpu_profile_overlap" if args.overlap else "sim_cpu_profile"
    args.out = args.out or RESULTS / f"{tag}.json"
    log = RESULTS / "tmp" / f"{tag}.steps.jsonl"
    if args.refit:
        report = json.loads(args.out.read_text())
        steps = read_steps([log])
        profile, fit = fit_linear(wall_timed(steps) if args.overlap else steps, "cpu-smollm2",
                                  report["profile"]["source"])
        report.update(profile=profile.describe(), fit=fit)
        args.out.write_text(json.dumps(report, indent=1))
        print(json.dumps({"profile": report["profile"], "fit": fit}, indent=1))
        return report
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    # Without the overlap scheduler a step's run_s is its own forward pass; with it, a step's timings
    # hold parts of its neighbours' (the forward runs while the next step is scheduled).
    flags = ["--dynasor-step-log", str(log), "--max-running-requests", str(args.max_running)]
    with dynasor_server(args, f"{tag}_server", flags + ([] if args.overlap else ["--disable-overlap-schedule"])) \
            as served:
        sent = asyncio.run(sweep(served.url, batches, prompts, args.output, args.seed, args.temperature))
        trips = asyncio.run(round_trips(served.url, 10, args.seed))
        server = {**served.info, "server_args": [display_path(log) if a == str(log) else a
                                                  for a in served.info.get("server_args", [])]}
    steps = read_steps([log])
    transport = transport_of(trips, steps)
    timing = "overlap scheduler, wall-clock intervals" if args.overlap else "no overlap, step phases"
    profile, fit = fit_linear(wall_timed(steps) if args.overlap else steps, "cpu-smollm2",
                              f"fitted by benchmark.sim.profile_cpu ({timing})")
    report = {"benchmark": "sim_cpu_profile", "machine": machine_info(), "server": server,
              "sweep": {"batches": batches, "prompts": prompts, "output_tokens": args.output, "requests": sent,
                        "max_running_requests": args.max_running, "temperature": args.temperature},
              "overlap_scheduler": args.overlap, "transport": transport,
              "profile": profile.describe(), "fit": fit, "step_log": display_path(log),
              "wall_seconds": time.perf_counter() - started}
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({"profile": report["profile"], "fit": fit, "transport": transport}, indent=1))
    print(f"wrote {display_path(args.out)}")
    return report


if __name__ == "__main__":
    main()
