"""SIMULATED serving at GPU scale: Dynasor vs stock SGLang on the measured A100 and H100 profiles.

    python -m benchmark.sim.gpu_scale                       # 4 studies x 2000 programs (~25 min, 2 cores)
    python -m benchmark.sim.gpu_scale --only h100-llama2-7b/paper-sc      # one sweep (~6 min)

Every figure here is SIMULATED: ``dynasor.sim`` plays one SGLang engine on an iteration-time
profile built from measured operator times (``dynasor.sim.gpu_profile``; attention and the LM head
are modelled, the assumptions travel in the JSON). Studies, per profile:

- ``paper-sc``: the paper's self-consistency setting (``dynasor.sim.workload.PAPER_SC``: 16
  branches, detection at 5, stated prompt and output lengths and stop share);
- ``paper-sc+azure-conv``: the same programs beside untagged traffic replayed from the Azure
  conversation trace (``../shared/data/traces/azure_conv.csv``), time-scaled to
  ``BACKGROUND_RATE`` requests per second.

Systems: stock ``sglang-fcfs`` and ``sglang-lpm``; the full Dynasor system (``gang-sjf`` order,
certaindex stop, staged launch, program-aware eviction, starvation guard); the same with deferred
launch; and one ablation per mechanism (the full system with it taken out,
``dynasor.sim.simulation.ABLATIONS``). Each system plays the same programs at every rate.
Reported per study: the maximum program rate at 90% deadline attainment at each SLO scale and its
ratio to ``fcfs`` and ``lpm`` (paired-bootstrap 95% intervals), and at a fixed rate (the highest
swept rate at which ``fcfs`` attains 90% at the loosest scale) the tightest SLO scale each system
meets and how much tighter it is than the baselines'. Writes benchmark/results/sim_gpu.json and
sim_gpu.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, machine_info
from benchmark.sim.attainment_grid import plot_attainment_grid
from dynasor.datasets.loaders import default_data_dir
from dynasor.sim.background import BACKGROUND_MAX_NEW_TOKENS, load_trace, rescaled
from dynasor.sim.cli import LABEL, load_profile
from dynasor.sim.simulation import ABLATIONS, ALL_SYSTEMS, FULL_SYSTEM
from dynasor.sim.sweep import BASELINES, SweepSpec, sweep
from dynasor.sim.workload import PAPER_SC

PROFILES = ("a100-llama3-8b", "h100-llama2-7b")
WORKLOADS = ("paper-sc", "paper-sc+azure-conv")
RATES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5)
SCALES = (2.0, 4.0)
BACKGROUND_RATE = 1.0  # requests/s of the conversation trace beside the programs
DEFERRED = "gang-sjf+certaindex/deferred"
SYSTEM_ORDER = (*BASELINES, FULL_SYSTEM, DEFERRED, *(s.name for s in ABLATIONS.values()))


def study(profile: str, workload: str, programs: int, rates: tuple[float, ...], scales: tuple[float, ...],
          replicates: int, jobs: int, data_dir: Path) -> dict[str, Any]:
    cost, limits = load_profile(profile, None, data_dir)
    background: tuple = ()
    described: dict[str, Any] = PAPER_SC.describe()
    if workload.endswith("+azure-conv"):
        trace_path = data_dir / "traces" / "azure_conv.csv"
        background = tuple(rescaled(load_trace(trace_path), BACKGROUND_RATE))
        described = {**described, "background": {
            "trace": "traces/azure_conv.csv", "rate_per_s": BACKGROUND_RATE, "tagged": False,
            "max_new_tokens_stated": BACKGROUND_MAX_NEW_TOKENS,
            "window": "requests arriving while the programs arrive (until the last program's arrival)"}}
    spec = SweepSpec(tuple(PAPER_SC.shapes(programs, 0)), PAPER_SC.detect_at, PAPER_SC.max_new_tokens, rates,
                     scales, SYSTEM_ORDER, seed=0, replicates=replicates, background=background)
    body = sweep(spec, cost, limits, progress=lambda label: print(f"  {profile}/{workload}: {label}", flush=True),
                 jobs=jobs)
    return {"profile": cost.describe(), "limits": limits.__dict__, "workload": described, "programs": programs,
            "rates": list(rates), "slo_scales": list(scales), **body, "summary": summarize(body, rates, scales)}


def summarize(body: dict[str, Any], rates: tuple[float, ...], scales: tuple[float, ...]) -> dict[str, Any]:
    """Per system: max rate and its ratios at every scale; the tightest SLO and its ratios at the
    fixed rate."""
    loosest = str(max(scales))
    fcfs_rows = body["systems"]["sglang-fcfs"]["rows"]
    served = [row["rate"] for row in fcfs_rows if row["attainment"][loosest] >= 0.9]
    fixed = max(served) if served else min(rates)
    out: dict[str, Any] = {"fixed_rate": fixed, "systems": {}}
    for name in SYSTEM_ORDER:
        entry: dict[str, Any] = {"by_scale": {}}
        for scale in scales:
            cell = body["by_scale"][str(scale)][name]
            entry["by_scale"][str(scale)] = {"max_rate": cell["max_rate"],
                                             "max_rate_ratio_vs_fcfs": cell["max_rate_ratio_vs_fcfs"],
                                             "max_rate_ratio_vs_lpm": cell["max_rate_ratio_vs_lpm"]}
        slo = body["by_rate"][str(fixed)][name]
        entry.update(tightest_scale=slo["tightest_scale"], slo_ratio_vs_fcfs=slo["slo_ratio_vs_fcfs"],
                     slo_ratio_vs_lpm=slo["slo_ratio_vs_lpm"])
        out["systems"][name] = entry
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    plot_attainment_grid({key: {name: body["systems"][name] for name in SYSTEM_ORDER}
                          for key, body in report["studies"].items()}, report["slo_scales"], path,
                         [s.name for s in ABLATIONS.values()])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--programs", type=int, default=2000, help="programs per rate point")
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--slo-scales", default=",".join(map(str, SCALES)))
    ap.add_argument("--only", help="one study, e.g. h100-llama2-7b/paper-sc")
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--out", type=Path, default=RESULTS / "sim_gpu.json")
    args = ap.parse_args(argv)
    keys = [f"{p}/{w}" for p in PROFILES for w in WORKLOADS]
    if args.only and args.only not in keys:
        ap.error(f"--only must be one of {keys}")
    rates = tuple(float(x) for x in args.rates.split(","))
    scales = tuple(float(x) for x in args.slo_scales.split(","))
    data_dir = args.data_dir or default_data_dir()
    started = time.perf_counter()
    studies = {}
    for key in [args.only] if args.only else keys:
        profile, workload = key.split("/")
        studies[key] = study(profile, workload, args.programs, rates, scales, args.replicates, args.jobs, data_dir)
        print(f"[{LABEL}] {key}: {studies[key]['wall_seconds']:.0f} s wall, "
              f"{studies[key]['simulated_per_wall_second']:.0f} simulated s per wall s", flush=True)
    report = {"benchmark": "sim_gpu", "label": LABEL, "machine": machine_info(), "programs_per_rate": args.programs,
              "rates": list(rates), "slo_scales": list(scales), "target_attainment": 0.9,
              "systems": {name: ALL_SYSTEMS[name].describe() for name in SYSTEM_ORDER},
              "ablations": {mechanism: spec.name for mechanism, spec in ABLATIONS.items()},
              "wall_seconds": time.perf_counter() - started, "studies": studies}
    args.out.write_text(json.dumps(report, indent=1))
    plot(report, args.out.with_suffix(".png"))
    for key, body in studies.items():
        summary = body["summary"]
        print(f"[{LABEL}] {key} (fixed rate {summary['fixed_rate']}/s for the SLO column)")
        for name, entry in summary["systems"].items():
            cells = []
            for scale, cell in entry["by_scale"].items():
                r = cell["max_rate_ratio_vs_fcfs"]
                cells.append(f"scale {scale}: {_ratio(r)}")
            print(f"  {name:<34} max-rate vs fcfs {'; '.join(cells)}; SLO vs fcfs {_ratio(entry['slo_ratio_vs_fcfs'])}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return report


def _ratio(cell: dict[str, Any]) -> str:
    if cell.get("ratio") is None:
        return "undefined"
    bounds = f" [{cell['low']:.2f}, {cell['high']:.2f}]" if cell.get("low") is not None else " [no interval]"
    return f"{cell['ratio']:.2f}x{bounds}"


if __name__ == "__main__":
    main()
