"""``dynasor simulate``: attainment-vs-rate sweeps of serving systems in the simulated engine.

    dynasor simulate --profile h100-llama2-7b --workload paper-sc --programs 2000 --rates 2,4,6,8,10
    dynasor simulate --profile h100-llama2-7b --engines 8 --rates 8,16,24 \\
        --systems sglang-fcfs,gang-sjf+certaindex,gang-sjf+certaindex/round-robin
    dynasor simulate --profile cpu-smollm2 --records benchmark/results/batch_deepconf.records.json \\
        --rates 0.1,0.2,0.3 --max-running 16 --kv-tokens 16384

Every figure it writes is SIMULATED (a model of one SGLang engine, ``dynasor.sim.engine``, or of
``--engines`` N of them behind a dispatch, ``dynasor.sim.dispatch``, on an
iteration-time profile); the JSON carries the profile's and the workload's assumptions. Profiles:
``cpu-smollm2`` (fitted on this machine by ``python -m benchmark.sim.profile_cpu``; or
``--profile-json``), ``a100-llama3-8b`` and ``h100-llama2-7b`` (measured operator times in the
shared data, ``gpu_profile``). Engine limits default to SGLang's for the profile's card.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dynasor.sim.background import load_trace, rescaled
from dynasor.sim.fit import load_linear
from dynasor.sim.gpu_profile import GPU_SPECS, load_gpu_profile
from dynasor.sim.request import EngineLimits
from dynasor.sim.simulation import ABLATIONS, ALL_SYSTEMS, SYSTEMS
from dynasor.sim.stated_workloads import stated_workloads
from dynasor.sim.step_cost import StepCost
from dynasor.sim.sweep import SweepSpec, sweep
from dynasor.sim.workload import programs_from_records

REPO = Path(__file__).resolve().parents[3]
CPU_PROFILE = REPO / "benchmark" / "results" / "sim_cpu_profile.json"
LABEL = "SIMULATED"


def load_profile(name: str, profile_json: Path | None, data_dir: Path | None) -> tuple[StepCost, EngineLimits]:
    if name == "cpu-smollm2":
        path = profile_json or CPU_PROFILE
        if not path.exists():
            raise SystemExit(f"{path} not found: run `python -m benchmark.sim.profile_cpu` first (or --profile-json)")
        return load_linear(path), EngineLimits()
    if name in GPU_SPECS:
        from dynasor.datasets.loaders import default_data_dir

        folder = (data_dir or default_data_dir()) / "gpu-profiles" / name
        gpu = GPU_SPECS[name]
        # SGLang's defaults on an 80 GB card: chunked prefill 8192, running cap from the KV pool
        running = min(max(int(gpu.kv_tokens / 8192 * 512), 2048), 4096, gpu.kv_tokens // 2)
        return load_gpu_profile(folder, name, gpu), EngineLimits(max_running_requests=running, kv_tokens=gpu.kv_tokens,
                                                                 chunked_prefill_size=8192)
    raise SystemExit(f"unknown profile {name!r}; known: cpu-smollm2, {', '.join(GPU_SPECS)}")


def _floats(spec: str) -> tuple[float, ...]:
    return tuple(float(x) for x in spec.split(",") if x.strip())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="dynasor simulate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu-smollm2")
    ap.add_argument("--profile-json", type=Path, help="a fitted linear profile (benchmark.sim.profile_cpu output)")
    ap.add_argument("--data-dir", type=Path, help="shared data folder (default $DYNASOR_DATA or ../shared/data)")
    ap.add_argument("--workload", default="paper-sc", choices=sorted(stated_workloads()))
    ap.add_argument("--records", type=Path, help="batch benchmark records instead of --workload's distributions")
    ap.add_argument("--threshold", type=float, default=0.7, help="certaindex threshold for --records")
    ap.add_argument("--prompt-tokens", type=int, default=200, help="prompt length of --records programs")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="max_new_tokens of --records programs")
    ap.add_argument("--detect-at", type=int, help="detection step (default: the workload's)")
    ap.add_argument("--programs", type=int, default=500)
    ap.add_argument("--rates", default="1,2,4,8", help="programs per second")
    ap.add_argument("--slo-scales", default="1.5,3")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"known: {','.join(ALL_SYSTEMS)}")
    ap.add_argument("--ablations", action="store_true",
                    help="add the full system with each mechanism taken out (gang, SJF, starvation guard, "
                         "certaindex, program-aware eviction)")
    ap.add_argument("--background", type=Path,
                    help="untagged traffic from a request trace (e.g. ../shared/data/traces/azure_conv.csv)")
    ap.add_argument("--background-rate", type=float, help="time-scale --background to this many requests/s")
    ap.add_argument("--jobs", type=int, default=2, help="runs played in parallel processes")
    ap.add_argument("--engines", type=int, default=1,
                    help="data-parallel ranks (or servers behind a router): Dynasor systems place programs, stock "
                         "SGLang dispatches round robin")
    ap.add_argument("--max-running", type=int, help="override the running-request cap")
    ap.add_argument("--kv-tokens", type=int, help="override the KV pool (tokens)")
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("simulate.json"))
    ap.add_argument("--png", type=Path, help="attainment-vs-rate plot (default: next to --out)")
    args = ap.parse_args(argv)
    if args.engines < 1:
        ap.error(f"--engines must be >= 1, got {args.engines}")
    cost, limits = load_profile(args.profile, args.profile_json, args.data_dir)
    overrides = {k: v for k, v in (("max_running_requests", args.max_running), ("kv_tokens", args.kv_tokens)) if v}
    limits = EngineLimits(**{**limits.__dict__, **overrides})
    if args.records:  # recorded programs, repeated in order up to --programs
        detect_at, max_new_tokens = args.detect_at or 4, args.max_new_tokens
        shapes, described = programs_from_records(args.records, args.threshold, detect_at, args.prompt_tokens,
                                                  max_new_tokens)
        shapes = (shapes * (args.programs // len(shapes) + 1))[: args.programs]
    else:
        workload = stated_workloads()[args.workload]
        detect_at, max_new_tokens = args.detect_at or workload.detect_at, workload.max_new_tokens
        shapes, described = workload.shapes(args.programs, args.seed), workload.describe()
    systems = args.systems.split(",") + ([s.name for s in ABLATIONS.values()] if args.ablations else [])
    unknown = set(systems) - set(ALL_SYSTEMS)
    if unknown:
        ap.error(f"unknown --systems {sorted(unknown)}; known: {','.join(ALL_SYSTEMS)}")
    background = tuple(load_trace(args.background)) if args.background else ()
    if background and args.background_rate:
        background = tuple(rescaled(background, args.background_rate))
    if background:
        described = {**described, "background": {"trace": args.background.name, "requests_in_trace": len(background),
                                                 "rate": args.background_rate or "the trace's own"}}
    spec = SweepSpec(tuple(shapes), detect_at, max_new_tokens, _floats(args.rates), _floats(args.slo_scales),
                     tuple(dict.fromkeys(systems)), args.seed, replicates=args.replicates, background=background,
                     engines=args.engines)
    from tqdm import tqdm

    with tqdm(total=len(spec.systems) * len(spec.rates), desc="simulate", unit="run") as bar:
        def advance(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update()

        body = sweep(spec, cost, limits, progress=advance, jobs=args.jobs)
    report = {"label": LABEL, "profile": cost.describe(), "limits": limits.__dict__, "workload": described,
              "programs": len(shapes), "rates": list(spec.rates), "slo_scales": list(spec.scales),
              "detect_at": detect_at, "seed": args.seed, "engines": args.engines, **body}
    args.out.write_text(json.dumps(report, indent=1))
    png = args.png or args.out.with_suffix(".png")
    plot(report, png)
    print(f"[{LABEL}] {args.profile}: {len(shapes)} programs x {len(spec.rates)} rates x {len(spec.systems)} systems, "
          f"{body['simulated_per_wall_second']:.0f} simulated s per wall s")
    for scale, entry in report["by_scale"].items():
        for name, row in entry.items():
            ratio = row.get("max_rate_ratio_vs_best_stock") or row.get("max_rate_ratio_vs_fcfs") or {}
            print(f"  scale {scale} {name:<22} max rate {row['max_rate']}  vs {ratio.get('baseline', 'sglang-fcfs')} "
                  f"{ratio.get('ratio')} [{ratio.get('low')}, {ratio.get('high')}]")
    print(f"wrote {args.out} and {png}")
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = report["slo_scales"]
    fig, axes = plt.subplots(1, len(scales), figsize=(5 * len(scales), 4), squeeze=False)
    for ax, scale in zip(axes[0], scales):
        engines = int(report.get("engines") or 1)
        card = report["profile"].get("name") if engines == 1 else f"{engines} x {report['profile'].get('name')}"
        draw_attainment(ax, report["systems"], scale, f"{card}, SLO scale {scale:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_attainment(ax: Any, systems: dict[str, Any], scale: float, title: str,
                    dotted: Collection[str] = ()) -> None:
    """One axis: each system's attainment vs rate at ``scale`` (``dotted``: drawn as dotted lines)."""
    for name, entry in systems.items():
        rows = entry["rows"]
        ax.plot([r["rate"] for r in rows], [r["attainment"][str(scale)] for r in rows],
                ":" if name in dotted else "-", marker="o", markersize=3, label=name)
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_title(f"{LABEL}: {title}", fontsize=9)
    ax.set_xlabel("program rate (programs/s)")
    ax.set_ylabel("deadline attainment")
    ax.grid(alpha=0.3)
