"""Batch benchmark: tokens to accuracy of self-consistency, Dynasor-CoT and Rebase, certaindex
policies against the "even" (same knob for every program) and "length" (stop by generated
length) baselines, each point over several seeds with its spread.

    python -m benchmark.batch.bench_batch --quick           # CPU, default model, small-scale (~6 min)
    python -m benchmark.batch.bench_batch --url URL --dataset gsm8k --n 200 --seeds 0,1,2,3,4 \\
        --caps 5,10,15,20,25,30 --max-new-tokens 256         # full size on a GPU server
    python -m benchmark.batch.bench_batch --from-records benchmark/results/batch_quick.records.json \\
        --thresholds 0.3,0.5,0.7                             # redo the analysis, no server

Method (details in ``offline.py``): per seed and problem ONE live run at the largest knob under
even allocation (SC: ``--caps`` max branches; CoT: ``--cot-budget`` in chunks with a probe after
each; Rebase: width ``--rebase-widths`` with its detection search), then every knob point and every
policy is replayed offline from that recording: paired comparisons, free of sampling noise between
policies. Seed s is the problem-set seed (generator or dataset sample); sampling itself is not
seeded per request (SGLang's batch sampler shares one generator), so seeds are independent runs.
Tokens are generated tokens per program, probe (CoT) and judge (Rebase) tokens included.
``--live-n N`` also runs SC live under StaticThreshold on N problems of the first seed, so real
engine aborts (and their partial tokens) are measured too. Starts its own Dynasor server unless
``--url``. Writes benchmark/results/batch_<tag>.json, .records.json and one PNG per workload.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.batch import analysis, curves
from benchmark.common import RESULTS, Served, add_server_flags, apply_preset, display_path, dynasor_server, machine_info
from dynasor.datasets.labelled import Labelled
from dynasor.datasets.loaders import LOADERS
from dynasor.program_runtime.sampling_flags import add_sampling_flags, sampling_params_from_args

WORKLOADS = ("sc", "cot", "rebase")
# --quick on 2 CPU cores (~40 decode tok/s): server start ~30 s; SC 18 programs x 12 branches x ~25 tokens
# (levels 0-1/2 answer in ~20/~36 tokens) ~ 5.4k tokens, 2.5-4 min; CoT 12 programs ~20 s; Rebase 9 programs
# x 4 paths + judge ~40 s; analysis and plots ~10 s: about 5-7 minutes in all.
SMALL_SCALE = ("SMALL-SCALE quick run: CPU, default 135M model, generated arithmetic, a few problems per seed. "
               "A smoke test of the method and the machinery, not a reproduction of the paper's numbers.")


@dataclass(frozen=True)
class BatchPreset:
    """Every size and knob a preset sets (flags the user gives win)."""

    n: int
    seeds: str
    levels: str
    caps: str
    detect_at: int
    temperature: float
    thresholds: str
    length_quantiles: str
    resamples: int
    max_new_tokens: int
    parts: str
    cot_n: int
    cot_chunk: int
    cot_budget: int
    cot_windows: str
    cot_probe_tokens: int
    rebase_n: int
    rebase_widths: str
    rebase_detect: int
    rebase_thresholds: str
    rebase_max_depth: int
    live_n: int
    deepconf_etas: str
    deepconf_warmup: int
    confidence_window: int


# SC thresholds at 4 samples: H~ >= 0.4 stops on a 2-2 split or better, >= 0.55 on 3-1 or better, >= 0.7 only
# when all 4 agree (at 5 samples, the paper's 0.7 is unanimity too).
PRESETS: dict[str, BatchPreset] = {
    "quick": BatchPreset(n=6, seeds="0,1,2", levels="0:1,1:1,2:1", caps="4,8,12", detect_at=4, temperature=0.3,
                         thresholds="0.4,0.55,0.7", length_quantiles="0.5", resamples=20, max_new_tokens=48,
                         parts="sc,cot,rebase", cot_n=4, cot_chunk=8, cot_budget=48, cot_windows="2,3",
                         cot_probe_tokens=8, rebase_n=3, rebase_widths="4", rebase_detect=2,
                         rebase_thresholds="0.5,0.7,0.9", rebase_max_depth=3, live_n=0,
                         deepconf_etas="0.1,0.9", deepconf_warmup=4, confidence_window=8),
    "full": BatchPreset(n=100, seeds="0,1,2", levels="1:0.25,2:0.25,3:0.25,4:0.25", caps="5,10,15,20,25,30",
                        detect_at=5, temperature=0.8, thresholds="0.4,0.55,0.7", length_quantiles="0.25,0.5,0.75",
                        resamples=20, max_new_tokens=64, parts="sc,cot,rebase", cot_n=30, cot_chunk=32,
                        cot_budget=320, cot_windows="2,3,4", cot_probe_tokens=20, rebase_n=30, rebase_widths="16,32",
                        rebase_detect=8, rebase_thresholds="0.5,0.7,0.9,0.99", rebase_max_depth=8, live_n=20,
                        deepconf_etas="0.1,0.9", deepconf_warmup=5, confidence_window=16),
}


def _ints(spec: str) -> list[int]:
    return [int(x) for x in str(spec).split(",") if x.strip()]


def _floats(spec: str) -> list[float]:
    return [float(x) for x in str(spec).split(",") if x.strip()]


def _per_seed(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """Problems per seed of the recorded SC runs (the largest set, if they differ)."""
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["seed"]] = counts.get(row["seed"], 0) + 1
    return max(counts.values(), default=None)


def problem_set(dataset: str, n: int, seed: int, levels: str, data_dir: str | None) -> tuple[list[Labelled], dict]:
    """Seed s: the generator's set for s, or a seeded sample of n problems of a shared dataset."""
    from dynasor.datasets.arithmetic import generate, parse_levels
    from dynasor.datasets.loaders import load_dataset

    if dataset == "arithmetic":
        generated = generate(n, seed, parse_levels(levels))
        problems, meta = generated.problems, generated.metadata
    else:
        everything = load_dataset(dataset, data_dir)
        problems = random.Random(seed).sample(everything, min(n, len(everything)))
        counts: dict[str, int] = {}
        for p in problems:
            counts[str(p.level)] = counts.get(str(p.level), 0) + 1
        meta = {"dataset": dataset, "seed": seed, "n": len(problems), "of": len(everything), "level_counts": counts}
    return [Labelled.few_shot(p) for p in problems], meta


async def record(url: str, sets: Mapping[int, Sequence[Labelled]], args: argparse.Namespace) -> dict[str, Any]:
    """Every live run of the benchmark against one server; returns the records JSON."""
    from benchmark.batch import record as rec
    from dynasor.client import AsyncDynasorClient
    from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold
    from dynasor.program_runtime.backends import DynasorBackend
    from dynasor.program_runtime.calibrate import run_self_consistency
    from dynasor.rewards import LLMJudge

    params = sampling_params_from_args(args)
    parts = set(args.parts.split(","))
    out: dict[str, Any] = {"sc": [], "cot": [], "rebase": [], "live_sc": None, "wall_seconds": {}, "sampling": params}
    if "sc" in parts:
        cap = max(_ints(args.caps))
        pool = [(s, it) for s, items in sets.items() for it in items]
        run = await run_self_consistency(url, [it for _, it in pool], EvenAllocation(), cap, cap, params,
                                         args.concurrency, f"record sc (cap {cap})")
        out["sc"] = [{"seed": s, **p.to_json()} for (s, _), p in zip(pool, run.profiles)]
        out["wall_seconds"]["sc"] = run.wall_seconds
        if args.live_n:
            first = next(iter(sets.values()))[: args.live_n]
            t = args.live_threshold
            live = await run_self_consistency(url, first, StaticThreshold(t), cap, args.detect_at, params,
                                              args.concurrency, "live sc certaindex")
            out["live_sc"] = {**rec.live_sc_row(f"live certaindex H>={t:g}@{args.detect_at} (cap {cap})",
                                                live.results, [i.gold for i in first], live.wall_seconds),
                              "threshold": t, "detect_at": args.detect_at, "cap": cap,
                              "problem_ids": [i.id for i in first]}
    async with AsyncDynasorClient(url) as client:
        backend = DynasorBackend(client)
        if "cot" in parts:
            pool = [(s, it) for s, items in sets.items() for it in items[: args.cot_n]]
            sampling = {"temperature": 0.6, "top_p": 0.95, "stop": params["stop"]}
            cot_traces, out["wall_seconds"]["cot"] = await rec.record_cot(
                backend, [it for _, it in pool], args.cot_chunk, args.cot_budget, sampling,
                {"max_new_tokens": args.cot_probe_tokens}, args.concurrency)
            out["cot"] = [{"seed": s, **t.to_json()} for (s, _), t in zip(pool, cot_traces)]
        if "rebase" in parts:
            pool = [(s, it) for s, items in sets.items() for it in items[: args.rebase_n]]
            step = {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens, "stop": ["\n"]}
            for width in _ints(args.rebase_widths):
                traces, wall = await rec.record_rebase(backend, LLMJudge(client), [it for _, it in pool], width,
                                                       args.rebase_detect, step, args.rebase_max_depth,
                                                       args.concurrency)
                out["rebase"] += [{"seed": s, **t.to_json()} for (s, _), t in zip(pool, traces)]
                out["wall_seconds"][f"rebase_w{width}"] = wall
    return out


def analyse(records: Mapping[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    workloads: dict[str, dict[str, Any]] = {}
    if records.get("sc"):
        workloads["sc"] = analysis.analyse_sc(records["sc"], _ints(args.caps), args.detect_at, _floats(args.thresholds),
                                              _floats(args.length_quantiles), args.resamples,
                                              analysis.DeepConfGrid(tuple(_floats(args.deepconf_etas)),
                                                                    args.deepconf_warmup, args.confidence_window))
        if records.get("live_sc"):
            workloads["sc"]["live"] = [records["live_sc"]]
    if records.get("cot"):
        workloads["cot"] = analysis.analyse_cot(records["cot"], args.cot_chunk, args.cot_budget,
                                                _ints(args.cot_windows))
    if records.get("rebase"):
        workloads["rebase"] = analysis.analyse_rebase(records["rebase"], _floats(args.rebase_thresholds),
                                                      _floats(args.length_quantiles))
    for name, w in workloads.items():
        w["record_wall_seconds"] = {k: v for k, v in records.get("wall_seconds", {}).items() if k.startswith(name)}
    return workloads


POLICIES = {
    "even": "the same knob for every program (SC cap, CoT token budget without probes, Rebase width)",
    "certaindex": "StaticThreshold at the detection step: SC answer certaindex H~ >= t; CoT w probes in a row "
                  "agree (probe tokens counted); Rebase max judge reward >= t (judge tokens counted)",
    "length": "LengthCap at the detection step: stop if the program has generated >= l tokens "
              "(l = quantiles of the recorded tokens at detection)",
    "deepconf-offline": "DeepConf offline: every branch runs; vote weighted by lowest window confidence among the "
                        "eta share of most confident branches",
    "deepconf-online": "DeepConf online: the first `warmup` branches set the threshold (their 1-eta quantile), the "
                       "engine cuts later branches whose window confidence falls below it; the offline vote",
    "certaindex+online": "DeepConf online plus the certaindex stop at the detection step",
}
TITLES = {"sc": "Self-consistency", "cot": "Dynasor-CoT (probing)", "rebase": "Rebase (LLM judge)"}
KNOB_NAMES = {"sc": "cap = branches per program", "cot": "budget = reasoning tokens", "rebase": "width = paths"}


def print_report(report: Mapping[str, Any]) -> None:
    print(f"\n{report['label']}")
    print(f"seeds {report['seeds']}, {report['problems_per_seed']} problems per seed, dataset {report['dataset']}")
    for name, w in report["workloads"].items():
        print(f"\n== {TITLES[name]}: accuracy and tokens per program over seeds ({w['knob']}) ==")
        print(curves.format_points(w["points"], w["knob"]))
        print(f"\n-- token savings at matched accuracy vs even ({name}, all problems) --")
        print(curves.format_savings(w["savings"], w["knob"]))
        for level, lw in w["by_level"].items():
            print(f"\n-- savings at matched accuracy, level {level} ({lw['programs']} programs) --")
            print(curves.format_savings(lw["savings"], w["knob"]))
        for scope, best in [("all", w.get("best_by_family", {})),
                            *((f"level {lv}", lw.get("best_by_family", {})) for lv, lw in w["by_level"].items())]:
            for family, row in best.items():
                print(f"best {family} ({scope}): {row['policy']} at {w['knob']} {row['knob']}: accuracy "
                      f"{row['accuracy']:.3f}, {row['tokens']:.1f} tokens, saved {100 * row['saved_matched']:+.1f}% "
                      "at matched accuracy")
        for live in w.get("live", []):
            print(f"\nlive: {live['policy']}: accuracy {live['accuracy']:.3f}, {live['tokens']:.1f} tokens/program, "
                  f"{live['stopped']:.0%} stopped, {live['aborted_branches']} branches aborted in the engine")


def write_plots(report: dict[str, Any], out_dir: Path, tag: str) -> None:
    for name, w in report["workloads"].items():
        path = out_dir / f"batch_{tag}_{name}.png"
        panels = {"all": w["points"], **{f"level {lv}": lw["points"] for lv, lw in w["by_level"].items()}}
        live = [{"policy": r["policy"], "tokens": r["tokens"], "accuracy": r["accuracy"]} for r in w.get("live", [])]
        title = f"{TITLES[name]}, {report['dataset']}" + (" [small-scale]" if report["quick"] else "")
        curves.plot(panels, path, title, KNOB_NAMES[name], live)
        w["png"] = display_path(path)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small-scale CPU preset (every unset flag below)")
    ap.add_argument("--tag", help="results are batch_<tag>.*; default quick or full")
    add_server_flags(ap)
    ap.add_argument("--from-records", type=Path, help="analyse a saved records JSON instead of running")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--dataset", default="arithmetic", choices=["arithmetic", *LOADERS],
                    help="generated arithmetic (levels) or a shared dataset, 3-shot boxed-answer prompt")
    ap.add_argument("--data-dir", help="shared datasets folder (default $DYNASOR_DATA or ../shared/data)")
    ap.add_argument("--parts", help="workloads, comma separated: sc,cot,rebase")
    ap.add_argument("--n", type=int, help="problems per seed (SC)")
    ap.add_argument("--seeds", help="comma separated; each is a problem set (>= 3 for a spread)")
    ap.add_argument("--levels", help="arithmetic level mix, e.g. 1:0.5,2:0.5")
    ap.add_argument("--caps", help="SC caps; the largest is recorded, the others replayed")
    ap.add_argument("--detect-at", type=int, help="SC detection step (branches)")
    ap.add_argument("--thresholds", help="SC certaindex thresholds H~ (StaticThreshold)")
    ap.add_argument("--length-quantiles", help="length baseline: ℓ = these quantiles of tokens at detection")
    ap.add_argument("--resamples", type=int, help="random branch subsets per program below the recorded cap")
    ap.add_argument("--deepconf-etas", help="DeepConf kept share eta, comma separated (0.1: DeepConf-low, 0.9: -high)")
    ap.add_argument("--deepconf-warmup", type=int, help="DeepConf-online warm-up branches that set the threshold")
    ap.add_argument("--confidence-window", type=int,
                    help="DeepConf window (tokens) of the lowest group confidence; the paper's 2048 is for 10k+ token "
                         "traces, the presets keep about a third of a branch")
    ap.add_argument("--live-n", type=int, help="SC problems of the first seed also run live under StaticThreshold")
    ap.add_argument("--live-threshold", type=float, default=0.7, help="threshold of the live SC point")
    add_sampling_flags(ap, temperature=None, max_new_tokens=None, temperature_help=(
        "sampling temperature of SC branches, CoT chunks and Rebase steps (quick 0.3: at 0.8 the 135M model's "
        "answers scatter so widely that no program ever agrees with itself; full 0.8)"),
        max_new_tokens_help="per SC branch / Rebase step")
    ap.add_argument("--concurrency", type=int, default=8, help="programs in flight at once")
    ap.add_argument("--cot-n", type=int, help="CoT problems per seed (the first of the SC set)")
    ap.add_argument("--cot-chunk", type=int, help="CoT chunk = probe interval, tokens")
    ap.add_argument("--cot-budget", type=int, help="largest CoT reasoning budget, tokens (a multiple of the chunk)")
    ap.add_argument("--cot-windows", help="probe windows w (exit when w probes agree)")
    ap.add_argument("--cot-probe-tokens", type=int, help="max tokens of a probe")
    ap.add_argument("--rebase-n", type=int, help="Rebase problems per seed")
    ap.add_argument("--rebase-widths", help="Rebase widths (caps) to record, comma separated")
    ap.add_argument("--rebase-detect", type=int, help="Rebase detection width (< every width)")
    ap.add_argument("--rebase-thresholds", help="Rebase max-reward thresholds")
    ap.add_argument("--rebase-max-depth", type=int)
    return ap


def resolve(args: argparse.Namespace, ap: argparse.ArgumentParser) -> argparse.Namespace:
    apply_preset(args, PRESETS["quick" if args.quick else "full"])
    args.tag = args.tag or ("quick" if args.quick else "full")
    if args.detect_at < 1 or args.rebase_detect >= min(_ints(args.rebase_widths)):
        ap.error("need --detect-at >= 1 and --rebase-detect below every Rebase width")
    if args.cot_budget < args.cot_chunk:
        ap.error("--cot-budget must be at least one --cot-chunk")
    unknown = set(args.parts.split(",")) - set(WORKLOADS)
    if unknown:
        ap.error(f"unknown --parts {sorted(unknown)}; known: {','.join(WORKLOADS)}")
    return args


def run_live(args: argparse.Namespace, sets: Mapping[int, Sequence[Labelled]]) -> tuple[dict, dict]:
    from dynasor.srt.cpu_defaults import flag_given

    seeded = flag_given(shlex.split(args.server_args), "--random-seed")
    extra = [] if seeded else ["--random-seed", str(_ints(args.seeds)[0])]
    served: Served
    with dynasor_server(args, f"batch_{args.tag}_server", extra) as served:
        records = asyncio.run(record(served.url, sets, args))
    return records, served.info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = build_parser()
    args = ap.parse_args(argv)
    records: dict[str, Any] = json.loads(args.from_records.read_text()) if args.from_records else {}
    recorded = records.get("record_config", {})
    args.quick = args.quick or bool(recorded.get("quick"))  # the recording's preset unless flags say otherwise
    args = resolve(args, ap)
    seeds = _ints(args.seeds)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    records_path = args.from_records or args.out_dir / f"batch_{args.tag}.records.json"
    started = time.perf_counter()
    if args.from_records:
        server = records.get("server", {})
        seeds = sorted({int(s) for s in records.get("problems", {})} or seeds)
        args.dataset, args.levels = recorded.get("dataset", args.dataset), recorded.get("levels", args.levels)
        args.cot_chunk = recorded.get("cot_chunk", args.cot_chunk)  # budgets are multiples of the recorded chunk
    else:
        built = {s: problem_set(args.dataset, args.n, s, args.levels, args.data_dir) for s in seeds}
        sets = {s: items for s, (items, _) in built.items()}
        records, server = run_live(args, sets)
        records.update(server=server, problems={str(s): meta for s, (_, meta) in built.items()},
                       record_config={"dataset": args.dataset, "levels": args.levels, "cot_chunk": args.cot_chunk,
                                      "cot_budget": args.cot_budget, "caps": args.caps, "quick": bool(args.quick)})
        records_path.write_text(json.dumps(records))
    report: dict[str, Any] = {
        "benchmark": "batch", "tag": args.tag, "quick": bool(args.quick),
        "label": SMALL_SCALE if args.quick else "full-size run (sizes below)",
        "machine": machine_info(), "server": server, "model": args.model_path or "default (embedded SmolLM2-135M)",
        "dataset": args.dataset, "seeds": seeds, "problems_per_seed": _per_seed(records.get("sc", [])) or args.n,
        "problems": records.get("problems", {}),
        "sampling": records.get("sampling"),
        "sizes": {"sc_programs": len(records.get("sc", [])), "cot_programs": len(records.get("cot", [])),
                  "rebase_programs": len(records.get("rebase", []))},
        "method": "one live run per problem at the largest knob, every point replayed offline (paired); "
                  "spread = std (n-1) / min / max over seeds; tokens per program incl. probe and judge tokens",
        "policies": POLICIES, "seed_meaning": "seed s = problem-set seed s; sampling is not seeded per request, "
                                              "so each seed is also an independent sampling run",
        "workloads": analyse(records, args),
        "records": display_path(records_path),
    }
    write_plots(report, args.out_dir, args.tag)
    report["wall_seconds"] = time.perf_counter() - started
    out = args.out_dir / f"batch_{args.tag}.json"
    out.write_text(json.dumps(report, indent=1))
    print_report(report)
    print(f"\nwrote {out}, {records_path.name} and {len(report['workloads'])} PNG(s) in {args.out_dir}")
    return report


if __name__ == "__main__":
    main()
