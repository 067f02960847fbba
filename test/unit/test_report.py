"""README results section: rendering from small batch / online JSON fixtures, marker handling
(appended when missing, replaced in place, idempotent), --check and --print."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import report

ROOT = Path(__file__).resolve().parents[2]
MACHINE = {"platform": "Linux-x86_64", "cpu_count": 2, "torch": "2.13.0+cpu", "sglang": "0.5.23",
           "omp_num_threads": "1", "git_commit": "0123456789abcdef"}


def row(policy, family, knob, acc, tokens, matched, saved, same, at_least=None):
    return {"policy": policy, "family": family, "knob": knob, "accuracy": acc, "accuracy_std": 0.05,
            "tokens": tokens, "tokens_std": 3.0, "extra_tokens": 0.0, "stopped": 0.5,
            "even_tokens_matched": matched, "saved_matched": saved, "saved_at_least": at_least,
            "even_accuracy_same_knob": acc, "saved_same_knob": same}


BATCH = {
    "benchmark": "batch", "tag": "quick", "quick": True, "label": "SMALL-SCALE quick run: test fixture",
    "machine": MACHINE, "model": "default (embedded SmolLM2-135M)", "dataset": "arithmetic", "seeds": [0, 1, 2],
    "problems_per_seed": 8, "problems": {"0": {"levels": {"1": 0.5, "2": 0.5}}},
    "sizes": {"sc_programs": 24, "cot_programs": 12, "rebase_programs": 0}, "method": "replayed offline",
    "workloads": {"sc": {
        "knob": "cap", "config": {"caps": [4, 8], "programs": 24},
        "savings": [row("certaindex H>=0.7@4", "certaindex", 4, 0.3, 100.0, 100.0, 0.0, 0.0),
                    row("certaindex H>=0.7@4", "certaindex", 8, 0.4, 150.0, 200.0, 0.25, 0.3),
                    row("length >=80 tok@4", "length", 8, 0.2, 90.0, None, None, 0.55),
                    row("certaindex H>=0.4@4", "certaindex", 8, 0.5, 120.0, None, None, 0.4, at_least=0.4)],
        "by_level": {"2": {"programs": 12, "savings": [
            row("certaindex H>=0.7@4", "certaindex", 8, 0.1, 140.0, None, None, 0.3)]}},
        "best": row("certaindex H>=0.7@4", "certaindex", 8, 0.4, 150.0, 200.0, 0.25, 0.3),
        "live": [{"policy": "live certaindex", "accuracy": 0.25, "tokens": 180.0, "aborted_branches": 7, "n": 4}],
        "png": "benchmark/results/batch_quick_sc.png"}},
}


def window(rate, attained, levels, tightest, tokens, finished, accuracy, stopped):
    return {"rate": rate, "primary": {"attainment": attained}, "tightest_slo_scale": tightest, "tokens": tokens,
            "finished": finished, "accuracy": accuracy, "stopped_early": stopped,
            "by_level": {lv: {"n": n, "met": met} for lv, (met, n) in levels.items()}}


ONLINE = {
    "benchmark": "online", "title": "SMALL-SCALE (--quick, CPU): test", "machine": MACHINE, "seed": 0,
    "rates": [0.15, 0.3], "complete": True, "plots": ["benchmark/results/online_quick_rate.png"],
    "summary": {"target": 0.9, "slo_scale": 3.0, "systems": {
        "sglang-fcfs": {"label": "SGLang fcfs", "error": None, "max_rate": {"rate": 0.2, "low": 0.2, "high": 0.2,
                                                                            "kind": "interpolated"},
                        "rate_ratio_vs": {"sglang-fcfs": {"ratio": 1.0, "low": 1.0, "high": 1.0}},
                        "slo_tightening_vs": {"sglang-fcfs": {"0.15": 1.0, "0.3": 1.0}},
                        "max_rate_by_slo_scale": {"2": {
                            "max_rate": {"rate": None, "low": 0.0, "high": 0.15, "kind": "below-swept"},
                            "ratio_vs": {"sglang-fcfs": {"ratio": None, "low": None, "high": None}}}},
                        "windows": [window(0.15, 1.0, {"0": (2, 2), "1": (2, 2)}, 2.0, 400, 4, 0.5, 0),
                                    window(0.3, 0.5, {"0": (2, 3), "1": (1, 3)}, 4.0, 600, 6, 0.5, 0)]},
        "dynasor-full": {"label": "Dynasor gang-sjf + certaindex", "error": None,
                         "max_rate": {"rate": None, "low": 0.3, "high": None, "kind": "above-swept"},
                         "rate_ratio_vs": {"sglang-fcfs": {"ratio": None, "low": 1.5, "high": None}},
                         "slo_tightening_vs": {"sglang-fcfs": {"0.15": 1.25, "0.3": 2.0}},
                         "max_rate_by_slo_scale": {"2": {
                             "max_rate": {"rate": 0.2, "low": 0.2, "high": 0.2, "kind": "interpolated"},
                             "ratio_vs": {"sglang-fcfs": {"ratio": None, "low": 1.33, "high": None}}}},
                         "windows": [window(0.15, 1.0, {"0": (2, 2), "1": (2, 2)}, 1.6, 300, 4, 0.75, 2),
                                     window(0.3, 1.0, {"0": (3, 3), "1": (3, 3)}, 2.0, 450, 6, 0.5, 3)]},
        "program-fifo": {"label": "program-fifo", "error": "server died\ntraceback", "windows": []}}},
}


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "benchmark" / "results"
    d.mkdir(parents=True)
    (d / "batch_quick.json").write_text(json.dumps(BATCH))
    (d / "batch_quick.records.json").write_text(json.dumps({"benchmark": "batch", "sc": []}))
    (d / "batch_quick_sc.json").write_text(json.dumps({"benchmark": "batch_quick_sc", "rows": []}))
    (d / "online_quick.json").write_text(json.dumps(ONLINE))
    (d / "broken.json").write_text("{not json")
    return d


def test_load_results_picks_batch_and_online(results):
    found = report.load_results(results)
    batch, online = found["batch"], found["online"]
    assert [p.name for p, _ in batch] == ["batch_quick.json"] and [p.name for p, _ in online] == ["online_quick.json"]


def test_render_batch_and_online(results):
    text = report.render(results, ROOT / "README.md")
    assert text.startswith(report.START) and text.endswith(report.END)
    assert "SMALL-SCALE quick run: test fixture" in text and "2 CPUs" in text and "commit 0123456789" in text
    assert "seeds [0, 1, 2], 8 problems per seed" in text and "L1: 50%" in text
    # rows at each policy's largest knob only, per-level certaindex rows, the best point, the live point
    assert "| all | certaindex H>=0.7@4 | 8 | 0.400 ± 0.050 | 150.0 ± 3.0 | 200.0 | +25.0% | +30.0% |" in text
    assert "| certaindex H>=0.7@4 | 4 |" not in text
    assert "| all | certaindex H>=0.4@4 | 8 | 0.500 ± 0.050 | 120.0 ± 3.0 | – | >=+40.0% | +40.0% |" in text
    assert "| level 2 | certaindex H>=0.7@4 | 8 |" in text and "length" in text
    assert "Best certaindex point (of 3)" in text and "7 branches aborted" in text
    assert "(benchmark/results/batch_quick_sc.png)" in text
    # online: max rate, bounds, ratios, failures, plots
    assert "Deadline attainment at SLO scale 3 per rate" in text
    assert "| SGLang fcfs | 1.00 | 0.50 | 0.200 | 1.00x | – | 100.0 | 0.50 | 0/10 |" in text
    assert ("| Dynasor gang-sjf + certaindex | 1.00 | 1.00 | ≥ 0.3 (every swept rate) | ≥ 1.50x | – | 75.0 | 0.60 "
            "| 5/10 |") in text
    assert "| SGLang fcfs | 4/5 | 3/5 |" in text and "| Dynasor gang-sjf + certaindex | 5/5 | 5/5 |" in text
    assert "| Dynasor gang-sjf + certaindex | 1.60 (1.25x) | 2.00 (2.00x) |" in text
    assert "| SGLang fcfs | < 0.15 (no swept rate) |" in text
    assert "| Dynasor gang-sjf + certaindex | 0.200 (≥ 1.33x) |" in text
    assert "failed: server died" in text and "(benchmark/results/online_quick_rate.png)" in text
    assert "> SMALL-SCALE (--quick, CPU): test" in text


def test_render_without_results(tmp_path):
    text = report.render(tmp_path, tmp_path / "README.md")
    assert "No results yet" in text


def test_render_online_missing_keys(tmp_path):
    lines = report.render_online(tmp_path / "online_x.json", {"benchmark": "online"}, tmp_path / "README.md")
    assert "machine: not recorded" in "\n".join(lines) and "no per-system maximum rates" in "\n".join(lines)


def test_replace_section_appends_then_replaces():
    section = f"{report.START}\nnew\n{report.END}"
    appended = report.replace_section("# Title\n\ntext\n", section)
    assert appended == f"# Title\n\ntext\n\n{section}\n"
    replaced = report.replace_section(appended.replace("new", "old"), section)
    assert replaced == appended
    assert report.replace_section(appended, section) == appended
    with pytest.raises(ValueError):
        report.replace_section(f"x {report.END} y {report.START}", section)


def test_main_writes_checks_and_prints(results, tmp_path, capsys):
    readme = tmp_path / "results.md"
    readme.write_text("# Project\n\nintro\n")
    top = tmp_path / "README.md"
    top.write_text(f"# Top\n\n{report.HEADLINE_START}\nold\n{report.HEADLINE_END}\n\nmore\n")
    args = ["--results", str(results), "--readme", str(readme), "--headline-readme", str(top)]
    assert report.main(args + ["--check"]) == 1
    assert report.main(args) == 0
    text = readme.read_text()
    assert text.startswith("# Project\n\nintro\n\n" + report.START) and text.count(report.START) == 1
    headline = top.read_text()
    assert headline.startswith("# Top\n\n" + report.HEADLINE_START) and headline.endswith("\n\nmore\n")
    assert "old" not in headline and "results.md" not in headline
    assert report.main(args + ["--check"]) == 0
    assert report.main(args) == 0 and readme.read_text() == text and top.read_text() == headline  # idempotent
    capsys.readouterr()
    assert report.main(args + ["--print"]) == 0 and "## Benchmark results" in capsys.readouterr().out


def test_script_help():
    proc = subprocess.run([sys.executable, "-m", "benchmark.report", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "--check" in proc.stdout


def _cell(value, lo, hi, baseline="sglang-routing-key"):
    return {"value": value, "lo": lo, "hi": hi, "baseline": baseline, "excludes_1": lo > 1.0 or hi < 1.0}


def test_the_kv_bound_study_and_a_live_pilot_render_against_the_best_stock_baseline(tmp_path):
    cap = {"waiting_step_share": 0.8, "mean_kv_use": 0.9, "retractions": 12}
    head = {"system": "full", "max_rate_slo_scale": 4.0, "overload_rate": 0.03,
            "max_rate_ratio_vs_best_stock": _cell(1.14, 1.12, 1.15), "slo_ratio_vs_best_stock": _cell(1.9, 1.8, 2.0),
            "latency_ratio_vs_best_stock": _cell(0.62, 0.57, 0.67),
            "without_kv_mechanisms": {"max_rate_ratio_vs_best_stock": _cell(1.1, 0.9, 1.2),
                                      "slo_ratio_vs_best_stock": None, "latency_ratio_vs_best_stock": None},
            "ablations": {"program retraction": {"system": "no-retraction", "max_rate_ratio_vs_best_stock": None,
                                                 "slo_ratio_vs_best_stock": None,
                                                 "latency_ratio_vs_best_stock": _cell(0.69, 0.64, 0.75)}},
            "capacity": {"full": {"0.03": cap}, "sglang-fcfs": {"0.03": {**cap, "retractions": 99}}}}
    sim = {"benchmark": "sim_reasoning", "programs_per_rate": 2000, "baselines": ["sglang-fcfs"], "wall_seconds": 5,
           "studies": {"a100/reasoning": {"headline": head, "limits": {"kv_tokens": 444825}, "workload": {}}}}
    text = "\n".join(report.RENDERERS["sim_reasoning"](tmp_path / "sim_reasoning.json", sim, tmp_path / "R.md"))
    assert "| full (full) | **1.14x [1.12, 1.15]** vs routing-key | **1.90x [1.80, 2.00]** vs routing-key |" in text
    assert "| − program retraction | undefined | undefined | **0.69x [0.64, 0.75]** vs routing-key |" in text
    assert "| sglang-fcfs | – | – | – | 80% | 90% | 99 |" in text
    ratio = {"ratio": 0.96, "low": 0.95, "high": 0.97, "excludes_1": True, "pairs": 2}
    live = {"benchmark": "live_kvbound", "rounds": 2, "best_stock": "sglang-fcfs", "rates": [0.4],
            "workload": {"programs": [{}] * 20}, "alternation": {"systems": {"dynasor": {
                "mean_latency_ratio": ratio, "probe_ratio": ratio}}},
            "round_data": [{"round": 0, "systems": {"dynasor": {"probe_s": 5.0, "mean_latency_s": {"0.4": 50.0}}}}]}
    assert report.kind_of(tmp_path / "live_kvbound_pilot.json", live) == "live_kvbound"
    text = "\n".join(report.RENDERERS["live_kvbound"](tmp_path / "live_kvbound_pilot.json", live, tmp_path / "R.md"))
    assert "a pilot" in text and "| dynasor | 0.960x [0.950, 0.970] |" in text and "**" not in text
    assert "round 0: dynasor probe 5.00 s, 0.4/s 50.0 s" in text


def test_the_untagged_alternation_renders_each_pair_and_a_headline_row(tmp_path):
    from benchmark.online.bench_untagged import summarize

    pairs = [{"pair": k, "order": order, "systems": {"sglang-fcfs": {"output_throughput": stock},
                                                     "gang-sjf": {"output_throughput": dyn}}}
             for k, (order, stock, dyn) in enumerate([(["sglang-fcfs", "gang-sjf"], 40.0, 38.0),
                                                      (["gang-sjf", "sglang-fcfs"], 36.0, 37.8)])]
    ratio = summarize(pairs, "sglang-fcfs", "gang-sjf")
    assert ratio["value"] == pytest.approx(75.8 / 76.0) and ratio["pairs"] == 2
    assert ratio["per_pair"] == pytest.approx([0.95, 1.05]) and ratio["lo"] <= ratio["value"] <= ratio["hi"]
    data = {"benchmark": "untagged_parity", "systems": ["sglang-fcfs", "gang-sjf"], "prompts": 64,
            "max_running_requests": 16, "pairs": pairs, "untagged_throughput_ratio_vs_stock": ratio}
    path = tmp_path / "untagged_parity.json"
    assert report.kind_of(path, data) == "untagged_parity"
    text = "\n".join(report.RENDERERS["untagged_parity"](path, data, tmp_path / "R.md"))
    assert "| 1 | gang-sjf → sglang-fcfs | 36.0 | 37.8 | 1.050 |" in text
    found = {kind: [] for kind in report.KINDS}
    found["untagged_parity"].append((path, data))
    headline = "\n".join(report.render_headline(found, tmp_path / "README.md"))
    assert "2 alternating pairs): decode throughput of untagged traffic, gang-sjf / sglang-fcfs | 0.997x" in headline


def test_the_simultaneous_untagged_rounds_render_their_cores_and_swap_them_every_round(tmp_path, monkeypatch):
    from benchmark.online import bench_untagged

    monkeypatch.setattr(bench_untagged.os, "sched_getaffinity", lambda pid: {0, 1})
    assert bench_untagged.swapped_cores(["sglang-fcfs", "gang-sjf"], 0) == {"sglang-fcfs": 0, "gang-sjf": 1}
    assert bench_untagged.swapped_cores(["sglang-fcfs", "gang-sjf"], 1) == {"sglang-fcfs": 1, "gang-sjf": 0}
    monkeypatch.setattr(bench_untagged.os, "sched_getaffinity", lambda pid: {0})
    with pytest.raises(SystemExit, match="two cores"):
        bench_untagged.swapped_cores(["sglang-fcfs", "gang-sjf"], 0)
    pairs = [{"pair": k, "order": ["sglang-fcfs", "gang-sjf"], "cores": {"sglang-fcfs": k % 2, "gang-sjf": 1 - k % 2},
              "systems": {"sglang-fcfs": {"output_throughput": stock}, "gang-sjf": {"output_throughput": dyn}}}
             for k, (stock, dyn) in enumerate([(40.0, 41.0), (38.0, 38.0)])]
    data = {"benchmark": "untagged_parity", "design": "simultaneous", "systems": ["sglang-fcfs", "gang-sjf"],
            "prompts": 48, "max_running_requests": 16, "pairs": pairs,
            "untagged_throughput_ratio_vs_stock": bench_untagged.summarize(pairs, "sglang-fcfs", "gang-sjf")}
    path = tmp_path / "untagged_parity_simultaneous.json"
    text = "\n".join(report.RENDERERS["untagged_parity"](path, data, tmp_path / "R.md"))
    assert "2 simultaneous rounds, schedulers pinned, cores swapped" in text
    assert "| 1 | sglang-fcfs on 1, gang-sjf on 0 | 38.0 | 38.0 | 1.000 |" in text
    found = {kind: [] for kind in report.KINDS}
    found["untagged_parity"].append((path, data))
    headline = "\n".join(report.render_headline(found, tmp_path / "README.md"))
    assert "LIVE (CPU, 2 simultaneous rounds, schedulers pinned, cores swapped): decode throughput" in headline
