"""Rewrite the README's results section from the benchmark JSON, so no result is ever typed by hand.

    python -m benchmark.report                 # benchmark/results/*.json -> README.md section
    python -m benchmark.report --check         # exit 1 if the README section is out of date
    python -m benchmark.report --print         # print the section, write nothing

The section lies between ``<!-- bench-results:start -->`` and ``<!-- bench-results:end -->``; it is
appended at the end of the README when the markers are missing. Batch results are the files with
``"benchmark": "batch"`` (``bench_batch.py``); online results are ``online_*.json`` (``bench_online.py``),
read defensively: whatever of machine, sizes, maximum rates and ratios they hold is shown.
Savings rows are the certaindex and length points at each policy's largest knob (a fixed rule,
so no point is picked for looking good), plus the best certaindex point, labelled as such.
Standard library only: it renders JSON and never imports the benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench-results:start -->", "<!-- bench-results:end -->"
TITLES = {"sc": "Self-consistency", "cot": "Dynasor-CoT", "rebase": "Rebase (LLM judge)"}
BASELINES = ("sglang-fcfs", "sglang-lpm")
ONLINE_DETAILS = ("model_path", "server_args", "seed", "seeds", "sizes", "level_mix", "rates", "duration",
                  "programs_per_rate", "arrivals", "program", "deadlines", "slo")


def load_results(results_dir: Path) -> tuple[list[tuple[Path, dict]], list[tuple[Path, dict]]]:
    """(batch, online) result files, sorted by name; unreadable or unrelated JSON is skipped."""
    batch, online = [], []
    for path in sorted(results_dir.glob("*.json")):
        if path.name.endswith(".records.json"):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if data.get("benchmark") == "batch":
            batch.append((path, data))
        elif path.name.startswith("online_") or str(data.get("benchmark", "")).startswith("online"):
            online.append((path, data))
    return batch, online


def _pct(value: Any) -> str:
    return f"{100 * value:+.1f}%" if isinstance(value, (int, float)) else "–"


def _num(value: Any, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "–"


def _saved(row: Mapping[str, Any]) -> str:
    """Saving at matched accuracy; above the best even accuracy, the lower bound ``bench_batch`` gives."""
    if isinstance(row.get("saved_matched"), (int, float)):
        return _pct(row["saved_matched"])
    bound = row.get("saved_at_least")
    if isinstance(bound, (int, float)):
        return f">={_pct(bound)}" if bound > 0 else "above even"
    return "–"


def _link(path: str | Path, readme: Path) -> str:
    full = Path(path) if Path(path).is_absolute() else ROOT / path
    return Path(os.path.relpath(full, readme.resolve().parent)).as_posix()


def machine_line(machine: Mapping[str, Any] | None) -> str:
    if not machine:
        return "machine: not recorded"
    commit = (machine.get("git_commit") or "")[:10]
    parts = [machine.get("platform"), f"{machine.get('cpu_count')} CPUs" if machine.get("cpu_count") else None,
             f"torch {machine['torch']}" if machine.get("torch") else None,
             f"sglang {machine['sglang']}" if machine.get("sglang") else None,
             f"OMP_NUM_THREADS={machine['omp_num_threads']}" if machine.get("omp_num_threads") else None,
             f"commit {commit}" if commit else None]
    return "machine: " + ", ".join(p for p in parts if p)


def level_mix(problems: Mapping[str, Any]) -> str:
    first: Mapping[str, Any] = next(iter(problems.values()), {}) if problems else {}
    if first.get("levels"):
        return "level mix " + ", ".join(f"L{k}: {v:.0%}" for k, v in first["levels"].items())
    if first.get("level_counts"):
        return "levels " + ", ".join(f"{k}: {v}" for k, v in first["level_counts"].items())
    return "levels: n/a"


def _largest_knob_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    last: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row["policy"] not in last or row["knob"] > last[row["policy"]]["knob"]:
            last[row["policy"]] = row
    return list(last.values())


def _savings_table(rows: Iterable[tuple[str, Mapping[str, Any]]], knob: str) -> list[str]:
    lines = [f"| workload / scope | policy | {knob} | accuracy | tokens/program | even tokens at same accuracy "
             "| saved at matched accuracy | saved vs even, same knob |",
             "|---|---|---|---|---|---|---|---|"]
    for scope, r in rows:
        lines.append(f"| {scope} | {r['policy']} | {r['knob']} | {_num(r['accuracy'], '.3f')} ± "
                     f"{_num(r.get('accuracy_std'), '.3f')} | {_num(r['tokens'])} ± {_num(r.get('tokens_std'))} | "
                     f"{_num(r.get('even_tokens_matched'))} | {_saved(r)} | "
                     f"{_pct(r.get('saved_same_knob'))} |")
    return lines


def render_batch(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    sizes = data.get("sizes", {})
    out = [f"#### Batch: tokens to accuracy — `{_link(path, readme)}`", ""]
    if data.get("label"):
        out += [f"> {data['label']}", ""]
    out += [f"- {machine_line(data.get('machine'))}",
            f"- model: {data.get('model', '?')}; dataset: {data.get('dataset', '?')}, "
            f"{level_mix(data.get('problems', {}))}; seeds {data.get('seeds')}, "
            f"{data.get('problems_per_seed')} problems per seed; programs: SC {sizes.get('sc_programs', 0)}, "
            f"CoT {sizes.get('cot_programs', 0)}, Rebase {sizes.get('rebase_programs', 0)}",
            f"- method: {data.get('method', '?')}"]
    out += [f"- {name}: {text}" for name, text in (data.get("policies") or {}).items()]
    out.append("")
    for name, w in data.get("workloads", {}).items():
        cfg = w.get("config", {})
        knob = w.get("knob", "knob")
        knobs = cfg.get("caps") or cfg.get("budgets") or cfg.get("widths")
        out.append(f"**{TITLES.get(name, name)}** ({knob}s {knobs}, {cfg.get('programs', '?')} programs; "
                   "± is the std over seeds)")
        out.append("")
        rows = [("all", r) for r in _largest_knob_rows(w.get("savings", []))]
        for level, lw in w.get("by_level", {}).items():
            rows += [(f"level {level}", r) for r in _largest_knob_rows(lw.get("savings", []))
                     if r["family"] == "certaindex"]
        out += _savings_table(rows, knob)
        best = w.get("best")
        if best:
            out += ["", f"Best certaindex point (of {sum(r['family'] == 'certaindex' for r in w.get('savings', []))}): "
                        f"{best['policy']} at {knob} {best['knob']}: accuracy {_num(best['accuracy'], '.3f')}, "
                        f"{_pct(best['saved_matched'])} tokens at matched accuracy."]
        for live in w.get("live", []):
            out += ["", f"Live: {live['policy']}: accuracy {_num(live['accuracy'], '.3f')}, "
                        f"{_num(live['tokens'])} tokens/program, {live.get('aborted_branches', 0)} branches aborted "
                        f"in the engine ({live.get('n')} problems)."]
        if w.get("png"):
            out += ["", f"![{TITLES.get(name, name)}]({_link(w['png'], readme)})"]
        out.append("")
    return out


def _systems(data: Mapping[str, Any]) -> Mapping[str, Any]:
    for holder in (data.get("summary"), data):
        if isinstance(holder, Mapping) and isinstance(holder.get("systems"), Mapping):
            return holder["systems"]
    return {}


def _rate(bound: Any) -> str:
    if isinstance(bound, (int, float)):
        return f"{bound:.3f}"
    if not isinstance(bound, Mapping):
        return "–"
    if bound.get("rate") is not None:
        return f"{bound['rate']:.3f}"
    if bound.get("kind") == "above-swept":
        return f"≥ {_num(bound.get('low'), 'g')} (every swept rate)"
    if bound.get("kind") == "below-swept":
        return f"< {_num(bound.get('high'), 'g')} (no swept rate)"
    return "–"


def _ratio(value: Any) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.2f}x"
    if not isinstance(value, Mapping):
        return "–"
    if value.get("ratio") is not None:
        return f"{value['ratio']:.2f}x"
    low, high = value.get("low"), value.get("high")
    if low is not None and high is not None:
        return f"{low:.2f}–{high:.2f}x"
    return f"≥ {low:.2f}x" if low is not None else (f"≤ {high:.2f}x" if high is not None else "–")


def _pngs(path: Path, data: Mapping[str, Any]) -> list[str]:
    for key in ("pngs", "plots", "figures", "png"):
        value = data.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        if isinstance(value, Mapping):
            return [str(v) for v in value.values()]
    return [str(p) for p in sorted(path.parent.glob(path.stem + "*.png"))]


def _windows(system: Mapping[str, Any]) -> dict[float, Mapping[str, Any]]:
    return {w["rate"]: w for w in system.get("windows") or [] if isinstance(w, Mapping) and "rate" in w}


def _rates(systems: Mapping[str, Any]) -> list[float]:
    return sorted({r for s in systems.values() if isinstance(s, Mapping) for r in _windows(s)})


def _online_rate_table(systems: Mapping[str, Any], target: float, scale: Any) -> list[str]:
    """Attainment per rate, maximum sustained rate, its ratios, and what the programs cost."""
    rates = _rates(systems)
    out = [f"Deadline attainment at SLO scale {_num(scale, 'g')} per rate (programs/s); the maximum rate with "
           f"{_num(target * 100, '.0f')}% attainment (interpolated) and its ratio to stock SGLang; tokens, "
           "accuracy and early stops of the finished programs.", "",
           "| system | " + " | ".join(f"att@{r:g}" for r in rates) + " | max rate | "
           + " | ".join(f"vs {b}" for b in BASELINES) + " | tokens/program | accuracy | stopped early |",
           "|---|" + "---|" * (len(rates) + len(BASELINES) + 4)]
    for name, s in systems.items():
        s = s if isinstance(s, Mapping) else {}
        label = s.get("label") or name
        if s.get("error"):
            out.append(f"| {label} | failed: {str(s['error']).splitlines()[0][:80]} |"
                       + " – |" * (len(rates) + len(BASELINES) + 3))
            continue
        by_rate = _windows(s)
        cells = [_num((by_rate[r].get("primary") or {}).get("attainment"), ".2f") if r in by_rate else "–"
                 for r in rates]
        ws = list(by_rate.values())
        finished = sum(w.get("finished") or 0 for w in ws)
        judged = [(w["accuracy"], w.get("finished") or 0) for w in ws if isinstance(w.get("accuracy"), (int, float))]
        n_judged = sum(n for _, n in judged)
        ratios = s.get("rate_ratio_vs") or {}
        tokens = sum(w.get("tokens") or 0 for w in ws) / finished if finished else None
        accuracy = sum(a * n for a, n in judged) / n_judged if n_judged else None
        stopped = sum(w.get("stopped_early") or 0 for w in ws)
        out.append(f"| {label} | " + " | ".join(cells) + f" | {_rate(s.get('max_rate'))} | "
                   + " | ".join(_ratio(ratios.get(b)) for b in BASELINES)
                   + f" | {_num(tokens)} | {_num(accuracy, '.2f')} | {stopped}/{finished} |")
    return out + [""]


def _online_scale_table(systems: Mapping[str, Any], target: float) -> list[str]:
    """The maximum rate with the target attainment at every swept SLO scale, and its ratio to fcfs."""
    scales = sorted({float(k) for s in systems.values() if isinstance(s, Mapping)
                     for k in (s.get("max_rate_by_slo_scale") or {})})
    if not scales:
        return []
    out = [f"Maximum rate (programs/s) with {_num(target * 100, '.0f')}% attainment at every SLO scale, from the "
           "same windows (x = ratio to SGLang fcfs).", "",
           "| system | " + " | ".join(f"scale {sc:g}" for sc in scales) + " |", "|---|" + "---|" * len(scales)]
    for name, s in systems.items():
        if not isinstance(s, Mapping) or s.get("error"):
            continue
        cells = []
        for sc in scales:
            at = (s.get("max_rate_by_slo_scale") or {}).get(f"{sc:g}") or {}
            ratio = (at.get("ratio_vs") or {}).get("sglang-fcfs")
            shown = _ratio(ratio) if ratio else "–"
            cells.append(_rate(at.get("max_rate")) + (f" ({shown})" if shown != "–" else ""))
        out.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    return out + [""]


def _online_level_table(systems: Mapping[str, Any]) -> list[str]:
    """Attainment at the primary SLO scale per difficulty level, over every rate."""
    levels = sorted({lv for s in systems.values() if isinstance(s, Mapping) for w in _windows(s).values()
                     for lv in (w.get("by_level") or {})}, key=lambda v: (len(v), v))
    if not levels:
        return []
    out = ["Per difficulty level, all rates together: programs meeting the deadline / programs.", "",
           "| system | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    for name, s in systems.items():
        if not isinstance(s, Mapping) or s.get("error"):
            continue
        cells = []
        for lv in levels:
            parts = [(w.get("by_level") or {}).get(lv) or {} for w in _windows(s).values()]
            met, n = sum(p.get("met") or 0 for p in parts), sum(p.get("n") or 0 for p in parts)
            cells.append(f"{met}/{n}" if n else "–")
        out.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    return out + [""]


def _online_slo_table(systems: Mapping[str, Any], target: float) -> list[str]:
    """The tightest SLO scale reaching the target at each rate, and how much tighter than SGLang fcfs."""
    rates = _rates(systems)
    out = [f"Tightest SLO scale with {_num(target * 100, '.0f')}% attainment at each rate (x = how much tighter "
           "than SGLang fcfs).", "", "| system | " + " | ".join(f"scale@{r:g}" for r in rates) + " |",
           "|---|" + "---|" * len(rates)]
    for name, s in systems.items():
        if not isinstance(s, Mapping) or s.get("error"):
            continue
        by_rate, tight = _windows(s), (s.get("slo_tightening_vs") or {}).get("sglang-fcfs") or {}
        cells = []
        for r in rates:
            scale = by_rate[r].get("tightest_slo_scale") if r in by_rate else None
            vs = tight.get(f"{r:g}")
            cells.append(_num(scale, ".2f") + (f" ({vs:.2f}x)" if isinstance(vs, (int, float)) else ""))
        out.append(f"| {s.get('label') or name} | " + " | ".join(cells) + " |")
    return out + [""]


def render_online(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    summary: Mapping[str, Any] = data["summary"] if isinstance(data.get("summary"), Mapping) else data
    target = summary.get("target", 0.9)
    out = [f"#### Online: program deadline attainment vs rate — `{_link(path, readme)}`", ""]
    label = data.get("title") or data.get("label") or data.get("scale")
    if label:
        out += [f"> {label}" + (" — partial run (interrupted)" if data.get("complete") is False else ""), ""]
    out.append(f"- {machine_line(data.get('machine'))}")
    for key in ONLINE_DETAILS:
        if data.get(key) is not None:
            out.append(f"- {key}: `{json.dumps(data[key], separators=(', ', ': '))[:240]}`")
    out.append("")
    systems = _systems(data)
    if systems:
        out += _online_rate_table(systems, target, summary.get("slo_scale"))
        out += _online_scale_table(systems, target)
        out += _online_level_table(systems)
        out += _online_slo_table(systems, target)
    else:
        out.append("(no per-system maximum rates in this file)")
    out.append("")
    for png in _pngs(path, data):
        out += [f"![online]({_link(png, readme)})", ""]
    return out


def render(results_dir: Path, readme: Path) -> str:
    batch, online = load_results(results_dir)
    lines = [START, "## Benchmark results", "",
             "_Generated by `python -m benchmark.report` from `benchmark/results/*.json` "
             "(`make bench-quick` runs it); do not edit by hand._", ""]
    if not batch and not online:
        lines += ["No results yet: run `make bench-quick`.", ""]
    for path, data in batch:
        lines += render_batch(path, data, readme)
    for path, data in online:
        lines += render_online(path, data, readme)
    return "\n".join(lines).rstrip() + "\n" + END


def replace_section(text: str, section: str) -> str:
    """``text`` with the marked section replaced, or the section appended if there are no markers."""
    start, end = text.find(START), text.find(END)
    if start != -1 and end > start:
        return text[:start] + section + text[end + len(END):]
    if (start == -1) != (end == -1) or start > end:
        raise ValueError(f"README has mismatched {START} / {END} markers")
    return text.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmark" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the README section is out of date")
    mode.add_argument("--print", action="store_true", help="print the section only")
    args = ap.parse_args(argv)
    section = render(args.results, args.readme)
    if args.print:
        print(section)
        return 0
    current = args.readme.read_text() if args.readme.exists() else ""
    updated = replace_section(current, section)
    if args.check:
        stale = updated != current
        print(f"{args.readme}: results section {'out of date' if stale else 'up to date'}")
        return int(stale)
    args.readme.write_text(updated)
    print(f"wrote the results section of {args.readme} ({len(section.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
