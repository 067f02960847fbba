"""SIMULATED scale-out: program placement vs SGLang's data-parallel dispatch on N GPU engines.

    python -m benchmark.sim.scale_out                      # 8 x H100 (Llama-2-7B profile), ~7 min on 2 cores
    python -m benchmark.sim.scale_out --engines 4 --profile a100-llama3-8b

Every figure here is SIMULATED: ``dynasor.sim`` plays N SGLang engines (``--dp-size N``, or N
servers behind SGLang's router), each with its own queue, program table and prefix cache, on the
iteration-time profile of the named card (``dynasor.sim.gpu_profile``). A request is placed when it
reaches the server (``dynasor.sim.dispatch``):

- ``sglang-fcfs``: stock SGLang, untagged requests, round robin (its default dispatch);
- ``gang-sjf+certaindex/round-robin`` and ``/total-requests``: the full Dynasor system on each
  engine, requests dispatched by SGLang's ``round_robin`` / ``total_requests`` methods (a program's
  branches spread over the engines);
- ``gang-sjf+certaindex``: the same with Dynasor's program placement (the live rule,
  ``scheduler.program_placement``: one engine per program, the least loaded at its first request).

Workload: the paper's self-consistency programs (``PAPER_SC``), at rates scaled by N from the
one-engine study's. Reported per rate: mean latency and its ratio to round-robin dispatch (paired
by program, bootstrap 95%), prefix-cache hit rate, prefill tokens per program; per SLO scale the
maximum rate at 90% attainment and its ratios. Writes benchmark/results/sim_scale_out.json and .png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, machine_info
from dynasor.datasets.loaders import default_data_dir
from dynasor.sim.cli import LABEL, load_profile, plot
from dynasor.sim.simulation import ALL_SYSTEMS, DISPATCH_VARIANTS, FULL_SYSTEM
from dynasor.sim.sweep import SweepSpec, sweep
from dynasor.sim.workload import PAPER_SC

ROUND_ROBIN = DISPATCH_VARIANTS["round_robin"].name
SYSTEM_ORDER = ("sglang-fcfs", ROUND_ROBIN, DISPATCH_VARIANTS["total_requests"].name, FULL_SYSTEM)
BASELINES = ("sglang-fcfs", ROUND_ROBIN)
PER_ENGINE_RATES = (0.5, 1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0, 4.0)  # programs/s per engine
SCALES = (2.0, 4.0)


def summarize(body: dict[str, Any], rates: tuple[float, ...]) -> dict[str, Any]:
    """Per system and rate: latency, its paired ratio to round robin, cache hit rate, prefill work."""
    out: dict[str, Any] = {}
    for name in SYSTEM_ORDER:
        rows = []
        for row in body["systems"][name]["rows"]:
            rate = row["rate"]
            cell = body["by_rate"][str(rate)][name]
            rows.append({"rate": rate, "mean_latency": row["mean_latency"],
                         "latency_ratio_vs_round_robin": cell.get(f"latency_ratio_vs_{ROUND_ROBIN}"),
                         "cache_hit_rate": row["cache_hit_rate"],
                         "prefill_tokens_per_program": row["prefill_tokens_per_program"],
                         "attainment": row["attainment"]})
        out[name] = {"rows": rows, "max_rate": {scale: body["by_scale"][scale][name]
                                                for scale in body["by_scale"]}}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="h100-llama2-7b")
    ap.add_argument("--engines", type=int, default=8)
    ap.add_argument("--programs", type=int, default=2000, help="programs per rate point")
    ap.add_argument("--per-engine-rates", default=",".join(map(str, PER_ENGINE_RATES)))
    ap.add_argument("--slo-scales", default=",".join(map(str, SCALES)))
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--out", type=Path, default=RESULTS / "sim_scale_out.json")
    args = ap.parse_args(argv)
    if args.engines < 2:
        ap.error("--engines must be at least 2 (placement needs a choice)")
    rates = tuple(round(float(x) * args.engines, 6) for x in args.per_engine_rates.split(","))
    scales = tuple(float(x) for x in args.slo_scales.split(","))
    cost, limits = load_profile(args.profile, None, args.data_dir or default_data_dir())
    spec = SweepSpec(tuple(PAPER_SC.shapes(args.programs, 0)), PAPER_SC.detect_at, PAPER_SC.max_new_tokens, rates,
                     scales, SYSTEM_ORDER, seed=0, replicates=args.replicates, engines=args.engines,
                     baselines=BASELINES)
    started = time.perf_counter()
    body = sweep(spec, cost, limits, progress=lambda label: print(f"  {label}", flush=True), jobs=args.jobs)
    report = {"benchmark": "sim_scale_out", "label": LABEL, "machine": machine_info(), "engines": args.engines,
              "profile": cost.describe(), "limits": limits.__dict__, "workload": PAPER_SC.describe(),
              "programs_per_rate": args.programs, "rates": list(rates), "slo_scales": list(scales),
              "target_attainment": spec.target, "baselines": list(BASELINES),
              "system_specs": {name: ALL_SYSTEMS[name].describe() for name in SYSTEM_ORDER},
              "wall_seconds": time.perf_counter() - started, **body, "summary": summarize(body, rates)}
    args.out.write_text(json.dumps(report, indent=1))
    plot(report, args.out.with_suffix(".png"))
    print(f"[{LABEL}] {args.engines} x {args.profile}, {args.programs} programs per rate")
    for name, entry in report["summary"].items():
        print(f"  {name}")
        for row in entry["rows"]:
            ratio = row["latency_ratio_vs_round_robin"] or {}
            interval = f"[{ratio['low']:.3f}, {ratio['high']:.3f}]" if ratio else ""
            print(f"    {row['rate']:6.1f}/s  latency {row['mean_latency']:7.2f} s  vs round robin "
                  f"{ratio.get('ratio', float('nan')):.3f}x {interval}  hit rate {row['cache_hit_rate']:.3f}  "
                  f"prefill/program {row['prefill_tokens_per_program']:.0f}")
        for scale, cell in entry["max_rate"].items():
            bound = cell["max_rate"]
            vs = cell.get(f"max_rate_ratio_vs_{ROUND_ROBIN}") or {}
            print(f"    scale {scale}: max rate {bound.get('rate')}  vs round robin {vs.get('ratio')} "
                  f"[{vs.get('low')}, {vs.get('high')}]")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return report


if __name__ == "__main__":
    main()
