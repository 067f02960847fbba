"""The simulator's validation layers on hand-made live runs: an engine whose decisions the simulator
made itself agrees with it exactly on the live clock, a changed decision is found, the step-cost
error is the model's, and the repeat layer compares medians and reports the live spread."""

from __future__ import annotations

import pytest

from benchmark.sim.layers import (
    DecisionRecorder,
    LiveClock,
    LiveRequest,
    decision_agreement,
    live_requests,
    repeat_layer,
    replay,
    step_cost_error,
)
from dynasor.scheduler.ordering import QueuePolicy
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.step_cost import LinearStepCost

COST = LinearStepCost("test", 0.05, 0.001, 0.0, 0.02, 0.004, 0.00001)
LIMITS = EngineLimits(max_running_requests=4, kv_tokens=100_000)
HEADERS = {0: ("shots-0", 10)}


def records(programs: int = 5, branches: int = 3) -> list[dict]:
    """A window's records: programs arriving 0.3 s apart, each with ``branches`` requests."""
    out = []
    for p in range(programs):
        rows = [[30, 5 + (p + b) % 4, 0, 0] for b in range(branches)]
        times = [[p * 0.3, p * 0.3 + 0.01, None, None, None] for _ in range(branches)]
        out.append({"index": p, "level": 0, "arrival": p * 0.3, "latency": 1.0, "requests": rows,
                    "request_times": times, "request_ids": [f"r{p}-{b}" for b in range(branches)]})
    return out


def live_steps(recs: list[dict], policy: QueuePolicy) -> list[dict]:
    """What a live engine making the simulator's own decisions would have logged."""
    engine = DecisionRecorder(COST, LIMITS, policy, program_eviction=False, keep_steps=True)
    engine.decisions = []
    replay(live_requests(recs, HEADERS, not policy.is_stock, 16), engine)
    assert engine.steps is not None
    steps = []
    for (kind, decision), step in zip(engine.decisions, engine.steps):
        row = {"mode": kind, "seconds": step.seconds, "batch_size": step.requests}
        if kind == "prefill":
            row["admitted"] = sorted(decision)
        steps.append(row)
    return steps


@pytest.mark.parametrize("policy", [QueuePolicy.FCFS, QueuePolicy.GANG_SJF])
def test_an_engine_that_decided_as_the_simulator_agrees_exactly(policy):
    recs = records()
    steps = live_steps(recs, policy)
    result = decision_agreement(recs, steps, policy, LIMITS, COST, HEADERS, 16)
    assert result["agreement"] == 1.0 and result["steps"] == len(steps) > 10


def test_a_different_admission_is_found():
    recs = records()
    steps = live_steps(recs, QueuePolicy.FCFS)
    first = next(i for i, s in enumerate(steps) if s["mode"] == "prefill" and len(s["admitted"]) > 1)
    steps[first] = {**steps[first], "admitted": steps[first]["admitted"][:-1]}
    result = decision_agreement(recs, steps, QueuePolicy.FCFS, LIMITS, COST, HEADERS, 16)
    assert result["matched"] < result["steps"] and result["prefill"]["matched"] < result["prefill"]["live"]


def test_the_live_clock_answers_with_live_durations_then_the_model():
    clock = LiveClock([{"mode": "decode", "seconds": 0.5}, {"mode": "prefill", "seconds": 0.7}], COST)
    assert clock.decode_seconds(2, 100) == 0.5 and clock.prefill_seconds([(10, 0)]) == 0.7
    assert clock.decode_seconds(2, 100) == COST.decode_seconds(2, 100)


def test_step_cost_error_is_the_models_relative_error():
    exact = {"mode": "decode", "batch_size": 4, "context_tokens": 200, "seconds": COST.decode_seconds(4, 200)}
    off = {**exact, "seconds": exact["seconds"] * 2}
    result = step_cost_error([exact, exact, off], COST)
    assert result["decode"]["steps"] == 3 and result["median_error"] == pytest.approx(0.0, abs=1e-12)
    assert step_cost_error([off], COST)["median_error"] == pytest.approx(0.5)


def test_the_repeat_layer_compares_medians_and_reports_the_spread():
    live = {0: [1.0, 1.2, 0.8], 1: [2.0, 2.0, 2.0], 2: [3.0]}  # program 2: one round only, left out
    simulated = {0: [1.05], 1: [2.2, 2.2], 2: [3.0]}
    result = repeat_layer(live, simulated)
    assert result["programs"] == 2
    assert result["median_latency_error_vs_live_median"] == pytest.approx(0.075)  # errors 0.05 and 0.1
    assert result["live_repeat_spread"] == pytest.approx(0.0)  # 6 distances: 0, 0.2, 0.2, 0, 0, 0
    assert result["target"] == 0.10 and result["met"]


def test_live_requests_arrive_at_the_servers_receipt_in_order():
    reqs = live_requests(records(2, 2), HEADERS, True, 16)
    assert [r.received for r in reqs] == sorted(r.received for r in reqs)
    assert all(isinstance(r, LiveRequest) and isinstance(r.request, SimRequest) for r in reqs)
    assert reqs[0].request.program_id == "p0" and reqs[0].request.header == HEADERS[0]
