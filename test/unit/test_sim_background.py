"""Background traffic from a request trace, and the simulator's ablation systems."""

import pytest

from dynasor.scheduler.ordering import QueuePolicy
from dynasor.sim.background import BACKGROUND_MAX_NEW_TOKENS, TraceRequest, load_trace, until
from dynasor.sim.prefix_cache import PrefixCache
from dynasor.sim.programs import ScProgram
from dynasor.sim.request import EngineLimits
from dynasor.sim.simulation import ABLATIONS, ALL_SYSTEMS, FULL_SYSTEM, SYSTEMS, run
from dynasor.sim.step_cost import LinearStepCost

COST = LinearStepCost("test", prefill_fixed_s=0.010, prefill_per_token_s=0.001, prefill_per_token_context_s=0.0,
                      decode_fixed_s=0.020, decode_per_request_s=0.001, decode_per_kv_token_s=0.0)


def test_a_trace_loads_in_arrival_order_and_repeats_past_its_end(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n2.0,30,4\n0.0,10,2\n")
    trace = load_trace(path)
    assert trace == [TraceRequest(0.0, 10, 2), TraceRequest(2.0, 30, 4)]
    assert [r.arrival for r in until(trace, 1.0)] == [0.0]
    assert [r.arrival for r in until(trace, 7.0)] == [0.0, 2.0, 4.0, 6.0]  # copies one mean gap (2 s) apart
    (tmp_path / "e.csv").write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n")
    with pytest.raises(ValueError, match="no requests"):
        load_trace(tmp_path / "e.csv")


def test_a_background_request_is_untagged_and_timed_from_its_trace_arrival():
    # alone: prefill 0.010 + 100 x 0.001 = 0.110 samples token 1, then 2 decode steps of 0.021
    result = run([], SYSTEMS[FULL_SYSTEM], COST, EngineLimits(), background=[TraceRequest(1.0, 100, 3)])
    assert result.background_latencies == [pytest.approx(0.110 + 2 * 0.021)]
    assert BACKGROUND_MAX_NEW_TOKENS >= 1000  # no row of the conversation trace is cut


def test_background_traffic_delays_a_program_that_shares_the_engine():
    program = ScProgram("p", 0.0, 100, (20, 20), 64, 2, False)
    alone = run([program], SYSTEMS["sglang-fcfs"], COST, EngineLimits()).runs[0].latency
    crowd = [TraceRequest(0.0, 500, 40)] * 3
    shared = run([program], SYSTEMS["sglang-fcfs"], COST, EngineLimits(), background=crowd)
    assert shared.runs[0].latency > alone and len(shared.background_latencies) == 3


def test_each_ablation_takes_one_mechanism_out_of_the_full_system():
    full = SYSTEMS[FULL_SYSTEM]
    assert ABLATIONS["gang"].policy is QueuePolicy.SJF and ABLATIONS["SJF"].policy is QueuePolicy.GANG
    assert ABLATIONS["certaindex"].certaindex is False and ABLATIONS["certaindex"].policy is full.policy
    assert ABLATIONS["program-aware eviction"].program_eviction is False
    assert ABLATIONS["starvation guard"].guard.bound(1.0) == float("inf") and full.guard.bound(1.0) < 60.1
    assert len({s.name for s in ALL_SYSTEMS.values()}) == len(ALL_SYSTEMS)


def test_the_cache_keeps_its_token_count_as_entries_change():
    cache = PrefixCache(lambda pid: True)
    cache.insert("a", 100, "p", 0.0)
    cache.insert("b", 50, None, 0.0)
    cache.grow("a", 160)
    cache.grow("a", 120)  # a segment never shrinks
    assert cache.tokens == 210 == sum(e.tokens for e in cache.entries.values())
    cache.unlock("b", 1.0)
    assert cache.evict(10) == 50 and cache.tokens == 160
