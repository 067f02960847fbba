"""Does the simulator predict the live CPU engine? Replay a recorded online run and compare.

    python -m benchmark.online.bench_online --preset sim-validation     # live, records every request
    python -m benchmark.sim.validate                                    # replay + compare (seconds)

Input: an online benchmark result (``online_sim_validation.json``) whose records carry every
request of every program (prompt tokens, completion tokens, aborted). Each system's every rate
window is replayed in the simulated engine with the CPU profile (``sim_cpu_profile.json``) and the
live server's limits: the same arrival times, prompts, branch lengths and stop decisions, the
same queue policy (the real ``dynasor.scheduler`` code for program policies) and launch order.
The preset's servers run without SGLang's overlap scheduler, which the simulated engine does not
model (the report says which the live server ran).
Every prompt starts with its level's few-shot examples, which the radix cache shares across
programs: they are one cache segment (``few_shot_headers``, measured with the server's tokenizer).
Reported: per-program latency error |sim − live| / live (median and P90 over programs that
finished live, also per system), and attainment per rate at the live run's own deadlines, live and
simulated side by side (target: median error <= 10%, attainment within 0.1 at every rate). With
``--repeat`` (a second live run of some systems, ``--tag sim_validation_repeat``) it also reports
the noise floor: how far the same live configuration lands from itself, and the simulator's error
against that second run.
Writes benchmark/results/sim_validation.json (and a PNG of the attainment curves).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, display_path
from dynasor.core.stats import quantile
from dynasor.sim.fit import load_linear
from dynasor.sim.programs import ScProgram
from dynasor.sim.request import EngineLimits
from dynasor.sim.simulation import SYSTEMS, SystemSpec, Transport, run

LABEL = "SIMULATED vs live"
NO_TRANSPORT = Transport()


def few_shot_headers(levels: Sequence[int]) -> dict[int, tuple[str, int]]:
    """Per level, the token prefix every prompt of that level shares (its few-shot examples), as
    the server's tokenizer splits it: the longest common prefix of generated prompts' ids, over
    all levels with the same examples (those share one cache segment)."""
    from transformers import AutoTokenizer

    from dynasor.datasets.arithmetic import generate, make_prompt
    from dynasor.model import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    groups: dict[str, list[int]] = {}
    prompts: dict[str, list[list[int]]] = {}
    for level in sorted(set(levels)):
        texts = [make_prompt(p) for p in generate(3, 0, {level: 1.0}).problems]
        shots = texts[0].rsplit("Q: ", 1)[0]
        groups.setdefault(shots, []).append(level)
        prompts.setdefault(shots, []).extend(tokenizer(t)["input_ids"] for t in texts)
    out: dict[int, tuple[str, int]] = {}
    for index, (shots, members) in enumerate(groups.items()):
        ids = prompts[shots]
        common = next((i for i in range(min(map(len, ids))) if len({row[i] for row in ids}) > 1), min(map(len, ids)))
        out.update(dict.fromkeys(members, (f"shots-{index}", common)))
    return out


def programs_of(records: Sequence[Mapping[str, Any]], cap: int, detect_at: int, max_new_tokens: int,
                headers: Mapping[int, tuple[str, int]] | None = None) -> list[ScProgram]:
    """The window's programs as the simulator replays them. A branch never launched (a staged
    program that stopped) gets the mean length of the others: it is never submitted."""
    out = []
    for r in records:
        requests = r.get("requests") or []
        if not requests:
            continue
        lengths = [int(row[1]) for row in requests]
        mean = round(sum(lengths) / len(lengths)) or 1
        branches = tuple(lengths + [mean] * (cap - len(lengths)))[:cap]
        level = int(r.get("level") or 0)
        out.append(ScProgram(f"p{r['index']}", float(r["arrival"]), int(requests[0][0]), branches, max_new_tokens,
                             detect_at, bool(r.get("stopped_early")), level, (headers or {}).get(level)))
    return out


def deadline(record: Mapping[str, Any], deadlines: Mapping[str, Any], scale: float) -> float:
    factors = deadlines.get("factors") or {}
    return scale * float(deadlines["base_deadline"]) * float(factors.get(str(record.get("level") or 0), 1.0))


def sim_system(entry: Mapping[str, Any], launch: str) -> SystemSpec:
    """The simulated system of a live one: its policy and stop, the launch it ran, and on a
    ``--dp-size`` server SGLang's round-robin dispatch if Dynasor's placement was turned off."""
    live = entry["system"]
    name = live["name"]
    if name not in SYSTEMS and live["schedule_policy"] in ("fcfs", "lpm"):  # Dynasor's server, SGLang's order
        name = f"sglang-{live['schedule_policy']}"
    elif name not in SYSTEMS:  # a variant of a Dynasor system (e.g. its placement left to SGLang)
        name = f"{live['schedule_policy']}+certaindex" if live.get("certaindex") else live["schedule_policy"]
    base = SYSTEMS[name]
    flags = live.get("flags") or []
    dispatch = "round_robin" if "--dynasor-dp-placement" in flags and "sglang" in flags else base.dispatch
    return SystemSpec(base.name, base.policy, base.certaindex, launch if base.certaindex else "together",
                      base.program_eviction, dispatch=dispatch)


def compare_window(records: Sequence[Mapping[str, Any]], system: SystemSpec, live: Mapping[str, Any],
                   limits: EngineLimits, cost: Any, scale: float,
                   headers: Mapping[int, tuple[str, int]] | None,
                   transport: Transport = NO_TRANSPORT, engines: int = 1) -> dict[str, Any]:
    program = live["program"]
    programs = programs_of(records, program["cap"], program["detect_at"], program["sampling_params"]["max_new_tokens"],
                           headers)
    result = run(programs, system, cost, limits, transport=transport, engines=engines)
    sim_latency = {r.program.program_id: r.latency for r in result.runs}
    errors, pairs = [], []
    met_live = met_sim = 0
    for r in records:
        d = deadline(r, live["deadlines"], scale)
        sim = sim_latency.get(f"p{r['index']}")
        met_live += r.get("latency") is not None and r["latency"] <= d
        met_sim += sim is not None and sim <= d
        if r.get("latency") and sim is not None and not r.get("error"):
            errors.append(abs(sim - r["latency"]) / r["latency"])
            pairs.append((r["latency"], sim))
    n = len(records)
    return {"programs": n, "attainment_live": met_live / n, "attainment_sim": met_sim / n, "errors": errors,
            "latency_pairs": pairs, "simulated_seconds": result.simulated_seconds,
            "mean_latency_live": statistics.fmean(a for a, _ in pairs) if pairs else None,
            "mean_latency_sim": statistics.fmean(b for _, b in pairs) if pairs else None}


def validate(live: Mapping[str, Any], cost: Any, limits: EngineLimits, scale: float,
             headers: Mapping[int, tuple[str, int]] | None = None,
             transport: Transport = NO_TRANSPORT, engines: int = 1) -> dict[str, Any]:
    per_system: dict[str, Any] = {}
    all_errors: list[float] = []
    for name, entry in live["systems"].items():
        system = sim_system(entry, live["program"].get("launch", "staged"))
        launch = system.launch
        rows, errors = [], []
        for window in entry["windows"]:
            row = compare_window(window["records"], system, live, limits, cost, scale, headers, transport, engines)
            errors += row.pop("errors")
            rows.append({"rate": window["workload"]["rate"], **row,
                         "median_error": statistics.median(e for a, b in row["latency_pairs"] for e in [abs(b - a) / a])
                         if row["latency_pairs"] else None})
        all_errors += errors
        per_system[name] = {"launch": launch, "dispatch": system.dispatch if engines > 1 else None, "rates": rows,
                            "median_latency_error": statistics.median(errors) if errors else None,
                            "p90_latency_error": quantile(errors, 0.9) if errors else None,
                            "max_attainment_gap": max(abs(r["attainment_live"] - r["attainment_sim"]) for r in rows)}
    return {"median_latency_error": statistics.median(all_errors), "p90_latency_error": quantile(all_errors, 0.9),
            "programs_compared": len(all_errors), "slo_scale": scale, "systems": per_system,
            "max_attainment_gap": max(s["max_attainment_gap"] for s in per_system.values())}


def latency_ratios(systems: Mapping[str, Any]) -> dict[str, list[dict[str, float]]]:
    """Each system's mean program latency over the first system's, per rate, live and simulated:
    does the simulator predict the comparison a live run makes?"""
    names = list(systems)
    out: dict[str, list[dict[str, float]]] = {}
    for name in names[1:]:
        rows = []
        for ours, first in zip(systems[name]["rates"], systems[names[0]]["rates"]):
            if ours["mean_latency_live"] and first["mean_latency_live"]:
                rows.append({"rate": ours["rate"], "live": ours["mean_latency_live"] / first["mean_latency_live"],
                             "sim": ours["mean_latency_sim"] / first["mean_latency_sim"]})
        out[f"{name} / {names[0]}"] = rows
    return out


def live_vs_live(live: Mapping[str, Any], repeat: Mapping[str, Any], scale: float) -> dict[str, Any]:
    """The same configuration run twice: per-program |repeat − run| / run over the systems and rates
    both hold (the same programs at the same arrival times), and the attainment gap at the first
    run's deadlines. What a single live run can be predicted to: the simulator cannot be expected
    to come closer to a run than the run comes to itself."""
    errors: list[float] = []
    gaps: list[float] = []
    systems = [name for name in live["systems"] if name in repeat["systems"]]
    for name in systems:
        for first, second in zip(live["systems"][name]["windows"], repeat["systems"][name]["windows"]):
            again = {r["index"]: r.get("latency") for r in second["records"]}
            met = [0, 0]
            for r in first["records"]:
                d = deadline(r, live["deadlines"], scale)
                other = again.get(r["index"])
                met[0] += r.get("latency") is not None and r["latency"] <= d
                met[1] += other is not None and other <= d
                if r.get("latency") and other is not None:
                    errors.append(abs(other - r["latency"]) / r["latency"])
            gaps.append(abs(met[0] - met[1]) / max(1, len(first["records"])))
    if not errors:
        return {"systems": systems, "programs_compared": 0}
    return {"systems": systems, "programs_compared": len(errors), "median_latency_error": statistics.median(errors),
            "p90_latency_error": quantile(errors, 0.9), "max_attainment_gap": max(gaps),
            "solo_latency": {"run": live["deadlines"].get("solo_latency"),
                             "repeat": repeat["deadlines"].get("solo_latency")}}


def first_round(alternating: Mapping[str, Any]) -> dict[str, Any]:
    """An alternating run seen as one live run: its first round's records only."""
    systems = {name: {**entry, "windows": [{**w, "records": [r for r in w["records"] if r.get("round") == 0]}
                                           for w in entry.get("windows", [])]}
               for name, entry in alternating["systems"].items() if entry.get("windows")}
    return {**alternating, "systems": systems}


def format_layers(report: Mapping[str, Any]) -> str:
    agreement, cost = report["decision_agreement"], report["step_cost_median_error"]
    repeats = report["median_latency_error_vs_live_median"]
    lines = [f"[{LABEL}, layered] decision agreement on the live clock (target >= {agreement['target']}):"]
    lines += [f"  {name} ({entry['policy']}): {entry['agreement']:.3f} over {entry['steps']} steps"
              for name, entry in agreement["by_system"].items() if entry["agreement"] is not None]
    lines.append(f"  step-cost median error {cost['median_error']} (prefill {cost['prefill']['median_error']}, "
                 f"decode {cost['decode']['median_error']}; target <= {cost['target']})")
    lines.append(f"  latency vs the live median of the rounds: median error {repeats['median']}, "
                 f"live repeat spread {repeats['live_repeat_spread']}")
    return "\n".join(lines)


def layered(live: Mapping[str, Any], cost: Any, limits: EngineLimits, headers: Mapping[int, tuple[str, int]],
            transport: Transport) -> dict[str, Any]:
    """The three layers of ``benchmark.sim.layers`` over an alternating live run (``bench_online``'s
    default: rounds of the same trace, step logs of the Dynasor servers)."""
    from benchmark.common import ROOT
    from benchmark.sim.layers import decision_agreement, repeat_layer, step_cost_error, steps_in, timed_steps
    from dynasor.srt.step_log import read_step_log

    overlap = "--disable-overlap-schedule" not in (live.get("server_args") or [])
    max_new = live["program"]["sampling_params"]["max_new_tokens"]
    agreement: dict[str, Any] = {}
    repeats: dict[str, Any] = {}
    all_steps: list[dict[str, Any]] = []
    for name, entry in live["systems"].items():
        if not entry.get("windows"):
            continue
        system = sim_system(entry, live["program"].get("launch", "staged"))
        log = ROOT / entry["step_log"] if entry.get("step_log") else None
        rows = read_step_log(str(log)) if log is not None and log.exists() else []
        windows: list[dict[str, Any]] = []
        live_latency: dict[str, dict[int, list[float]]] = {}
        sim_latency: dict[str, dict[int, list[float]]] = {}
        for window in entry["windows"]:
            key = f"{window['workload']['rate']:g}"
            by_round: dict[int, list[dict[str, Any]]] = {}
            for record in window["records"]:
                by_round.setdefault(int(record["round"]), []).append(record)
            for r, records in sorted(by_round.items()):
                n = len(records)
                records = [{**rec, "index": rec["index"] - r * n} for rec in records]
                for rec in records:
                    if rec.get("latency") is not None and not rec.get("error"):
                        live_latency.setdefault(key, {}).setdefault(rec["index"], []).append(rec["latency"])
                programs = programs_of(records, live["program"]["cap"], live["program"]["detect_at"], max_new,
                                       headers)
                result = run(programs, system, cost, limits, transport=transport)
                for run_ in result.runs:
                    if run_.latency is not None:
                        sim_latency.setdefault(key, {}).setdefault(int(run_.program.program_id[1:]), []).append(
                            run_.latency)
                turn = live["rounds"][r]["systems"][name]
                if rows and key in turn.get("window_started_at", {}):
                    start = turn["window_started_at"][key]
                    steps = timed_steps(steps_in(rows, start, start + turn["wall_s"][key]), overlap)
                    all_steps += steps
                    windows.append({"round": r, "rate": window["workload"]["rate"], **decision_agreement(
                        records, steps, system.policy, limits, cost, headers, max_new)})
        if windows:
            matched, total = sum(w["matched"] for w in windows), sum(w["steps"] for w in windows)
            agreement[name] = {"policy": system.policy.value, "agreement": matched / total if total else None,
                               "steps": total, "windows": windows}
        repeats[name] = {key: repeat_layer(live_latency.get(key, {}), sim_latency.get(key, {}))
                         for key in live_latency}
    layer3 = [row for per_rate in repeats.values() for row in per_rate.values() if row.get("programs")]
    return {
        "decision_agreement": {"target": 0.95, "live_clock": True, "overlap_scheduler": overlap,
                               "by_system": agreement,
                               "min": min((a["agreement"] for a in agreement.values() if a["agreement"] is not None),
                                          default=None)},
        "step_cost_median_error": {"target": 0.10, **step_cost_error(all_steps, cost)},
        "median_latency_error_vs_live_median": {
            "by_system": repeats,
            "median": statistics.median(row["median_latency_error_vs_live_median"] for row in layer3)
            if layer3 else None,
            "live_repeat_spread": statistics.median(row["live_repeat_spread"] for row in layer3) if layer3 else None},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--live", type=Path, default=RESULTS / "online_sim_validation.json")
    ap.add_argument("--profile-json", type=Path, default=RESULTS / "sim_cpu_profile.json")
    ap.add_argument("--kv-tokens", type=int, default=32768,
                    help="the live server's KV pool (its log: max_total_num_tokens)")
    ap.add_argument("--chunked-prefill", type=int, default=4096, help="the live server's chunked_prefill_size")
    ap.add_argument("--slo-scale", type=float, default=2.0)
    ap.add_argument("--repeat", type=Path, default=RESULTS / "online_sim_validation_repeat.json",
                    help="a second live run of some of the same systems (the noise floor; skipped if missing)")
    ap.add_argument("--no-repeat", action="store_true", help="no second live run to compare with")
    ap.add_argument("--engines", type=int,
                    help="simulated engines (default: the live server's --dp-size, else 1)")
    ap.add_argument("--no-shared-header", action="store_true",
                    help="ablation: treat every program's prompt as unshared (no few-shot header segment)")
    ap.add_argument("--alternating", type=Path, help="an alternating live run (bench_online's default, e.g. "
                    "live_parity.json): validate in the three layers of benchmark.sim.layers (decision agreement on "
                    "the live clock, step cost, latency against the median of the rounds) besides the old error")
    ap.add_argument("--out", type=Path, default=RESULTS / "sim_validation.json")
    args = ap.parse_args(argv)
    alternating = json.loads(args.alternating.read_text()) if args.alternating else None
    live = first_round(alternating) if alternating else json.loads(args.live.read_text())
    cost = load_linear(args.profile_json)
    server_args = live.get("server_args") or []
    flag = "--max-running-requests"
    running = int(server_args[server_args.index(flag) + 1]) if flag in server_args else 16
    engines = args.engines or (int(server_args[server_args.index("--dp-size") + 1]) if "--dp-size" in server_args
                               else 1)
    limits = EngineLimits(max_running_requests=running, kv_tokens=args.kv_tokens,
                          chunked_prefill_size=args.chunked_prefill)
    profile = json.loads(args.profile_json.read_text())
    measured = (profile.get("transport") or {})
    transport = Transport(arrival_s=measured.get("round_trip_outside_loop_s") or 0.0,
                          spacing_s=measured.get("spacing_s_stated") or 0.0)
    levels = [int(r.get("level") or 0) for e in live["systems"].values() for w in e["windows"] for r in w["records"]]
    headers = {} if args.no_shared_header else few_shot_headers(levels)
    # the model has no overlap scheduler (results processed one step late, host work beside the forward)
    live_overlap = "--disable-overlap-schedule" not in server_args
    profile_temperature = (profile.get("sweep") or {}).get("temperature", 0.0)
    if profile_temperature != live["program"]["sampling_params"].get("temperature"):
        print(f"warning: the profile was swept at temperature {profile_temperature}, the live programs sampled at "
              f"{live['program']['sampling_params'].get('temperature')} (sampling costs time per step on a CPU)")
    if live_overlap:
        print("warning: the live server ran SGLang's overlap scheduler, which the simulated engine does not model")
    report = {"benchmark": "sim_validation", "label": LABEL,
              "live": display_path(args.alternating or args.live),
              "live_overlap_scheduler": live_overlap,
              "profile": cost.describe(), "profile_json": display_path(args.profile_json),
              "profile_fit": profile.get("fit"), "limits": limits.__dict__, "transport": transport.__dict__,
              "shared_header_tokens": {str(k): v[1] for k, v in headers.items()}, "engines": engines,
              **validate(live, cost, limits, args.slo_scale, headers, transport, engines)}
    report["latency_ratios"] = latency_ratios(report["systems"])
    if alternating:
        report["median_latency_error_note"] = "against the first alternating round alone (kept for continuity)"
        report.update(layered(alternating, cost, limits, headers, transport))
        print(format_layers(report))
    elif args.repeat and args.repeat.exists() and not args.no_repeat:
        repeat = json.loads(args.repeat.read_text())
        again = validate(repeat, cost, limits, args.slo_scale, headers, transport)
        report["repeat"] = {"live": display_path(args.repeat),
                            "live_vs_live": live_vs_live(live, repeat, args.slo_scale),
                            "sim_vs_repeat": {k: again[k] for k in ("median_latency_error", "p90_latency_error",
                                                                    "programs_compared", "max_attainment_gap")}}
        floor = report["repeat"]["live_vs_live"]
        print(f"[noise floor] the same live configuration run twice ({', '.join(floor['systems'])}): median "
              f"|repeat - run| / run {floor.get('median_latency_error', float('nan')):.3f}, P90 "
              f"{floor.get('p90_latency_error', float('nan')):.3f}; simulator vs the repeat run: median "
              f"{again['median_latency_error']:.3f}, P90 {again['p90_latency_error']:.3f}")
    args.out.write_text(json.dumps(report, indent=1))
    print(f"[{LABEL}] median latency error {report['median_latency_error']:.3f}, P90 {report['p90_latency_error']:.3f} "
          f"over {report['programs_compared']} programs; max attainment gap {report['max_attainment_gap']:.3f}")
    for name, entry in report["systems"].items():
        for row in entry["rates"]:
            print(f"  {name:<22} rate {row['rate']:<5} attainment live {row['attainment_live']:.2f} "
                  f"sim {row['attainment_sim']:.2f}  median error {row['median_error']}")
    for name, rows in report["latency_ratios"].items():
        for row in rows:
            print(f"  mean latency {name}: rate {row['rate']}: live {row['live']:.3f}x, simulated {row['sim']:.3f}x")
    print(f"wrote {display_path(args.out)}")
    return report


if __name__ == "__main__":
    main()
