"""Two systems on one seeded trace, alternated round by round, to tell a policy from machine drift.

    python -m benchmark.online.bench_alternate                      # dynasor-fcfs vs gang-sjf, 3 pairs
    python -m benchmark.online.bench_alternate --systems sglang-fcfs,gang-sjf --pairs 4
    python -m benchmark.online.bench_alternate --dp-size 2 --rate 0.6 --tag dp_affinity \
        --systems gang-sjf+certaindex+sglang-dispatch,gang-sjf+certaindex

On this 2-core machine the forward pass of one unchanged server drifts by tens of percent between
runs minutes apart, and near saturation a program's latency follows it (queueing multiplies it).
One run per system cannot tell a policy from that drift. Here each round runs both systems back to
back on the same trace (``bench_online``, fresh server each, the first system first in even rounds,
second first in odd ones), Dynasor servers with ``--dynasor-step-log``. Per run: mean program
latency, and from the step log the decode steps, mean decode batch, forward seconds and median
forward time per decode step at fixed batch sizes (the machine's speed at that time). The ratio
second / first of mean latency and of forward time is paired by round (95% bootstrap over rounds),
and the Pearson correlation across all runs says how much of the latency the machine's speed
explains. Writes ``benchmark/results/alternating_<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, machine_info
from benchmark.online import bench_online
from benchmark.online.systems import parse_systems
from benchmark.scheduler.bench_burst import step_summary
from dynasor.evaluation.paired_ratio import paired_ratio_interval
from dynasor.srt.cpu_defaults import flag_value
from dynasor.srt.step_log import read_step_log

BATCH_SIZES = (4, 8, 16)


def step_figures(path: Path, max_running: int) -> dict[str, Any]:
    """What the scheduler's step log says of one run: the burst benchmark's step summary, plus the
    machine's speed at the time (median forward time per decode step at fixed batch sizes)."""
    steps = [s for s in read_step_log(str(path)) if "mode" in s]
    decode = [s for s in steps if s["mode"] == "decode"]
    by_batch = {b: [s["run_s"] for s in decode if s["batch_size"] == b] for b in BATCH_SIZES}
    summary = step_summary(steps, max_running)
    return {**summary, "forward_s": summary["run_s"], "decode_tokens": sum(s["batch_size"] for s in decode),
            "median_decode_ms_by_batch": {str(b): statistics.median(v) * 1000 if v else None
                                          for b, v in by_batch.items()}}


def run_once(system: str, tag: str, work: Path, common: list[str], step_log: bool) -> dict[str, Any]:
    log = work / f"steps_{tag}.jsonl"
    extra = ["--server-args", f"--dynasor-step-log {log}"] if step_log else []
    bench_online.main([*common, "--systems", system, "--tag", tag, "--out-dir", str(work), *extra])
    data = json.loads((work / f"online_{tag}.json").read_text())
    window = next(iter(data["systems"].values()))["windows"][0]
    latencies = [r["latency"] for r in window["records"] if r["latency"] is not None]
    out: dict[str, Any] = {"mean_latency_s": statistics.mean(latencies), "p50_latency_s": statistics.median(latencies),
                           "finished": len(latencies), "programs": len(window["records"])}
    if step_log:
        out.update(step_figures(log, int(flag_value(data["server_args"], "--max-running-requests") or 0)))
    return out


def pearson(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sx, sy = sum((x - mx) ** 2 for x in xs) ** 0.5, sum((y - my) ** 2 for y in ys) ** 0.5
    return sxy / (sx * sy) if sx and sy else None


def summarize(names: list[str], rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    first, second = names
    out: dict[str, Any] = {"ratio": f"{second} / {first}"}
    for key in ("mean_latency_s", "forward_s"):
        if all(key in r[first] and key in r[second] for r in rounds):
            out[key] = paired_ratio_interval([r[second][key] for r in rounds], [r[first][key] for r in rounds])
    runs = [run for r in rounds for run in r.values() if "median_decode_ms_by_batch" in run]
    speed = [run["median_decode_ms_by_batch"]["4"] for run in runs]
    if runs and all(isinstance(v, (int, float)) for v in speed):
        out["latency_vs_decode_ms_at_batch_4"] = {
            "pearson": pearson(speed, [run["mean_latency_s"] for run in runs]), "runs": len(runs)}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="dynasor-fcfs,gang-sjf", help="two systems, comma separated")
    ap.add_argument("--pairs", type=int, default=3, help="rounds; each runs both systems")
    ap.add_argument("--rate", type=float, default=0.45, help="programs/s")
    ap.add_argument("--programs", type=int, default=40, help="programs per run (one seeded trace)")
    ap.add_argument("--base-deadline", type=float, default=3.0, help="seconds (fixed: no oracle runs)")
    ap.add_argument("--dp-size", type=int, default=1, help="data-parallel ranks per server")
    ap.add_argument("--workers", type=int, default=1, help="servers per system behind SGLang's router")
    ap.add_argument("--tag", default="gang_sjf")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    systems = parse_systems(args.systems)
    if len(systems) != 2:
        ap.error("--systems takes exactly two")
    names = [s.name for s in systems]
    common = ["--preset", "cpu-powered", "--rates", f"{args.rate:g}", "--programs-per-rate", str(args.programs),
              "--base-deadline", f"{args.base_deadline:g}", "--difficulty-factors", "0:1,1:1",
              "--dp-size", str(args.dp_size), "--workers", str(args.workers)]
    report: dict[str, Any] = {"benchmark": "alternating", "machine": machine_info(), "systems": names,
                              "rate": args.rate, "programs": args.programs, "pairs": args.pairs,
                              "dp_size": args.dp_size, "workers": args.workers,
                              "workload": "cpu-powered program shape (bench_online --preset cpu-powered)",
                              "rounds": [], "complete": False}
    out = args.out_dir / f"alternating_{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dynasor-alternate-") as tmp:
        for i in range(args.pairs):
            order = systems if i % 2 == 0 else systems[::-1]
            round_: dict[str, Any] = {}
            for system in order:
                round_[system.name] = run_once(system.name, f"{system.name}_{i}", Path(tmp), common,
                                               step_log=not system.stock)
                round_[system.name]["order"] = order.index(system)
            report["rounds"].append(round_)
            out.write_text(json.dumps(report, indent=1))
    report["summary"] = summarize(names, report["rounds"])
    report["complete"] = True
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["summary"], indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
