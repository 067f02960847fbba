"""Write the results from the benchmark JSON, so no result is ever typed by hand.

    python -m benchmark.report                 # benchmark/results/*.json -> benchmark/results/README.md
                                               # and the headline table of README.md
    python -m benchmark.report --check         # exit 1 if either is out of date
    python -m benchmark.report --print         # print the full results, write nothing

The full results lie between ``<!-- bench-results:start -->`` and ``<!-- bench-results:end -->`` of
``benchmark/results/README.md``; the top-level README holds one headline table between
``<!-- headline:start -->`` and ``<!-- headline:end -->`` (``readme/headline.py``). A section is
appended at the end of its file when the markers are missing. Batch results are the files with
``"benchmark": "batch"`` (``bench_batch.py``); online results are ``online_*.json`` (``bench_online.py``),
read defensively: whatever of machine, sizes, maximum rates and ratios they hold is shown; then the
alternating A/B runs (``bench_alternate.py``), the scheduler overhead (``bench_overhead.py``),
the burst (``bench_burst.py``), the entropy kernel measured
on a GPU (``bench_entropy.py``), soak runs (``soak/soak.py``) and, under "Simulated at GPU scale", the
simulator's validation, GPU-scale study and CPU profile (``sim/``). The renderers are in ``readme/``.
Savings rows are the certaindex and length points at each policy's largest knob (a fixed rule, so no
point is picked for looking good), plus the best certaindex point, labelled as such. Standard
library only: it renders JSON and never imports the benchmarks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.alternate import render_alternating
from benchmark.readme.batch import render_batch
from benchmark.readme.burst import render_burst
from benchmark.readme.engine import render_chunked, render_entropy_live
from benchmark.readme.headline import render_headline
from benchmark.readme.kernels import render_kernels
from benchmark.readme.kv_bound import render_live_kvbound, render_sim_reasoning
from benchmark.readme.online import render_online
from benchmark.readme.overhead import render_overhead
from benchmark.readme.parity import render_parity, render_untagged_parity
from benchmark.readme.sim import render_sim_profile, render_sim_validation
from benchmark.readme.sim_gpu import HEADING as SIM_HEADING
from benchmark.readme.sim_gpu import render_sim_gpu
from benchmark.readme.sim_scale_out import render_sim_scale_out
from benchmark.readme.soak import render_soak

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench-results:start -->", "<!-- bench-results:end -->"
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"


KINDS = ("parity", "untagged_parity", "live_kvbound", "batch", "online", "alternating", "overhead", "burst",
         "kernels", "entropy_live", "chunked", "soak", "sim_validation", "sim_gpu", "sim_reasoning", "sim_scale_out",
         "sim_profile")
# under one heading, the validation first
SIM_KINDS = ("sim_validation", "sim_gpu", "sim_reasoning", "sim_scale_out", "sim_profile")


def kind_of(path: Path, data: Mapping[str, Any]) -> str | None:
    if data.get("benchmark") == "batch":
        return "batch"
    if data.get("benchmark") == "live_parity":
        return "parity"
    if data.get("benchmark") == "untagged_parity":
        return "untagged_parity"
    if path.name.startswith("online_") or str(data.get("benchmark", "")).startswith("online"):
        return "online"
    if data.get("benchmark") in ("soak", "overhead", "burst", "alternating"):
        return str(data["benchmark"])
    if data.get("device") == "cuda" and isinstance(data.get("kernel"), list):
        return "kernels"
    if data.get("benchmark") == "chunked_decoding":
        return "chunked"
    if data.get("benchmark") == "sim_cpu_profile":
        return "sim_profile"
    if data.get("benchmark") == "sim_validation":
        return "sim_validation"
    if data.get("benchmark") == "live_kvbound":
        return "live_kvbound"
    if data.get("benchmark") in ("sim_gpu", "sim_reasoning", "sim_scale_out"):
        return str(data["benchmark"])
    live = data.get("live")
    if isinstance(live, Mapping) and "paired_ratios" in live:
        return "entropy_live"
    return None


def load_results(results_dir: Path) -> dict[str, list[tuple[Path, dict]]]:
    """Result files by kind (batch, online, kernels on a GPU, soak), sorted by name; unreadable or
    unrelated JSON is skipped."""
    found: dict[str, list[tuple[Path, dict]]] = {kind: [] for kind in KINDS}
    for path in sorted(results_dir.glob("*.json")):
        if path.name.endswith(".records.json"):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        kind = kind_of(path, data) if isinstance(data, dict) else None
        if kind is not None:
            found[kind].append((path, data))
    return found


RENDERERS = {"parity": render_parity, "untagged_parity": render_untagged_parity, "batch": render_batch,
             "online": render_online, "alternating": render_alternating,
             "overhead": render_overhead, "burst": render_burst,
             "kernels": render_kernels, "entropy_live": render_entropy_live, "chunked": render_chunked,
             "soak": render_soak, "sim_profile": render_sim_profile, "sim_validation": render_sim_validation,
             "sim_gpu": render_sim_gpu, "sim_reasoning": render_sim_reasoning, "sim_scale_out": render_sim_scale_out,
             "live_kvbound": render_live_kvbound}


def render(results_dir: Path, readme: Path) -> str:
    found = load_results(results_dir)
    lines = [START, "## Benchmark results", "",
             "_Generated by `python -m benchmark.report` from `benchmark/results/*.json` "
             "(`make bench-quick` runs it); do not edit by hand._", ""]
    if not any(found.values()):
        lines += ["No results yet: run `make bench-quick`.", ""]
    for kind in KINDS:
        if kind == SIM_KINDS[0] and any(found[k] for k in SIM_KINDS):
            lines += SIM_HEADING
        for path, data in found[kind]:
            lines += RENDERERS[kind](path, data, readme)
    return "\n".join(lines).rstrip() + "\n" + END


def render_headline_section(results_dir: Path, readme: Path) -> str:
    lines = [HEADLINE_START, *render_headline(load_results(results_dir), readme)]
    return "\n".join(lines).rstrip() + "\n" + HEADLINE_END


def replace_section(text: str, section: str, start_marker: str = START, end_marker: str = END) -> str:
    """``text`` with the marked section replaced, or the section appended if there are no markers."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start != -1 and end > start:
        return text[:start] + section + text[end + len(end_marker):]
    if (start == -1) != (end == -1) or start > end:
        raise ValueError(f"README has mismatched {start_marker} / {end_marker} markers")
    return text.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmark" / "results")
    ap.add_argument("--readme", type=Path, default=ROOT / "benchmark" / "results" / "README.md",
                    help="the full results file")
    ap.add_argument("--headline-readme", type=Path, default=ROOT / "README.md",
                    help="the README whose headline table is written")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the README section is out of date")
    mode.add_argument("--print", action="store_true", help="print the section only")
    args = ap.parse_args(argv)
    section = render(args.results, args.readme)
    if args.print:
        print(section)
        return 0
    headline = render_headline_section(args.results, args.headline_readme)
    stale = []
    for path, text, markers in ((args.readme, section, (START, END)),
                                (args.headline_readme, headline, (HEADLINE_START, HEADLINE_END))):
        current = path.read_text() if path.exists() else ""
        updated = replace_section(current, text, *markers)
        if args.check:
            print(f"{path}: {'out of date' if updated != current else 'up to date'}")
            stale.append(updated != current)
        elif updated != current:
            path.write_text(updated)
            print(f"wrote {path} ({len(text.splitlines())} generated lines)")
    return int(any(stale))


if __name__ == "__main__":
    sys.exit(main())
