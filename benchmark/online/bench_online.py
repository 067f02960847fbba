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
environment, each on its own freshly started server, one after the other (``systems.py``):
stock SGLang fcfs and lpm, Dynasor program-fifo, gang, gang + certaindex, gang-sjf + certaindex.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, add_server_flags, apply_preset, display_path, machine_info
from benchmark.online.report import fairness_rate, format_tables, plot, summarize
from benchmark.online.systems import POLICY_FLAGS, System, make_server, parse_systems
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
from dynasor.runtime.sampling_flags import add_sampling_flags, sampling_params_from_args


@dataclass(frozen=True)
class OnlinePreset:
    """Every size a preset sets (flags the user gives win)."""

    rates: str
    duration: float | None
    programs_per_rate: int | None
    drain_max: float
    cap: int
    detect_at: int
    max_new_tokens: int
    temperature: float
    levels: str
    oracle_runs: int
    slo_scales: str
    arrivals: str
    max_running_requests: int
    slo_scale: float = 2.0
    target: float = 0.9
    sc_launch: str = "staged"
    systems: str = "all"
    overlap_schedule: bool = True  # SGLang's default; False adds --disable-overlap-schedule to every server
    dp_size: int = 1  # SGLang's data-parallel ranks per server (--dp-size)
    workers: int = 1  # servers per system behind SGLang's router (1: no router)


# --quick on 2 CPU cores: 5 servers x ~30 s start + ~25 s of oracle solo runs + 6 systems x (3 windows of one
# 8-program trace, 40 + 23 + 16 s of arrivals, each drained for up to ~10 s) ≈ 13-14 minutes.
PRESETS: dict[str, OnlinePreset] = {
    "quick": OnlinePreset(rates="0.2,0.35,0.5", duration=None, programs_per_rate=8, drain_max=10.0, cap=6,
                          detect_at=3, max_new_tokens=32, temperature=0.3, levels="0:0.5,1:0.5", oracle_runs=2,
                          slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16),
    # --preset cpu-powered: >= 100 programs per rate per system, paired bootstrap intervals; small programs (4
    # branches of <= 24 tokens) so that 2 CPU cores reach the knee at a rate where 100 programs take minutes, not
    # hours. Rates: a pilot with 16-program windows put SGLang fcfs's knee (90% at SLO scale 2) near 0.9/s, but a
    # first powered run at 0.6-1.5/s (online_cpu_overload.json) found every system below 90% at scale 2 at every
    # rate: over 100-program windows the queue builds up where 16 programs did not. So 0.3-0.6/s.
    # 4 systems x 3 rates x 100 programs: about an hour.
    "cpu-powered": OnlinePreset(rates="0.3,0.45,0.6", duration=None, programs_per_rate=100, drain_max=10.0, cap=4,
                                detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5", oracle_runs=3,
                                slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16,
                                systems="sglang-fcfs,sglang-lpm,gang-sjf,gang-sjf+certaindex"),
    # --preset sim-validation: the live run the simulator is checked against (benchmark.sim.validate): every
    # request recorded, the cpu-powered program shape, 24 programs per rate (per-program latencies are compared,
    # so a few windows suffice), rates from light to the knee. About 20 minutes. Without the overlap scheduler,
    # which the simulated engine does not model (and the CPU profile is fitted without).
    "sim-validation": OnlinePreset(rates="0.3,0.45,0.6", duration=None, programs_per_rate=24, drain_max=10.0, cap=4,
                                   detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5",
                                   oracle_runs=2, slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16,
                                   systems="sglang-fcfs,sglang-lpm,gang-sjf,gang-sjf+certaindex",
                                   overlap_schedule=False),
    # --preset dp-affinity: program affinity across data-parallel ranks (issue 13): the full system on
    # --dp-size 2 (one core per rank) with every request left to SGLang's dispatch (run first: the latency
    # ratios are against it), then with its programs kept on one rank; the cpu-powered program shape, one
    # 100-program trace. About 10 minutes.
    "dp-affinity": OnlinePreset(rates="0.6", duration=None, programs_per_rate=100, drain_max=10.0, cap=4,
                                detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5", oracle_runs=2,
                                slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16,
                                systems="gang-sjf+certaindex+sglang-dispatch,gang-sjf+certaindex", dp_size=2),
    # --preset router-affinity: the same comparison across two servers behind SGLang's router (smg): the
    # router's default policy (cache_aware) deciding per request, then Dynasor's routing key (manual policy,
    # one worker per program). About 10 minutes.
    "router-affinity": OnlinePreset(rates="0.6", duration=None, programs_per_rate=100, drain_max=10.0, cap=4,
                                    detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5",
                                    oracle_runs=2, slo_scales="1,1.5,2,3,4", arrivals="scaled",
                                    max_running_requests=16,
                                    systems="gang-sjf+certaindex+sglang-dispatch,gang-sjf+certaindex", workers=2),
    "full": OnlinePreset(rates="0.5,1,2,4,8", duration=300.0, programs_per_rate=None, drain_max=300.0, cap=20,
                         detect_at=5, max_new_tokens=256, temperature=0.8, levels="1:0.25,2:0.25,3:0.25,4:0.25",
                         oracle_runs=5, slo_scales="0.5,1,1.5,2,2.5,3,4", arrivals="poisson", max_running_requests=0),
}


def floats(spec: str) -> list[float]:
    return sorted({float(x) for x in spec.split(",") if x.strip()})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small-scale CPU sizes (defaults below marked quick/full); "
                    "the same as --preset quick")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="sizes and systems: quick (smoke run), cpu-powered "
                    "(>= 100 programs per rate on this CPU, about an hour), dp-affinity (program affinity on "
                    "--dp-size 2), full (GPU scale; the default)")
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
    return (f"{scale}: {model}, SC K={args.cap} (detect {args.detect_at}, {args.sc_launch}), T {args.temperature:g}, "
            f"levels {args.levels}, {len(floats(args.rates))} rates x {window} ({n_programs} programs/system), "
            f"seed {args.seed}")


def program_shape(args: argparse.Namespace) -> Any:
    from benchmark.online.loadgen import ProgramShape

    return ProgramShape(args.cap, args.detect_at, args.threshold, sampling_params_from_args(args),
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

    from dynasor.server_process import free_port

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

    for group in tqdm(server_groups(systems), desc="servers", unit="server"):
        deadlines = run_group(group, workloads, deadlines, args, report, save)
        save()
    report["complete"] = True
    if deadlines is None:
        raise SystemExit(f"no system ran, so no oracle deadlines; partial results in {out}")
    finish(report, args, out)
    print(f"total {report['elapsed_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
