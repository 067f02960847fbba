"""Online serving benchmark: deadline attainment of reasoning programs vs rate and SLO scale.

    python -m benchmark.online.bench_online --quick          # CPU, default model, small-scale
    python -m benchmark.online.bench_online --rates 1,2,4,8 --duration 300 --cap 20 \\
        --model-path /models/Llama-3.1-8B-Instruct --server-args "--mem-fraction-static 0.7"
    python -m benchmark.online.bench_online --replay benchmark/results/online_quick.json --slo-scales 1,2,3

SelfConsistency programs (``--cap`` branches, majority vote) on generated arithmetic problems
(``--levels`` mix) arrive as a seeded Poisson process at each ``--rates`` value for ``--duration``
seconds. Each program's deadline = SLO scale × difficulty factor × base deadline
(``workload.py``: from solo "oracle" runs per level on the first system, the default, or a fixed
``--base-deadline`` with factors 1/2/3 by level). Every system runs in this one process and
environment on its own server (``systems.py``): stock SGLang fcfs and lpm, Dynasor program-fifo,
gang, gang + certaindex, gang-sjf + certaindex. By default the systems alternate
(``alternation.py``): every server stays up, and each of ``--rounds`` rounds runs every system once
on the same trace, the order swapped each round, after a cache flush and a speed probe; ratios are
paired by round. ``--sequential`` runs one system after the other on fresh servers instead (the old
way; the results are labelled as such, since machine drift between the runs is not cancelled).

Reported (``metrics.py``): attainment at ``--slo-scale`` per rate, the maximum rate sustaining
``--target`` attainment (interpolated between swept rates, bounds outside them) and its ratio to
stock SGLang fcfs and lpm, attainment vs SLO scale and the tightest scale reaching the target at
each rate (recomputed from the recorded latencies, no extra runs), the finish-time fairness CDF
(latency / output tokens). Writes benchmark/results/online_<tag>.json (machine, sizes, seeds,
level mix, every program's record), three PNGs next to it, and prints the tables.

``--quick`` numbers are small-scale: a 135M model on 2 CPU cores serves a fraction of a program
per second, so each point has a handful of programs. They check the harness end to end; they are
not the paper's setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import time
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, add_server_flags, apply_preset, display_path, machine_info
from benchmark.online.alternation import (
    QueueSampler,
    alternation_summary,
    format_alternation,
    mean_latency,
    parity_summary,
    queue_summary,
    round_order,
)
from benchmark.online.presets import PRESETS
from benchmark.online.report import fairness_rate, format_tables, plot, summarize
from benchmark.online.systems import POLICY_FLAGS, System, make_server, parse_systems
from benchmark.online.untagged import untagged_throughput
from benchmark.online.workload import (
    DeadlineModel,
    Workload,
    build_workload,
    fixed_deadlines,
    oracle_deadlines,
    oracle_problems,
    parse_factors,
)
from dynasor.datasets.arithmetic import generate, make_prompt, parse_levels
from dynasor.program_runtime.sampling_flags import add_sampling_flags, sampling_params_from_args

SEQUENTIAL = ("SEQUENTIAL: one run per system, one after the other; machine drift between the runs is not "
              "cancelled, so ratios between systems are not evidence")


def floats(spec: str) -> list[float]:
    return sorted({float(x) for x in spec.split(",") if x.strip()})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small-scale CPU sizes (defaults below marked quick/full); "
                    "the same as --preset quick")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="sizes and systems: quick (smoke run), cpu-powered "
                    "(>= 100 programs per rate on this CPU, about an hour), parity (stock fcfs vs Dynasor's default "
                    "near saturation), dp-affinity (program affinity on --dp-size 2), full (GPU scale; the default)")
    ap.add_argument("--rates", help="programs/s, comma separated (quick 0.15,0.3; full 0.5,1,2,4,8)")
    ap.add_argument("--duration", type=float, help="arrival window per rate, seconds (full 300)")
    ap.add_argument("--programs-per-rate", type=int, help="instead of --duration: each rate's window is N / rate "
                    "seconds, so every rate offers N programs (quick 8)")
    ap.add_argument("--drain-max", type=float, help="seconds after a window to wait for stragglers beyond their "
                    "primary-scale deadline (quick 10; full 300)")
    ap.add_argument("--arrivals", choices=["poisson", "fixed-count", "scaled"], help="Poisson process per rate; "
                    "fixed-count: conditioned on round(rate x duration) arrivals; scaled: one fixed-count trace "
                    "(same problems, same order) time-scaled to every rate, needs --programs-per-rate "
                    "(quick scaled: a few programs per rate; full poisson)")
    ap.add_argument("--max-running-requests", type=int, help="SGLang's cap on running requests for every "
                    "server, 0 = SGLang's own (quick 16: a CPU server otherwise admits everything at once, "
                    "so no waiting queue forms for any scheduler to order; full 0)")
    ap.add_argument("--cap", type=int, help="SelfConsistency branches per program, K (quick 6; full 20)")
    ap.add_argument("--detect-at", type=int, help="certaindex detection step (quick 3; full 5)")
    ap.add_argument("--threshold", type=float, default=0.7, help="certaindex stop threshold (paper Table 3: 0.7)")
    add_sampling_flags(ap, temperature=None, max_new_tokens=None, max_new_tokens_help="per branch (quick 32; full 256)",
                       temperature_help="(quick 0.3: at 0.8 the 135M model's answers scatter so widely that no "
                       "program ever reaches agreement; full 0.8)")
    ap.add_argument("--sc-launch", choices=["staged", "together", "deferred"], help="certaindex systems without a "
                    "launch order of their own: staged = detect-at "
                    "branches first, the rest only if the policy goes on (the paper's intra-program scheduler); "
                    "together = every branch at once, a stop aborts the rest; deferred = every branch at once, the "
                    "rest tagged deferred (queued behind all other work until detection) (default staged)")
    ap.add_argument("--systems", help="comma-separated subset, in run order (default: the preset's; all = "
                    "every system but gang-sjf)")
    add_server_flags(ap, url=False)
    ap.add_argument("--levels", help="level mix, e.g. 1:0.5,2:0.5 (quick 1:0.5,2:0.5; full 1-4 evenly)")
    ap.add_argument("--seed", type=int, default=0, help="arrival, problem and oracle seed")
    ap.add_argument("--slo-scale", type=float, help="SLO scale of the rate sweep (default 2)")
    ap.add_argument("--slo-scales", help="SLO scales for attainment vs scale (quick 1,1.5,2,3,4)")
    ap.add_argument("--target", type=float, help="attainment target (default 0.9: the paper's P90)")
    ap.add_argument("--oracle", action="store_true", help="base deadline and factors from solo runs per level "
                    "on the first system (the default unless --base-deadline)")
    ap.add_argument("--oracle-runs", type=int, help="solo programs per level (quick 2; full 5)")
    ap.add_argument("--base-deadline", type=float, help="fixed base deadline, seconds (paper SC: 240)")
    ap.add_argument("--difficulty-factors", help="with --base-deadline: e.g. 1:1,2:2,3:3 (default min(level,3))")
    ap.add_argument("--fairness-rate", type=float, help="rate of the fairness CDF (default the highest)")
    ap.add_argument("--dp-size", type=int, help="SGLang's data-parallel ranks per started server (dp-affinity 2; "
                    "otherwise 1)")
    ap.add_argument("--workers", type=int, help="servers per system behind SGLang's router, smg (router-affinity 2; "
                    "otherwise 1: no router)")
    ap.add_argument("--overlap-schedule", action=argparse.BooleanOptionalAction, default=None,
                    help="SGLang's overlap scheduler in started servers (default on; sim-validation: off)")
    ap.add_argument("--rounds", type=int, help="alternating rounds: every system once per round on the same trace, "
                    "order swapped each round, a speed probe before each turn; ratios paired by round (quick 2, "
                    "cpu-powered 4, parity 4, full 2)")
    ap.add_argument("--step-logs", action=argparse.BooleanOptionalAction, default=None,
                    help="alternating runs: Dynasor servers write a step log (--dynasor-step-log) under "
                    "<out-dir>/tmp, named in the result (parity: on; otherwise off)")
    ap.add_argument("--baseline", help="the system the alternating ratios are against (default: the first)")
    ap.add_argument("--sequential", action="store_true", help="one run per system, one after the other, each on a "
                    "fresh server (the old way; drift between systems is not cancelled, and the results say so)")
    ap.add_argument("--bench-serving", type=int, default=None, metavar="N", help="after each turn, N untagged "
                    "random requests through SGLang's bench_serving: decode throughput of plain traffic in the "
                    "same alternation (parity: 32; otherwise off)")
    ap.add_argument("--tag", help="output name online_<tag> (default quick / full)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--replay", type=Path, help="re-summarise a saved JSON (new scales/target), no servers")
    args = ap.parse_args(argv)
    if args.quick and args.preset not in (None, "quick"):
        ap.error("--quick and --preset exclude each other")
    preset = "quick" if args.quick else (args.preset or "full")
    args.quick = preset == "quick"
    args.given = apply_preset(args, PRESETS[preset])
    args.tag = args.tag or {"cpu-powered": "cpu", "sim-validation": "sim_validation",
                            "dp-affinity": "dp_affinity", "router-affinity": "router_affinity"}.get(preset, preset)
    if args.bench_serving is None:
        args.bench_serving = 32 if preset == "parity" else 0
    if args.step_logs is None:
        args.step_logs = preset == "parity"
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")

    args.preset = preset
    if args.oracle and args.base_deadline is not None:
        ap.error("--oracle and --base-deadline exclude each other")
    if args.difficulty_factors and args.base_deadline is None:
        ap.error("--difficulty-factors needs --base-deadline (the oracle measures the factors)")
    if not 1 <= args.detect_at <= args.cap:
        ap.error("need 1 <= --detect-at <= --cap")
    if "duration" in args.given and "programs_per_rate" in args.given:
        ap.error("--duration and --programs-per-rate exclude each other")
    if "duration" in args.given:
        args.programs_per_rate = None
        if "arrivals" not in args.given and args.arrivals == "scaled":
            args.arrivals = "fixed-count"  # the preset's trace length no longer applies
    if args.arrivals == "scaled" and not args.programs_per_rate:
        ap.error("--arrivals scaled needs --programs-per-rate (the one trace's length)")
    if not 0 < args.target <= 1 or args.slo_scale <= 0 or args.drain_max < 0:
        ap.error("need 0 < --target <= 1, --slo-scale > 0, --drain-max >= 0")
    if (args.programs_per_rate is not None and args.programs_per_rate <= 0) or (
            args.programs_per_rate is None and (args.duration or 0) <= 0):
        ap.error("need --duration > 0 or --programs-per-rate > 0")
    if any(flag in shlex.split(args.server_args) or any(a.startswith(flag + "=") for a in shlex.split(args.server_args))
           for flag in POLICY_FLAGS):
        ap.error("--server-args must not set the schedule policy: each system sets its own")
    return args


def window_seconds(args: argparse.Namespace, rate: float) -> float:
    """The arrival window of one rate: fixed, or N / rate with --programs-per-rate."""
    return args.programs_per_rate / rate if args.programs_per_rate else args.duration


def server_extra(args: argparse.Namespace) -> list[str]:
    """``--server-args`` plus ``--max-running-requests`` unless the user set it there."""
    extra = shlex.split(args.server_args)
    if args.max_running_requests and not any(a.split("=", 1)[0] == "--max-running-requests" for a in extra):
        extra += ["--max-running-requests", str(args.max_running_requests)]
    if args.overlap_schedule is False and "--disable-overlap-schedule" not in extra:
        extra.append("--disable-overlap-schedule")
    if args.dp_size and args.dp_size > 1 and not any(a.split("=", 1)[0] in ("--dp-size", "--data-parallel-size")
                                                     for a in extra):
        extra += ["--dp-size", str(args.dp_size)]
    return extra


def title(args: argparse.Namespace, n_programs: int) -> str:
    scale = {"quick": "SMALL-SCALE (--quick, CPU)", "cpu-powered": "POWERED (--preset cpu-powered, CPU)",
             "sim-validation": "SIMULATOR VALIDATION RUN (--preset sim-validation, CPU)",
             "dp-affinity": "DATA-PARALLEL AFFINITY (--preset dp-affinity, CPU)",
             "router-affinity": "ROUTER AFFINITY (--preset router-affinity, CPU)"}.get(args.preset, "full")
    if args.dp_size and args.dp_size > 1:
        scale += f", --dp-size {args.dp_size}"
    if args.workers and args.workers > 1:
        scale += f", {args.workers} servers behind SGLang's router (smg)"
    model = Path(args.model_path).name if args.model_path else "default model (SmolLM2-135M)"
    window = (f"{args.programs_per_rate} programs each" if args.programs_per_rate else f"{args.duration:g}s each")
    if args.sequential:
        scale = "SEQUENTIAL " + scale
    return (f"{scale}: {model}, SC K={args.cap} (detect {args.detect_at}, {args.sc_launch}), T {args.temperature:g}, "
            f"levels {args.levels}, {len(floats(args.rates))} rates x {window} ({n_programs} programs/system), "
            f"seed {args.seed}")


def program_shape(args: argparse.Namespace) -> Any:
    from benchmark.online.loadgen import ScProgramSpec

    return ScProgramSpec(args.cap, args.detect_at, args.threshold, sampling_params_from_args(args),
                        args.sc_launch)


def limits_for(workload: Workload, deadlines: DeadlineModel, args: argparse.Namespace) -> Any:
    from benchmark.online.loadgen import WindowLimits

    largest = max([args.slo_scale, *floats(args.slo_scales)])
    levels = [a.problem.level or 0 for a in workload.arrivals]
    return WindowLimits([deadlines.deadline(lv, args.slo_scale) for lv in levels],
                        [deadlines.deadline(lv, largest) for lv in levels], args.drain_max)


def portable(arg: str) -> str:
    """A server argument without this machine's paths: $DYNASOR_HOME, then ~ for the home folder."""
    from dynasor.model import dynasor_home

    return arg.replace(str(dynasor_home()), "$DYNASOR_HOME").replace(str(Path.home()), "~")


def server_key(system: System) -> tuple[str, ...]:
    """Systems with equal keys run on identical servers and differ only on the client side."""
    return (system.server, *system.server_flags())


def server_groups(systems: list[System]) -> list[list[System]]:
    """Consecutive systems with the same server (gang, then gang + certaindex) share one."""
    groups: list[list[System]] = []
    for system in systems:
        if groups and server_key(groups[-1][0]) == server_key(system):
            groups[-1].append(system)
        else:
            groups.append([system])
    return groups


def flush_cache(url: str) -> None:
    """Empty the radix cache, so a system on a shared server starts as cold as on a fresh one."""
    import httpx

    response = httpx.post(f"{url}/flush_cache", params={"timeout": 30}, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"/flush_cache answered {response.status_code}: {response.text.strip()}")


def run_group(group: list[System], workloads: list[Workload], deadlines: DeadlineModel | None,
              args: argparse.Namespace, report: dict[str, Any], save: Any) -> DeadlineModel | None:
    """Start one server for ``group``; for each system: flush (after the first), warm up, run the
    oracle if still needed, then every window. One failed system must not lose the others' results."""
    from tqdm import tqdm

    from dynasor.evaluation.ports import free_port

    log = args.out_dir / "tmp" / f"online_{args.tag}_{group[0].name}.log"
    entries: dict[str, dict[str, Any]] = {s.name: {"system": s.to_json(), "error": None, "windows": []}
                                          for s in group}
    report["systems"].update(entries)
    started = time.monotonic()
    try:
        server = make_server(group[0], free_port(), log, args.model_path, server_extra(args), args.workers or 1)
        with server:
            info: dict[str, Any] = {"argv": [portable(a) for a in server.argv[1:]],
                    "start_seconds": time.monotonic() - started,
                    "log": display_path(log),
                    "shared_by": [s.name for s in group]}
            tqdm.write(f"[{group[0].name}] server {server.url} up in {info['start_seconds']:.0f}s"
                       + (f", shared by {', '.join(info['shared_by'])}" if len(group) > 1 else ""))
            for i, system in enumerate(group):
                entries[system.name]["server"] = info
                deadlines = run_system(system, server.url, server.worker_urls, i > 0, workloads, deadlines, args,
                                       report)
                save()
    except Exception as error:
        for entry in entries.values():
            if entry.get("seconds") is None:
                entry["error"] = entry["error"] or f"{type(error).__name__}: {error}"
                entry["seconds"] = time.monotonic() - started
        tqdm.write(f"[{group[0].name}] FAILED: {str(error).splitlines()[0] if str(error) else error!r} (log {log})")
    return deadlines


def run_system(system: System, url: str, engine_urls: list[str], flush: bool, workloads: list[Workload],
               deadlines: DeadlineModel | None, args: argparse.Namespace,
               report: dict[str, Any]) -> DeadlineModel | None:
    """One system on a running server (or router): warm-up of every engine, the oracle if still
    needed, then every window."""
    from tqdm import tqdm

    from benchmark.online.loadgen import run_window, solo_latencies, warmup

    shape = program_shape(args)
    entry = report["systems"][system.name]
    mix = parse_levels(args.levels)
    warm = [make_prompt(p) for p in generate(len(mix), args.seed + 1, dict.fromkeys(mix, 1.0)).problems]
    started = time.monotonic()
    try:
        router = engine_urls != [url]  # SGLang's router in front of several engines
        for engine in engine_urls:
            if flush:
                flush_cache(engine)
            asyncio.run(warmup(engine, warm))
        if deadlines is None:
            solo = asyncio.run(solo_latencies(url, system, oracle_problems(sorted(mix), args.oracle_runs, args.seed),
                                              shape, router))
            deadlines = oracle_deadlines({lv: sum(v) / len(v) for lv, v in solo.items()})
            report["oracle"] = {"system": system.name, "runs_per_level": args.oracle_runs,
                                "latencies": {str(k): v for k, v in solo.items()}}
            report["deadlines"] = deadlines.to_json()
            tqdm.write(f"[{system.name}] oracle solo latency per level: "
                       + ", ".join(f"L{k} {v:.1f}s" for k, v in deadlines.solo_latency.items()))
        for workload in workloads:
            records, wall = asyncio.run(run_window(url, system, workload, shape, limits_for(workload, deadlines, args),
                                                   f"{system.name} @ {workload.rate:g}/s", router))
            entry["windows"].append({"workload": workload.to_json(), "wall_seconds": wall,
                                     "records": [r.to_json() for r in records]})
            done = sum(r.latency is not None for r in records)
            tqdm.write(f"[{system.name}] rate {workload.rate:g}/s: {done}/{len(records)} programs finished, "
                       f"window {wall:.0f}s")
    except Exception as error:
        entry["error"] = f"{type(error).__name__}: {error}"
        tqdm.write(f"[{system.name}] FAILED: {entry['error'].splitlines()[0]}")
    entry["seconds"] = time.monotonic() - started
    return deadlines


def run_alternating(systems: list[System], workloads: list[Workload], deadlines: DeadlineModel | None,
                    args: argparse.Namespace, report: dict[str, Any], save: Any) -> DeadlineModel | None:
    """Every system's server up at once (with ``--enable-metrics``, so SGLang returns each request's
    admission and first-token times); ``args.rounds`` rounds, each running every system once on
    the same trace (order swapped each round), each turn after a cache flush, a warm-up and a speed
    probe (``alternation.py``). Records of all rounds are pooled per rate (the attainment tables),
    each tagged with its round; the rounds' own figures go to ``report["rounds"]``."""
    from contextlib import ExitStack

    from tqdm import tqdm

    from benchmark.online.loadgen import solo_latencies
    from dynasor.evaluation.ports import free_port

    groups = server_groups(systems)
    servers: dict[str, Any] = {}
    for system in systems:
        report["systems"][system.name] = {"system": system.to_json(), "error": None, "windows": []}
    with ExitStack() as stack:
        for group in groups:
            log = args.out_dir / "tmp" / f"online_{args.tag}_{group[0].name}.log"
            started = time.monotonic()
            extra = server_extra(args)
            if "--enable-metrics" not in extra:  # SGLang returns a request's admission and first-token times
                extra.append("--enable-metrics")
            if args.step_logs and not group[0].stock:
                step_log = args.out_dir / "tmp" / f"steps_{args.tag}_{group[0].name}.jsonl"
                step_log.parent.mkdir(parents=True, exist_ok=True)
                step_log.unlink(missing_ok=True)
                extra += ["--dynasor-step-log", str(step_log)]
                for system in group:
                    report["systems"][system.name]["step_log"] = display_path(step_log)
            try:
                server = make_server(group[0], free_port(), log, args.model_path, extra, args.workers or 1)
                stack.enter_context(server)
            except Exception as error:  # the others still alternate; this one says why it is missing
                for system in group:
                    report["systems"][system.name]["error"] = f"{type(error).__name__}: {error}"
                tqdm.write(f"[{group[0].name}] FAILED: {str(error).splitlines()[0] if str(error) else error!r}")
                continue
            info = {"argv": [portable(a) for a in server.argv[1:]], "start_seconds": time.monotonic() - started,
                    "log": display_path(log), "shared_by": [s.name for s in group]}
            tqdm.write(f"[{group[0].name}] server {server.url} up in {info['start_seconds']:.0f}s")
            for system in group:
                servers[system.name] = server
                report["systems"][system.name]["server"] = info
        systems = [s for s in systems if s.name in servers]
        if not systems:
            return deadlines
        mix = parse_levels(args.levels)
        probe_problem = {min(mix): oracle_problems([min(mix)], 1, args.seed)[min(mix)][:1]}
        pooled: dict[str, list[list[dict[str, Any]]]] = {s.name: [[] for _ in workloads] for s in systems}
        for r in range(args.rounds):
            order = round_order(systems, r)
            round_: dict[str, Any] = {"round": r, "order": [s.name for s in order], "systems": {}}
            for system in order:
                server = servers[system.name]
                deadlines = prepare_turn(system, server.url, server.worker_urls, deadlines, args, report)
                probe = asyncio.run(solo_latencies(server.url, system, probe_problem, program_shape(args),
                                                   server.worker_urls != [server.url]))
                turn: dict[str, Any] = {"probe_s": next(iter(probe.values()))[0], "mean_latency_s": {},
                                        "finished": {}, "queue": {}, "queue_samples": {}, "wall_s": {},
                                        "window_started_at": {}}
                for k, workload in enumerate(workloads):
                    key = f"{workload.rate:g}"
                    turn["window_started_at"][key] = time.time()
                    records, wall, samples = asyncio.run(sampled_window(server, system, workload, deadlines, args,
                                                                        f"round {r} {system.name} @ {key}/s"))
                    rows = [{**rec.to_json(), "index": r * len(records) + rec.index, "round": r} for rec in records]
                    pooled[system.name][k] += rows
                    turn["mean_latency_s"][key] = mean_latency(rows)
                    turn["finished"][key] = sum(row["latency"] is not None for row in rows)
                    turn["queue"][key], turn["queue_samples"][key] = queue_summary(samples), samples
                    turn["wall_s"][key] = wall
                if args.bench_serving:
                    turn["untagged_throughput"] = untagged_throughput(server.url, args)
                round_["systems"][system.name] = turn
                tqdm.write(f"[round {r}] {system.name}: probe {turn['probe_s']:.2f}s, mean latency "
                           + ", ".join(f"{k}/s {v:.2f}s" for k, v in turn["mean_latency_s"].items() if v is not None))
            report["rounds"].append(round_)
            for system in systems:
                report["systems"][system.name]["windows"] = [
                    {"workload": {**w.to_json(), "duration": w.duration * (r + 1)}, "rounds": r + 1,
                     "records": pooled[system.name][k]} for k, w in enumerate(workloads)]
            save()
    baseline = args.baseline or systems[0].name
    if baseline not in [s.name for s in systems]:
        return deadlines
    report["alternation"] = alternation_summary(report["rounds"], [s.name for s in systems], baseline,
                                                [w.rate for w in workloads])
    return deadlines


def prepare_turn(system: System, url: str, engine_urls: list[str], deadlines: DeadlineModel | None,
                 args: argparse.Namespace, report: dict[str, Any]) -> DeadlineModel:
    """Before a system's turn: its engines' caches flushed and warmed, the oracle if still needed."""
    from tqdm import tqdm

    from benchmark.online.loadgen import solo_latencies, warmup

    mix = parse_levels(args.levels)
    warm = [make_prompt(p) for p in generate(len(mix), args.seed + 1, dict.fromkeys(mix, 1.0)).problems]
    for engine in engine_urls:
        flush_cache(engine)
        asyncio.run(warmup(engine, warm))
    if deadlines is not None:
        return deadlines
    solo = asyncio.run(solo_latencies(url, system, oracle_problems(sorted(mix), args.oracle_runs, args.seed),
                                      program_shape(args), engine_urls != [url]))
    deadlines = oracle_deadlines({lv: sum(v) / len(v) for lv, v in solo.items()})
    report["oracle"] = {"system": system.name, "runs_per_level": args.oracle_runs,
                        "latencies": {str(k): v for k, v in solo.items()}}
    report["deadlines"] = deadlines.to_json()
    tqdm.write(f"[{system.name}] oracle solo latency per level: "
               + ", ".join(f"L{k} {v:.1f}s" for k, v in deadlines.solo_latency.items()))
    return deadlines


async def sampled_window(server: Any, system: System, workload: Workload, deadlines: DeadlineModel,
                         args: argparse.Namespace, desc: str) -> tuple[Any, float, list[list[float]]]:
    """One window with the server's queue length sampled throughout."""
    from benchmark.online.loadgen import run_window

    async with QueueSampler(server.worker_urls) as sampler:
        records, wall = await run_window(server.url, system, workload, program_shape(args),
                                         limits_for(workload, deadlines, args), desc,
                                         server.worker_urls != [server.url])
    return records, wall, sampler.samples


def finish(report: dict[str, Any], args: argparse.Namespace, out: Path) -> None:
    """Summary, plots and tables from the recorded programs (also the whole of --replay)."""
    deadlines = DeadlineModel.from_json(report["deadlines"])
    summary = summarize(report["systems"], deadlines, args.slo_scale, floats(args.slo_scales), args.target)
    fair_at = fairness_rate(summary, args.fairness_rate)
    summary["fairness_rate"] = fair_at
    report["summary"] = summary
    report["slo"] = {"slo_scale": args.slo_scale, "slo_scales": floats(args.slo_scales), "target": args.target}
    paths = plot(summary, out.with_suffix(""), report["title"], fair_at)
    report["plots"] = [display_path(p) for p in paths]
    out.write_text(json.dumps(report, indent=1))
    print(f"\n{report['title']}")
    print(f"deadlines: {report['deadlines']}")
    print(format_tables(summary))
    if report.get("alternation"):
        print(format_alternation(report["alternation"], report["rounds"]))
        if args.preset == "parity" and "gang-sjf" in report["alternation"]["systems"]:
            parity = out.parent / "live_parity.json"
            parity.write_text(json.dumps(parity_summary(report, "gang-sjf", display_path(out)), indent=1))
            print(f"wrote {parity}")
    else:
        print(f"comparison: {report.get('comparison', SEQUENTIAL)}")
    print(f"\nwrote {out} and {', '.join(p.name for p in paths)}")


def replay(args: argparse.Namespace) -> None:
    """Saved SLO settings unless given again on the command line."""
    report = json.loads(args.replay.read_text())
    saved = report.get("slo") or {}
    for key in ("slo_scale", "target"):
        if key not in args.given and key in saved:
            setattr(args, key, saved[key])
    if "slo_scales" not in args.given and "slo_scales" in saved:
        args.slo_scales = ",".join(f"{s:g}" for s in saved["slo_scales"])
    finish(report, args, args.replay)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.replay:
        return replay(args)
    from tqdm import tqdm

    mix = parse_levels(args.levels)
    systems = parse_systems(args.systems)
    if args.baseline and args.baseline not in [s.name for s in systems]:
        raise SystemExit(f"--baseline {args.baseline} is not one of the systems run")
    workloads = [build_workload(rate, window_seconds(args, rate), args.seed, mix, args.arrivals == "fixed-count",
                                args.arrivals == "scaled") for rate in floats(args.rates)]
    n_programs = sum(len(w.arrivals) for w in workloads)
    deadlines = None
    if args.base_deadline is not None:
        factors = parse_factors(args.difficulty_factors) if args.difficulty_factors else None
        deadlines = fixed_deadlines(args.base_deadline, sorted(mix), factors)
    shape = program_shape(args)
    report: dict[str, Any] = {
        "benchmark": "online", "tag": args.tag, "preset": args.preset, "small_scale": args.preset != "full",
        "title": title(args, n_programs),
        "machine": machine_info(), "model_path": args.model_path, "server_args": server_extra(args),
        "seed": args.seed, "level_mix": {str(k): v / sum(mix.values()) for k, v in sorted(mix.items())},
        "rates": floats(args.rates), "duration": args.duration, "programs_per_rate": args.programs_per_rate,
        "drain_max": args.drain_max,
        "arrivals": args.arrivals,
        "program": {"algorithm": "self-consistency", "cap": args.cap, "detect_at": args.detect_at,
                    "threshold": args.threshold, "launch": args.sc_launch, "sampling_params": shape.sampling_params},
        "workloads": [w.to_json() for w in workloads], "systems_order": [s.name for s in systems],
        "comparison": SEQUENTIAL if args.sequential else f"alternating: {args.rounds} rounds, order swapped each "
                      "round, a speed probe before each turn; ratios paired by round",
        "rounds": [],
        "deadlines": deadlines.to_json() if deadlines else None, "oracle": None, "systems": {}, "complete": False}
    out = args.out_dir / f"online_{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(report["title"])
    print(f"systems: {', '.join(report['systems_order'])}; programs per rate: "
          + ", ".join(f"{w.rate:g}/s: {len(w.arrivals)}" for w in workloads))
    started = time.monotonic()

    def save() -> None:  # partial results survive an interrupted run
        report["elapsed_seconds"] = time.monotonic() - started
        out.write_text(json.dumps(report, indent=1))

    if args.sequential:
        for group in tqdm(server_groups(systems), desc="servers", unit="server"):
            deadlines = run_group(group, workloads, deadlines, args, report, save)
            save()
    else:
        deadlines = run_alternating(systems, workloads, deadlines, args, report, save)
    report["complete"] = True
    if deadlines is None:
        raise SystemExit(f"no system ran, so no oracle deadlines; partial results in {out}")
    finish(report, args, out)
    print(f"total {report['elapsed_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
