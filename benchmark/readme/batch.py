"""README rendering of batch results (``bench_batch.py``: tokens to accuracy)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, machine_line, num, pct

TITLES = {"sc": "Self-consistency", "cot": "Dynasor-CoT", "rebase": "Rebase (LLM judge)"}


def _saved(row: Mapping[str, Any]) -> str:
    """Saving at matched accuracy; above the best even accuracy, the lower bound ``bench_batch`` gives."""
    if isinstance(row.get("saved_matched"), (int, float)):
        return pct(row["saved_matched"])
    bound = row.get("saved_at_least")
    if isinstance(bound, (int, float)):
        return f">={pct(bound)}" if bound > 0 else "above even"
    return "–"


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
        lines.append(f"| {scope} | {r['policy']} | {r['knob']} | {num(r['accuracy'], '.3f')} ± "
                     f"{num(r.get('accuracy_std'), '.3f')} | {num(r['tokens'])} ± {num(r.get('tokens_std'))} | "
                     f"{num(r.get('even_tokens_matched'))} | {_saved(r)} | "
                     f"{pct(r.get('saved_same_knob'))} |")
    return lines


def render_batch(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    sizes = data.get("sizes", {})
    out = [f"#### Batch: tokens to accuracy — `{link(path, readme)}`", ""]
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
        best_rows = w.get("best_by_family") or ({"certaindex": w["best"]} if w.get("best") else {})
        for family, best in best_rows.items():
            count = sum(r["family"] == family for r in w.get("savings", []))
            out += ["", f"Best {family} point (of {count}): {best['policy']} at {knob} {best['knob']}: accuracy "
                        f"{num(best['accuracy'], '.3f')}, {pct(best['saved_matched'])} tokens at matched accuracy."]
        levels = [(level, lw["best_by_family"]) for level, lw in w.get("by_level", {}).items()
                  if lw.get("best_by_family")]
        if levels and any(f != "certaindex" for _, b in levels for f in b):
            out += ["", "Best point per level and family (saved at matched accuracy):", "",
                    "| level | family | policy | " + knob + " | accuracy | tokens/program | saved |",
                    "|---|---|---|---|---|---|---|"]
            out += [f"| {level} | {family} | {b['policy']} | {b['knob']} | {num(b['accuracy'], '.3f')} | "
                    f"{num(b['tokens'])} | {pct(b['saved_matched'])} |"
                    for level, best in levels for family, b in best.items()]
        for live in w.get("live", []):
            out += ["", f"Live: {live['policy']}: accuracy {num(live['accuracy'], '.3f')}, "
                        f"{num(live['tokens'])} tokens/program, {live.get('aborted_branches', 0)} branches aborted "
                        f"in the engine ({live.get('n')} problems)."]
        if w.get("png"):
            out += ["", f"![{TITLES.get(name, name)}]({link(w['png'], readme)})"]
        out.append("")
    return out
