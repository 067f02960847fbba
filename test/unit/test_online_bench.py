"""benchmark/online: Poisson arrivals, deadlines, attainment, max-rate interpolation, fairness CDF,
summary/tables/plots, the window cut rule, and the load generator over a fake backend (no server)."""

import asyncio
import json
import math
import random
from pathlib import Path

import pytest

from benchmark.online import bench_online, loadgen, report, systems, workload
from benchmark.online.metrics import (
    INF,
    Attainment,
    ProgramRecord,
    attainment,
    cdf_points,
    fairness_values,
    met,
    nearest_rank,
    tightest_slo_scale,
    window_stats,
)
from dynasor.core.generation import Generation
from dynasor.datasets.loaders import Problem
from dynasor.evaluation.rate_curve import RateBound, max_sustained_rate, rate_ratio
from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold


def rec(i, latency, level=1, tokens=10, censored_at=None, correct=None, error=None):
    return ProgramRecord(i, f"p{i}", level, float(i), latency, censored_at, tokens, correct, error=error)


# ---------------------------------------------------------------- workload


def test_poisson_arrivals_hand_values_and_determinism():
    times = workload.poisson_arrivals(2.0, 10.0, seed=7)
    rng = random.Random(7)
    first = -math.log(1 - rng.random()) / 2.0  # expovariate(λ) by hand
    second = first - math.log(1 - rng.random()) / 2.0
    assert times[:2] == pytest.approx([first, second])
    assert times == workload.poisson_arrivals(2.0, 10.0, seed=7)
    assert times != workload.poisson_arrivals(2.0, 10.0, seed=8)
    assert all(0 <= a < b < 10.0 for a, b in zip(times, times[1:]))


def test_fixed_count_arrivals_condition_on_the_nominal_count():
    times = workload.poisson_arrivals(0.25, 30.0, seed=3, fixed_count=True)
    assert len(times) == 8 and times == sorted(times) and all(0 <= t < 30.0 for t in times)
    rng = random.Random(3)
    assert times == sorted(rng.uniform(0.0, 30.0) for _ in range(8))
    assert len(workload.poisson_arrivals(0.1, 30.0, seed=3, fixed_count=True)) == 3
    w = workload.build_workload(0.25, 30.0, 0, {1: 1.0}, fixed_count=True)
    assert len(w.arrivals) == 8 and w.to_json()["arrivals"] == "fixed-count"


def test_poisson_mean_count_is_rate_times_duration():
    counts = [len(workload.poisson_arrivals(2.0, 10.0, seed)) for seed in range(400)]
    assert sum(counts) / len(counts) == pytest.approx(20.0, rel=0.05)


@pytest.mark.parametrize("rate, duration", [(0, 10), (-1, 10), (1, 0)])
def test_poisson_rejects_bad_parameters(rate, duration):
    with pytest.raises(ValueError):
        workload.poisson_arrivals(rate, duration, 0)


def test_stream_seed_is_stable_and_independent_of_rate_spelling():
    assert workload.stream_seed(0, 0.25, "arrivals") == 1656568032  # crc32(b"arrivals:0:0.25")
    assert workload.stream_seed(0, 0.25, "problems") == 1330919067
    assert workload.stream_seed(0, 0.250, "arrivals") == workload.stream_seed(0, float("0.25"), "arrivals")
    assert workload.stream_seed(1, 0.25, "arrivals") != workload.stream_seed(0, 0.25, "arrivals")


def test_scaled_workload_is_one_trace_time_scaled_to_each_rate():
    slow = workload.build_workload(0.1, 60.0, 4, {0: 0.5, 1: 0.5}, scaled=True)
    fast = workload.build_workload(0.3, 20.0, 4, {0: 0.5, 1: 0.5}, scaled=True)
    assert len(slow.arrivals) == len(fast.arrivals) == 6 and slow.to_json()["arrivals"] == "scaled"
    assert [a.problem for a in slow.arrivals] == [a.problem for a in fast.arrivals]
    assert [round(a.time * 0.1, 9) for a in slow.arrivals] == [round(a.time * 0.3, 9) for a in fast.arrivals]
    assert all(0 <= a.time < 20.0 for a in fast.arrivals)
    other = workload.build_workload(0.1, 60.0, 5, {0: 0.5, 1: 0.5}, scaled=True)
    assert [a.time for a in other.arrivals] != [a.time for a in slow.arrivals]


def test_build_workload_is_seeded_per_rate_with_exact_level_mix():
    a = workload.build_workload(1.0, 20.0, 3, {1: 0.5, 2: 0.5})
    b = workload.build_workload(1.0, 20.0, 3, {1: 0.5, 2: 0.5})
    assert a == b
    assert [x.index for x in a.arrivals] == list(range(len(a.arrivals)))
    levels = [x.problem.level for x in a.arrivals]
    assert abs(levels.count(1) - levels.count(2)) <= 1
    assert a.problems["seed"] == a.problem_seed and a.to_json()["n"] == len(a.arrivals)
    other = workload.build_workload(2.0, 20.0, 3, {1: 0.5, 2: 0.5})
    assert other.arrival_seed != a.arrival_seed


def test_oracle_problems_per_level():
    out = workload.oracle_problems([2, 1], runs=3, seed=0)
    assert list(out) == [1, 2] and all(len(v) == 3 for v in out.values())
    assert {p.level for p in out[2]} == {2}


def test_fixed_deadlines_default_factors_and_hand_values():
    model = workload.fixed_deadlines(10.0, [0, 1, 2, 3, 4])
    assert dict(model.factors) == {0: 1.0, 1: 1.0, 2: 2.0, 3: 3.0, 4: 3.0}
    assert model.deadline(2, 1.5) == 30.0 and model.unit(4) == 30.0
    custom = workload.fixed_deadlines(5.0, [1, 2], workload.parse_factors("1:1, 2:4"))
    assert custom.deadline(2, 0.5) == 10.0
    with pytest.raises(ValueError):
        workload.fixed_deadlines(5.0, [1, 3], {1: 1.0})
    with pytest.raises(ValueError):
        workload.fixed_deadlines(0.0, [1])


def test_oracle_deadlines_make_scale_one_the_solo_latency():
    model = workload.oracle_deadlines({2: 6.0, 1: 4.0})
    assert model.base_deadline == 4.0 and dict(model.factors) == {1: 1.0, 2: 1.5}
    assert model.deadline(2, 1.0) == 6.0 and model.deadline(2, 2.0) == 12.0
    assert workload.DeadlineModel.from_json(json.loads(json.dumps(model.to_json()))) == model
    with pytest.raises(ValueError):
        workload.oracle_deadlines({1: 0.0})


@pytest.mark.parametrize("spec", ["1", "1:0", "1:-2"])
def test_parse_factors_rejects(spec):
    with pytest.raises(ValueError):
        workload.parse_factors(spec)


# ---------------------------------------------------------------- metrics


def test_met_finished_censored_and_failed():
    assert met(rec(0, 5.0), 5.0) is True
    assert met(rec(0, 5.1), 5.0) is False
    assert met(rec(0, None, censored_at=6.0), 5.0) is False  # latency > 6 ≥ 5
    assert met(rec(0, None, censored_at=4.0), 5.0) is None   # could still have made it
    assert met(rec(0, None, error="boom"), 5.0) is False


def test_attainment_hand_counts():
    records = [rec(0, 1.0), rec(1, 3.0), rec(2, None, censored_at=2.0), rec(3, None, censored_at=9.0)]
    a = attainment(records, [2.0, 2.0, 4.0, 4.0])
    assert (a.n, a.met, a.undetermined) == (4, 1, 1)
    assert a.value == 0.25 and a.upper == 0.5
    assert Attainment(0, 0, 0).value is None
    with pytest.raises(ValueError):
        attainment(records, [1.0])


def test_nearest_rank():
    values = list(range(10, 0, -1))
    assert nearest_rank(values, 0.9) == 9 and nearest_rank(values, 0.5) == 5 and nearest_rank(values, 1.0) == 10
    assert nearest_rank([3, 1, 2], 0.9) == 3 and nearest_rank([], 0.9) is None


def test_tightest_slo_scale_is_the_target_quantile_of_normalised_latency():
    records = [rec(i, 2.0 * (i + 1)) for i in range(5)]  # latency / unit 2 = 1..5
    units = [2.0] * 5
    assert tightest_slo_scale(records, units, 0.9) == 5.0  # ceil(4.5) = 5th
    assert tightest_slo_scale(records, units, 0.6) == 3.0
    scale = tightest_slo_scale(records, units, 0.6)
    assert attainment(records, [scale * u for u in units]).value >= 0.6
    assert attainment(records, [(scale - 1e-6) * u for u in units]).value < 0.6
    cut = records[:4] + [rec(4, None, censored_at=50.0)]
    assert tightest_slo_scale(cut, units, 0.9) is None and tightest_slo_scale(cut, units, 0.8) == 4.0


def test_max_sustained_rate_interpolates_at_the_first_drop():
    pts = [(3.0, 0.7), (1.0, 1.0), (4.0, 0.95), (2.0, 0.95)]  # unsorted; 4.0 recovers (noise)
    bound = max_sustained_rate(pts, 0.9)
    assert bound.exact and bound.low == pytest.approx(2.2)  # 2 + (0.95-0.9)/(0.95-0.7) * 1
    assert bound.to_json() == {"rate": pytest.approx(2.2), "low": pytest.approx(2.2), "high": pytest.approx(2.2),
                               "kind": "interpolated"}
    assert max_sustained_rate([(1.0, 0.9), (2.0, 0.5)]).low == 1.0  # exactly at target: that rate
    above = max_sustained_rate([(1.0, 1.0), (2.0, 0.92)])
    assert (above.low, above.high, above.kind) == (2.0, INF, "above-swept") and above.to_json()["high"] is None
    below = max_sustained_rate([(1.0, 0.5), (2.0, 0.95)])
    assert (below.low, below.high, below.kind) == (0.0, 1.0, "below-swept") and below.to_json()["rate"] is None
    with pytest.raises(ValueError):
        max_sustained_rate([])


def test_rate_ratio_intervals():
    exact = RateBound(2.2, 2.2, "interpolated")
    base = RateBound(1.1, 1.1, "interpolated")
    assert rate_ratio(exact, base) == (pytest.approx(2.0), pytest.approx(2.0))
    assert rate_ratio(RateBound(4.0, INF, "above-swept"), base) == (pytest.approx(4.0 / 1.1), None)
    assert rate_ratio(exact, RateBound(0.0, 1.0, "below-swept")) == (pytest.approx(2.2), None)
    assert rate_ratio(exact, RateBound(4.0, INF, "above-swept")) == (None, pytest.approx(0.55))


def test_fairness_values_and_cdf():
    records = [rec(0, 10.0, tokens=100), rec(1, 6.0, tokens=20), rec(2, None, censored_at=3.0), rec(3, 1.0, tokens=0)]
    values = fairness_values(records)
    assert values == [pytest.approx(0.1), pytest.approx(0.3)]
    assert cdf_points(values, 4) == [(pytest.approx(0.1), 0.25), (pytest.approx(0.3), 0.5)]
    with pytest.raises(ValueError):
        cdf_points(values, 1)


def test_window_stats_hand_values():
    records = [rec(0, 2.0, tokens=10, correct=True), rec(1, 4.0, tokens=30, correct=False),
               rec(2, None, censored_at=5.0, tokens=3), rec(3, None, error="x")]
    stats = window_stats(records, 8.0)
    assert stats["n"] == 4 and stats["finished"] == 2 and stats["errors"] == 1
    assert stats["offered_rate"] == 0.5 and stats["mean_latency"] == 3.0 and stats["p90_latency"] == 4.0
    assert stats["tokens"] == 40 and stats["tokens_per_program"] == 20.0 and stats["accuracy"] == 0.5


def test_record_json_round_trip():
    r = rec(1, None, censored_at=2.5, error=None)
    assert ProgramRecord.from_json(json.loads(json.dumps(r.to_json()))) == r


# ---------------------------------------------------------------- systems and the cut rule


def test_systems_table_and_flags():
    assert [s.name for s in systems.parse_systems("all")] == ["sglang-fcfs", "sglang-lpm", "program-fifo", "gang",
                                                              "gang+certaindex", "gang-sjf+certaindex"]
    assert systems.SYSTEMS["gang-sjf"].schedule_policy == "gang-sjf" and not systems.SYSTEMS["gang-sjf"].certaindex
    assert [s.name for s in systems.parse_systems("gang, sglang-fcfs")] == ["gang", "sglang-fcfs"]
    for bad in ("gang,nope", "", "gang,gang"):
        with pytest.raises(ValueError):
            systems.parse_systems(bad)
    fcfs, full = systems.SYSTEMS["sglang-fcfs"], systems.SYSTEMS["gang-sjf+certaindex"]
    assert systems.server_argv(fcfs, "/m", ["--x", "1"]) == ["--x", "1", "--schedule-policy", "fcfs"]
    assert systems.server_argv(full, "/m", []) == ["--model-path", "/m", "--dynasor-schedule-policy", "gang-sjf"]
    assert isinstance(systems.make_policy(fcfs, 0.7), EvenAllocation)
    assert systems.make_policy(full, 0.6) == StaticThreshold(0.6)
    assert not systems.SYSTEMS["gang"].certaindex and systems.SYSTEMS["gang+certaindex"].certaindex


def test_placement_ablation_sets_dynasors_flag_and_the_routers_default_policy(tmp_path):
    ablation, full = systems.SYSTEMS["gang-sjf+certaindex+sglang-dispatch"], systems.SYSTEMS["gang-sjf+certaindex"]
    assert ablation.server_flags()[-2:] == ["--dynasor-dp-placement", "sglang"]
    assert "--dynasor-dp-placement" not in full.server_flags()
    assert (full.router_policy, ablation.router_policy, systems.SYSTEMS["sglang-fcfs"].router_policy) == (
        "manual", "cache_aware", "cache_aware")
    group = systems.make_server(full, 1234, tmp_path / "s.log", None, ["--x"], workers=2)
    router = group.front.argv
    assert group.url == "http://127.0.0.1:1234" and len(group.worker_urls) == 2
    assert router[router.index("--policy") + 1] == "manual" and router[router.index("--worker-urls") + 1:][:2] == \
        group.worker_urls
    assert all("--dynasor-schedule-policy" in m.argv for m in group.members)
    assert systems.make_server(full, 1234, tmp_path / "s.log", None, [], workers=1).worker_urls == [
        "http://127.0.0.1:1234"]


LIMITS = loadgen.WindowLimits(must_wait=[4.0, 4.0], give_up=[10.0, 10.0], drain_max=2.0)


@pytest.mark.parametrize("elapsed, ages, cut", [
    (1.0, {}, True),                      # nothing left
    (5.0, {1: -1.0}, False),              # inside the window
    (10.5, {0: 3.5}, False),              # past the window, inside drain_max
    (12.0, {0: 3.5}, False),              # drain_max over but not yet past the primary deadline
    (12.0, {0: 4.0, 1: 5.0}, True),       # drain_max over, everyone past the primary deadline
    (10.5, {0: 10.0, 1: 11.0}, True),     # everyone past the largest deadline
])
def test_should_cut(elapsed, ages, cut):
    assert loadgen.should_cut(elapsed, 10.0, ages, LIMITS) is cut


# ---------------------------------------------------------------- load generator over a fake backend


class FakeBackend:
    """Answers after a per-question delay; a stopped program's branches return "abort"."""

    def __init__(self, delays, default=None):
        self.delays, self.default = delays, default
        self.stops = {}
        self.stopped = []

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        stop = self.stops.setdefault(program_id, asyncio.Event())
        delay = next((d for q, d in self.delays.items() if prompt.endswith(f"Q: {q}\nA:")), self.default)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return Generation("", 1, "abort")
        except asyncio.TimeoutError:
            return Generation(" 5 + 3 = 8. The answer is \\boxed{8}.", 10, "stop")

    async def stop_program(self, program_id):
        self.stopped.append(program_id)
        self.stops.setdefault(program_id, asyncio.Event()).set()


def problem(i, level=1):
    return Problem(f"p{i}", f"Question {i}?", "8", "arithmetic", level)


def fake_workload(times):
    arrivals = tuple(workload.Arrival(i, t, problem(i)) for i, t in enumerate(times))
    return workload.Workload(1.0, 0.1, 0, 0, arrivals)


SHAPE = loadgen.ScProgramSpec(cap=4, detect_at=2, threshold=0.7, sampling_params={"max_new_tokens": 8})


def test_run_window_records_latency_and_censors_stragglers(monkeypatch):
    fake = FakeBackend({"Question 0?": 0.05, "Question 1?": 100.0})
    monkeypatch.setattr(loadgen, "make_backend", lambda system, client: fake)
    limits = loadgen.WindowLimits([0.1, 0.1], [0.3, 0.3], drain_max=0.0)
    records, wall = asyncio.run(loadgen.run_window("http://127.0.0.1:9", systems.SYSTEMS["sglang-fcfs"],
                                                   fake_workload([0.0, 0.05]), SHAPE, limits, "test"))
    done, cut = records
    assert 0.04 <= done.latency < 0.5 and done.censored_at is None
    assert done.tokens == 40 and done.correct is True and done.answer == "8" and not done.stopped_early
    assert done.certaindex_at_detection == 1.0  # recorded under even allocation too, which continues
    assert cut.latency is None and cut.censored_at >= 0.1 and cut.correct is None
    assert cut.tokens == 4  # four aborted branches, one partial token each
    assert len(fake.stopped) == 1 and 0.1 <= wall < 5


def test_run_window_certaindex_system_stops_unanimous_programs(monkeypatch):
    fake = FakeBackend({"Question 0?": 0.02})
    monkeypatch.setattr(loadgen, "make_backend", lambda system, client: fake)
    limits = loadgen.WindowLimits([1.0], [1.0], drain_max=0.0)
    (record,), _ = asyncio.run(loadgen.run_window("http://127.0.0.1:9", systems.SYSTEMS["gang+certaindex"],
                                                  fake_workload([0.0]), SHAPE, limits, "test"))
    assert record.stopped_early and record.latency is not None and record.correct


def test_solo_latencies_runs_each_problem_alone(monkeypatch):
    fake = FakeBackend({"Question 0?": 0.02, "Question 1?": 0.06})
    monkeypatch.setattr(loadgen, "make_backend", lambda system, client: fake)
    out = asyncio.run(loadgen.solo_latencies("http://127.0.0.1:9", systems.SYSTEMS["sglang-fcfs"],
                                             {2: [problem(1, 2)], 1: [problem(0)]}, SHAPE))
    assert list(out) == [1, 2] and 0.02 <= out[1][0] < out[2][0] < 1.0


# ---------------------------------------------------------------- summary, tables, plots, CLI


def window(rate, latencies, duration=10.0, tokens=20):
    records = [rec(i, lat, tokens=tokens, correct=True) if lat is not None else rec(i, None, censored_at=30.0)
               for i, lat in enumerate(latencies)]
    return {"workload": {"rate": rate, "duration": duration}, "records": [r.to_json() for r in records]}


def raw_systems():
    # unit deadline 2 s (fixed base 2, level 1); primary scale 2 -> deadline 4 s
    fcfs = [window(0.1, [1, 2, 3, 3, 3, 3, 3, 3, 3, 3]), window(0.2, [1, 2, 3, 5, 6, 7, 8, 9, 9, None])]
    ours = [window(0.1, [1] * 10), window(0.2, [1, 1, 1, 1, 1, 1, 1, 1, 1, 2])]
    return {"sglang-fcfs": {"system": systems.SYSTEMS["sglang-fcfs"].to_json(), "windows": fcfs},
            "gang-sjf+certaindex": {"system": systems.SYSTEMS["gang-sjf+certaindex"].to_json(), "windows": ours}}


def test_summarize_hand_values():
    model = workload.fixed_deadlines(2.0, [1])
    summary = report.summarize(raw_systems(), model, 2.0, [1.0, 2.0, 5.0], 0.9)
    fcfs, ours = summary["systems"]["sglang-fcfs"], summary["systems"]["gang-sjf+certaindex"]
    assert [w["primary"]["attainment"] for w in fcfs["windows"]] == [1.0, 0.3]
    # fcfs: 1.0 at 0.1, 0.3 at 0.2 -> 0.1 + (1.0-0.9)/(1.0-0.3) * 0.1
    assert fcfs["max_rate"]["rate"] == pytest.approx(0.1 + 0.1 / 0.7 * 0.1)
    assert ours["max_rate"] == {"rate": None, "low": 0.2, "high": None, "kind": "above-swept"}
    ratio = ours["rate_ratio_vs"]["sglang-fcfs"]
    assert ratio["ratio"] is None and ratio["low"] == pytest.approx(0.2 / (0.1 + 0.1 / 0.7 * 0.1))
    assert fcfs["rate_ratio_vs"]["sglang-fcfs"]["ratio"] == pytest.approx(1.0)
    # tightest scale: 9th of 10 normalised latencies (latency / 2)
    assert [w["tightest_slo_scale"] for w in fcfs["windows"]] == [1.5, 4.5]
    assert [w["tightest_slo_scale"] for w in ours["windows"]] == [0.5, 0.5]
    assert ours["slo_tightening_vs"]["sglang-fcfs"] == {"0.1": 3.0, "0.2": 9.0}
    vs = fcfs["windows"][1]["vs_slo_scale"]
    assert [(v["slo_scale"], v["attainment"], v["undetermined"]) for v in vs] == [
        (1.0, 0.2, 0), (2.0, 0.3, 0), (5.0, 0.9, 0)]
    assert ours["windows"][0]["fairness"] == [0.05] * 10
    # maximum rate per SLO scale, from the same windows: at 1x fcfs fails even at 0.1 (2 of 10 within 2 s)
    at1, at5 = fcfs["max_rate_by_slo_scale"]["1"], fcfs["max_rate_by_slo_scale"]["5"]
    assert at1["max_rate"]["kind"] == "below-swept" and at5["max_rate"]["kind"] == "above-swept"
    assert at1["ratio_vs"]["sglang-fcfs"] == {"ratio": None, "low": None, "high": None}  # unknown, not 0x
    assert ours["max_rate_by_slo_scale"]["1"]["ratio_vs"]["sglang-fcfs"] == {"ratio": None, "low": 2.0, "high": None}
    assert ours["max_rate_by_slo_scale"]["2"]["max_rate"] == ours["max_rate"]
    assert fcfs["windows"][1]["by_level"] == {"1": {"n": 10, "met": 3, "undetermined": 0, "attainment": 0.3,
                                                    "attainment_upper": 0.3, "accuracy": 1.0}}


def test_by_level_uses_each_levels_deadline():
    model = workload.fixed_deadlines(2.0, [1, 2])  # unit deadlines 2 s and 4 s; scale 1
    w = {"workload": {"rate": 1.0, "duration": 4.0},
         "records": [r.to_json() for r in (rec(0, 3.0, level=1, correct=True), rec(1, 3.0, level=2, correct=False),
                                           rec(2, 1.0, level=1, correct=False))]}
    out = report.summarize_window(w, model, 1.0, [1.0], 0.9)
    assert out["by_level"]["1"]["attainment"] == 0.5 and out["by_level"]["1"]["accuracy"] == 0.5
    assert out["by_level"]["2"]["attainment"] == 1.0 and out["by_level"]["2"]["accuracy"] == 0.0
    assert out["primary"]["met"] == 2
    assert out["tightest_slo_scale"] == 1.5  # normalised 1.5, 0.75, 0.5: nearest rank ceil(2.7) = 3rd


def test_tables_and_plots(tmp_path):
    summary = report.summarize(raw_systems(), workload.fixed_deadlines(2.0, [1]), 2.0, [1.0, 2.0], 0.9)
    text = report.format_tables(summary)
    assert "att@  0.1" in text and "0.114" in text and ">=0.2" in text and ">=1.75x" in text
    assert "9.00x" in text
    assert report.fairness_rate(summary, None) == 0.2 and report.fairness_rate(summary, 0.1) == 0.1
    paths = report.plot(summary, tmp_path / "online_t", "test", 0.2)
    assert [p.name for p in paths] == ["online_t_rate.png", "online_t_slo.png", "online_t_fairness.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_parse_args_quick_defaults_and_errors():
    args = bench_online.parse_args(["--quick"])
    quick = bench_online.PRESETS["quick"]
    assert (args.rates, args.programs_per_rate, args.cap, args.detect_at, args.temperature, args.tag) == (
        quick.rates, quick.programs_per_rate, quick.cap, quick.detect_at, quick.temperature, "quick")
    assert args.slo_scale == 2.0 and args.target == 0.9 and args.given == set()
    assert args.arrivals == quick.arrivals == "scaled"
    assert args.sc_launch == "staged" and bench_online.program_shape(args).launch == "staged"
    assert bench_online.window_seconds(args, 0.25) == quick.programs_per_rate / 0.25
    timed = bench_online.parse_args(["--quick", "--duration", "30"])
    assert timed.programs_per_rate is None and bench_online.window_seconds(timed, 0.25) == 30.0
    with pytest.raises(SystemExit):
        bench_online.parse_args(["--quick", "--duration", "30", "--arrivals", "scaled"])
    counted = bench_online.parse_args(["--programs-per-rate", "5"])
    assert bench_online.window_seconds(counted, 0.5) == 10.0
    assert bench_online.server_extra(args) == ["--max-running-requests", "16"]
    own = bench_online.parse_args(["--quick", "--server-args=--max-running-requests=4 --x 1"])
    assert bench_online.server_extra(own) == ["--max-running-requests=4", "--x", "1"]
    full = bench_online.parse_args(["--cap", "10", "--slo-scale", "1"])
    assert full.cap == 10 and full.tag == "full" and full.given == {"cap", "slo_scale"} and full.slo_scale == 1.0
    assert full.arrivals == "poisson" and bench_online.server_extra(full) == []
    validation = bench_online.parse_args(["--preset", "sim-validation"])  # the simulator models no overlap scheduler
    assert bench_online.server_extra(validation) == ["--max-running-requests", "16", "--disable-overlap-schedule"]
    kept = bench_online.parse_args(["--preset", "sim-validation", "--overlap-schedule"])
    assert "--disable-overlap-schedule" not in bench_online.server_extra(kept)
    for bad in (["--oracle", "--base-deadline", "5"], ["--difficulty-factors", "1:1"],
                ["--server-args", "--schedule-policy lpm"], ["--server-args", "--x 1 --dynasor-schedule-policy=gang"],
                ["--quick", "--detect-at", "7"], ["--duration", "10", "--programs-per-rate", "3"],
                ["--programs-per-rate", "0"]):
        with pytest.raises(SystemExit):
            bench_online.parse_args(bad)


def test_consecutive_systems_with_the_same_server_share_it():
    assert [[s.name for s in g] for g in bench_online.server_groups(systems.parse_systems("all"))] == [
        ["sglang-fcfs"], ["sglang-lpm"], ["program-fifo"], ["gang", "gang+certaindex"], ["gang-sjf+certaindex"]]
    apart = systems.parse_systems("gang,program-fifo,gang+certaindex")
    assert [len(g) for g in bench_online.server_groups(apart)] == [1, 1, 1]


def test_replay_resummarises_a_saved_run(tmp_path, capsys):
    saved = {"title": "test run", "deadlines": workload.fixed_deadlines(2.0, [1]).to_json(),
             "systems": raw_systems(), "slo": {"slo_scale": 2.0, "slo_scales": [1.0, 2.0], "target": 0.9}}
    path = tmp_path / "online_t.json"
    path.write_text(json.dumps(saved))
    bench_online.main(["--replay", str(path), "--slo-scale", "1"])
    out = json.loads(path.read_text())
    assert out["slo"] == {"slo_scale": 1.0, "slo_scales": [1.0, 2.0], "target": 0.9}
    fcfs = out["summary"]["systems"]["sglang-fcfs"]
    assert [w["primary"]["attainment"] for w in fcfs["windows"]] == [0.2, 0.2]
    assert (tmp_path / "online_t_fairness.png").exists()
    assert "SLO scale 1" in capsys.readouterr().out


class FakeServer:
    def __init__(self, argv):
        self.argv, self.url = ["python", *argv], "http://127.0.0.1:9"
        self.worker_urls = [self.url]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_main_sequential_end_to_end_over_fake_servers(tmp_path, monkeypatch):
    """Orchestration of --sequential: oracle on the first system, every window on every system, one
    failing server recorded without losing the others, JSON + PNGs written, the run labelled
    sequential; no real server is started."""
    fake = FakeBackend({}, default=0.01)
    monkeypatch.setattr(loadgen, "make_backend", lambda system, client: fake)

    async def no_warmup(url, prompts, max_new_tokens=4):
        return None

    def make_server(system, port, log, model_path, extra, workers=1):
        if system.name == "gang":
            raise RuntimeError("server exited early (code 1)")
        return FakeServer(systems.server_argv(system, model_path, extra))

    monkeypatch.setattr(loadgen, "warmup", no_warmup)
    monkeypatch.setattr(bench_online, "make_server", make_server)
    bench_online.main(["--rates", "4,8", "--duration", "0.3", "--drain-max", "0", "--cap", "2", "--detect-at", "1",
                       "--systems", "sglang-fcfs,gang,gang-sjf+certaindex", "--oracle-runs", "1",
                       "--levels", "1:0.5,2:0.5", "--tag", "t", "--out-dir", str(tmp_path), "--sequential"])
    out = json.loads((tmp_path / "online_t.json").read_text())
    assert out["title"].startswith("SEQUENTIAL") and out["comparison"].startswith("SEQUENTIAL")
    assert out["complete"] and out["deadlines"]["source"] == "oracle" and out["oracle"]["system"] == "sglang-fcfs"
    assert set(out["oracle"]["latencies"]) == {"1", "2"}
    assert out["systems"]["gang"]["error"].startswith("RuntimeError") and out["systems"]["gang"]["windows"] == []
    full = out["systems"]["gang-sjf+certaindex"]
    assert full["server"]["argv"][-2:] == ["--dynasor-schedule-policy", "gang-sjf"]
    assert [w["workload"]["rate"] for w in full["windows"]] == [4.0, 8.0]
    assert [len(w["records"]) for w in full["windows"]] == [len(w["records"]) for w in
                                                           out["systems"]["sglang-fcfs"]["windows"]]
    assert all(r["stopped_early"] is False for w in full["windows"] for r in w["records"])  # detect_at 1: no stop
    assert set(out["summary"]["systems"]) == {"sglang-fcfs", "gang", "gang-sjf+certaindex"}
    assert out["workloads"][0]["problems"]["levels"] == {"1": 0.5, "2": 0.5} and out["machine"]["cpu_count"]
    assert all((tmp_path / f"online_t_{k}.png").exists() for k in ("rate", "slo", "fairness"))


def test_main_alternates_systems_round_by_round_over_fake_servers(tmp_path, monkeypatch):
    """The default comparison: every server up at once, rounds with the order swapped, a speed probe
    and a cache flush before every turn, each request's times recorded, records pooled per rate with
    their round, ratios paired by round; a server that fails to start is left out and says why."""
    fake = FakeBackend({}, default=0.01)
    monkeypatch.setattr(loadgen, "make_backend", lambda system, client: fake)
    flushed = []

    async def no_warmup(url, prompts, max_new_tokens=4):
        return None

    def make_server(system, port, log, model_path, extra, workers=1):
        if system.name == "gang":
            raise RuntimeError("server exited early (code 1)")
        return FakeServer(systems.server_argv(system, model_path, extra))

    monkeypatch.setattr(loadgen, "warmup", no_warmup)
    monkeypatch.setattr(bench_online, "make_server", make_server)
    monkeypatch.setattr(bench_online, "flush_cache", flushed.append)
    bench_online.main(["--rates", "4,8", "--duration", "0.3", "--drain-max", "0", "--cap", "2", "--detect-at", "1",
                       "--systems", "sglang-fcfs,gang,gang-sjf+certaindex", "--oracle-runs", "1", "--rounds", "3",
                       "--levels", "1:0.5,2:0.5", "--tag", "t", "--out-dir", str(tmp_path)])
    out = json.loads((tmp_path / "online_t.json").read_text())
    assert out["complete"] and out["comparison"].startswith("alternating: 3 rounds")
    assert out["systems"]["gang"]["error"].startswith("RuntimeError")
    assert [r["order"] for r in out["rounds"]] == [["sglang-fcfs", "gang-sjf+certaindex"],
                                                   ["gang-sjf+certaindex", "sglang-fcfs"],
                                                   ["sglang-fcfs", "gang-sjf+certaindex"]]
    assert len(flushed) == 6  # one flush per turn
    for r in out["rounds"]:
        for turn in r["systems"].values():
            assert turn["probe_s"] > 0 and set(turn["mean_latency_s"]) == {"4", "8"}
    full = out["systems"]["gang-sjf+certaindex"]["windows"]
    assert [w["rounds"] for w in full] == [3, 3]
    assert sorted({rec["round"] for rec in full[1]["records"]}) == [0, 1, 2]
    times = [t for rec in full[1]["records"] for t in rec["request_times"]]
    assert times and all(len(t) == 5 and t[0] is not None and t[4] is not None and t[4] >= t[0] for t in times)
    ratio = out["alternation"]["systems"]["gang-sjf+certaindex"]
    assert out["alternation"]["baseline"] == "sglang-fcfs" and out["alternation"]["interleaved"]
    assert ratio["mean_latency_ratio"]["pairs"] == 6 and set(ratio["by_rate"]) == {"4", "8"}


def test_server_args_are_recorded_without_machine_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("DYNASOR_HOME", str(tmp_path / "dh"))
    assert bench_online.portable(str(tmp_path / "dh" / "models" / "m")) == "$DYNASOR_HOME/models/m"
    assert bench_online.portable(str(Path.home() / "x")) == "~/x" and bench_online.portable("--port") == "--port"
