"""Simulator workloads and sweeps end to end, small (seconds)."""

import json

from benchmark.sim.validate import programs_of
from dynasor.sim import cli
from dynasor.sim.workload import PAPER_SC, at_rate, programs_from_records, unit_arrivals


def test_stated_distributions_are_seeded_and_capped():
    a, b = PAPER_SC.shapes(50, seed=1), PAPER_SC.shapes(50, seed=1)
    assert a == b and a != PAPER_SC.shapes(50, seed=2)
    assert all(len(s.branch_tokens) == 16 and max(s.branch_tokens) <= 512 for s in a)
    assert 0.3 < sum(s.stops for s in a) / 50 < 0.9
    unit = unit_arrivals(50, 3)
    fast, slow = at_rate(a, unit, 4.0, 5, 512), at_rate(a, unit, 1.0, 5, 512)
    assert [p.arrival * 4 for p in fast] == [p.arrival for p in slow]  # one trace, time-scaled


def test_long_reasoning_workloads_bind_on_length_and_stop_at_their_stated_share():
    from dynasor.sim.reasoning_workload import REASONING_WORKLOADS, SHARES

    assert {w.branches for w in REASONING_WORKLOADS.values()} == {8, 16, 64}
    for percent in (10, 30, 60):
        workload = REASONING_WORKLOADS[f"reasoning-sc16-stop{percent}"]
        shapes = workload.shapes(3000, seed=0)
        assert shapes == workload.shapes(3000, seed=0)
        assert abs(sum(s.stops for s in shapes) / 3000 - percent / 100) < 0.04
        assert abs(workload.describe()["expected_stop_share"] - percent / 100) < 0.05
    workload = REASONING_WORKLOADS["reasoning-sc16-stop30"]
    shapes = workload.shapes(3000, seed=0)
    by_class = [[t for s in shapes if s.level == level for t in s.branch_tokens] for level in range(len(SHARES))]
    medians = [sorted(tokens)[len(tokens) // 2] for tokens in by_class]
    assert medians == sorted(medians) and 2000 < medians[0] < 3000  # harder classes write longer
    capped = [sum(t == workload.max_new_tokens for t in tokens) / len(tokens) for tokens in by_class]
    assert capped[0] < 0.001 < capped[-1]  # and are cut at the length cap more often
    assert {s.level for s in shapes if s.stops} <= {0, 1}  # never-solved queries do not stop at 30%


def test_recorded_programs_stop_where_the_live_rule_stops_them(tmp_path):
    agree = [{"answer": "4", "tokens": 10}] * 4
    split = [{"answer": str(i), "tokens": 12} for i in range(4)]
    rows = [{"seed": 0, "problem_id": "a", "gold": "4", "branches": agree},
            {"seed": 0, "problem_id": "b", "gold": "4", "branches": split}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"sc": rows}))
    shapes, meta = programs_from_records(path, 0.7, 2, 100, 48)
    assert [s.stops for s in shapes] == [True, False] and shapes[0].branch_tokens == (10,) * 4
    assert meta["programs"] == 2


def test_the_cli_writes_a_labelled_sweep_with_ratio_intervals(tmp_path):
    out = tmp_path / "sim.json"
    report = cli.main(["--profile", "h100-llama2-7b", "--programs", "40", "--rates", "4,16,64", "--slo-scales", "3",
                       "--systems", "sglang-fcfs,sglang-lpm,sglang-priority,sglang-routing-key,gang-sjf+certaindex",
                       "--replicates", "50",
                       "--out", str(out)])
    assert report["label"] == "SIMULATED" and json.loads(out.read_text())["programs"] == 40
    assert out.with_suffix(".png").exists()
    rows = report["systems"]["gang-sjf+certaindex"]["rows"]
    base = report["systems"]["sglang-fcfs"]["rows"]
    assert all(r["tokens_per_program"] < b["tokens_per_program"] for r, b in zip(rows, base))  # stops save tokens
    entry = report["by_scale"]["3.0"]["gang-sjf+certaindex"]
    assert {"max_rate", "max_rate_ratio_vs_fcfs", "max_rate_ratio_vs_lpm", "max_rate_ratio_vs_priority",
            "max_rate_ratio_vs_routing-key"} <= set(entry)
    assert report["simulated_per_wall_second"] > 0
    # against the best stock baseline at each point: the one with the highest max rate / tightest SLO
    stock = ("sglang-fcfs", "sglang-lpm", "sglang-priority", "sglang-routing-key")
    best = entry["max_rate_ratio_vs_best_stock"]
    rates = {b: report["by_scale"]["3.0"][b]["max_rate"]["rate"] or 0.0 for b in stock}
    assert rates[best["baseline"]] == max(rates.values())
    assert best["ratio"] == entry[f"max_rate_ratio_vs_{best['baseline'].removeprefix('sglang-')}"]["ratio"]
    for at_rate in report["by_rate"].values():
        scales = {b: at_rate[b]["tightest_scale"] or float("inf") for b in stock}
        assert scales[at_rate["gang-sjf+certaindex"]["slo_ratio_vs_best_stock"]["baseline"]] == min(scales.values())


def test_validation_replays_each_recorded_request():
    records = [{"index": 0, "arrival": 1.5, "level": 1, "stopped_early": True,
                "requests": [[120, 7, 0], [120, 9, 0]]},
               {"index": 1, "arrival": 2.0, "level": 0, "stopped_early": False, "requests": []}]
    (program,) = programs_of(records, cap=4, detect_at=2, max_new_tokens=24)
    assert program.arrival == 1.5 and program.prompt_tokens == 120 and program.stops
    assert program.branch_tokens == (7, 9, 8, 8)  # never-launched branches: the mean, never submitted


def test_the_gpu_scale_study_reports_ratios_for_the_full_system_and_every_ablation(tmp_path):
    from benchmark import report as readme_report
    from benchmark.sim import gpu_scale
    from dynasor.sim.simulation import ABLATIONS, FULL_SYSTEM

    out = tmp_path / "sim_gpu.json"
    key = "h100-llama2-7b/paper-sc+azure-conv"
    data = gpu_scale.main(["--programs", "30", "--rates", "1,4", "--slo-scales", "2,4", "--only", key,
                           "--replicates", "30", "--jobs", "1", "--out", str(out)])
    assert data["label"] == "SIMULATED" and json.loads(out.read_text())["benchmark"] == "sim_gpu"
    study = data["studies"][key]
    assert study["workload"]["background"]["rate_per_s"] == gpu_scale.BACKGROUND_RATE
    assert all(row["background"]["requests"] > 0 for row in study["systems"]["sglang-fcfs"]["rows"])
    systems = study["summary"]["systems"]
    assert {FULL_SYSTEM, *(s.name for s in ABLATIONS.values())} <= set(systems)
    for entry in systems.values():
        for base in ("fcfs", "lpm"):
            assert {"ratio", "low", "high", "excludes_1"} <= set(entry["by_scale"]["4.0"][f"max_rate_ratio_vs_{base}"])
            assert {"ratio", "low", "high"} <= set(entry[f"slo_ratio_vs_{base}"])
    assert systems["sglang-fcfs"]["slo_ratio_vs_fcfs"]["ratio"] == 1.0
    section = readme_report.render(tmp_path, tmp_path / "README.md")
    assert "### Simulated at GPU scale" in section and f"**{key}** (SIMULATED)" in section
    assert all(f"| {spec.name} (− {mechanism}) |" in section for mechanism, spec in ABLATIONS.items())


def test_the_noise_floor_compares_the_same_programs_across_two_live_runs():
    from benchmark.sim.validate import live_vs_live

    def run(latencies, solo):
        records = [{"index": i, "level": 0, "latency": x} for i, x in enumerate(latencies)]
        return {"deadlines": {"base_deadline": 2.0, "factors": {}, "solo_latency": {"0": solo}},
                "systems": {"sglang-fcfs": {"windows": [{"records": records}]}, "gang": {"windows": []}}}

    first, second = run([2.0, 4.0, 3.0, None], 2.0), run([3.0, 4.0, 3.0, 1.0], 1.5)
    floor = live_vs_live(first, second, 1.0)  # deadlines at 2.0 s: the first run meets 1 of 4, the second 1
    assert floor["systems"] == ["sglang-fcfs", "gang"] and floor["programs_compared"] == 3
    assert floor["median_latency_error"] == 0.0 and abs(floor["p90_latency_error"] - 0.4) < 1e-9  # of 0, 0, 0.5
    assert floor["max_attainment_gap"] == 0.0 and floor["solo_latency"] == {"run": {"0": 2.0}, "repeat": {"0": 1.5}}


def test_the_scale_out_study_compares_placement_with_sglang_dispatch_on_n_engines(tmp_path):
    from benchmark import report as readme_report
    from benchmark.sim import scale_out

    out = tmp_path / "sim_scale_out.json"
    data = scale_out.main(["--engines", "8", "--programs", "60", "--per-engine-rates", "1,2.5", "--slo-scales", "4",
                           "--replicates", "30", "--jobs", "1", "--out", str(out)])
    assert data["label"] == "SIMULATED" and data["engines"] == 8 and data["rates"] == [8.0, 20.0]
    assert data["system_specs"]["gang-sjf+certaindex"]["dispatch"] == "program"
    placed, spread = data["summary"]["gang-sjf+certaindex"], data["summary"][scale_out.ROUND_ROBIN]
    for ours, theirs in zip(placed["rows"], spread["rows"]):
        # one engine per program prefills its prompt; round robin also sends later branches to engines without it
        assert ours["prefill_tokens_per_program"] < theirs["prefill_tokens_per_program"]
        assert ours["cache_hit_rate"] > theirs["cache_hit_rate"]
        assert {"ratio", "low", "high", "excludes_1"} <= set(ours["latency_ratio_vs_round_robin"])
    section = readme_report.render(tmp_path, tmp_path / "README.md")
    assert "SIMULATED scale-out: 8 engines" in section and "| gang-sjf+certaindex |" in section


def test_validation_maps_live_systems_to_simulated_ones_with_their_dispatch():
    from benchmark.sim.validate import sim_system

    full = {"system": {"name": "gang-sjf+certaindex", "schedule_policy": "gang-sjf", "certaindex": True}}
    off = {"system": {"name": "gang-sjf+certaindex+sglang-dispatch", "schedule_policy": "gang-sjf",
                      "certaindex": True, "flags": ["--dynasor-dp-placement", "sglang"]}}
    stock = {"system": {"name": "sglang-lpm", "schedule_policy": "lpm", "certaindex": False}}
    assert (sim_system(full, "staged").dispatch, sim_system(full, "staged").launch) == ("program", "staged")
    assert sim_system(off, "staged").dispatch == "round_robin" and sim_system(off, "staged").certaindex
    assert sim_system(stock, "staged").launch == "together" and sim_system(stock, "staged").dispatch == "round_robin"
