"""Tightest SLO scale and its paired-bootstrap ratio (``dynasor.evaluation.slo_scale``)."""

import math

import pytest

from dynasor.evaluation.slo_scale import slo_ratio_intervals, tightest_scale


def test_tightest_scale_is_the_slowdown_that_covers_the_target_share():
    slowdowns = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 9.0]
    assert tightest_scale(slowdowns, 0.9) == 5.0  # 9 of 10 programs have slowdown <= 5
    assert tightest_scale(slowdowns, 0.5) == 2.5
    assert tightest_scale(slowdowns, 1.0) == 9.0
    assert tightest_scale([1.0, math.inf], 0.9) == math.inf  # one of two never finished
    with pytest.raises(ValueError):
        tightest_scale([], 0.9)


def test_slo_ratio_is_the_baselines_scale_over_the_systems():
    base = [float(i) for i in range(1, 101)]
    ours = [x / 2 for x in base]  # every program twice as fast: twice as tight an SLO
    out = slo_ratio_intervals({"fcfs": base, "ours": ours}, ["fcfs"], 0.9, replicates=200, seed=1)
    entry = out["ours"]["fcfs"]
    assert entry["ratio"] == pytest.approx(2.0) and entry["low"] == pytest.approx(2.0)
    assert entry["high"] == pytest.approx(2.0) and entry["excludes_1"] is True
    assert out["fcfs"]["fcfs"]["ratio"] == 1.0 and out["fcfs"]["fcfs"]["excludes_1"] is False


def test_slo_ratio_is_undefined_when_a_system_misses_the_target_for_good():
    base = [1.0] * 5 + [math.inf] * 5
    out = slo_ratio_intervals({"fcfs": base, "ours": [1.0] * 10}, ["fcfs"], 0.9, replicates=100)
    assert out["ours"]["fcfs"]["ratio"] is None and out["ours"]["fcfs"]["low"] is None
