"""The simulated engine on hand-computable cases: every expected time below is worked out from
the step costs (prefill 10 ms + 1 ms per new token; decode 20 ms + 1 ms per request)."""

import pytest

from dynasor.scheduler.ordering import QueuePolicy
from dynasor.sim.engine import SimEngine
from dynasor.sim.programs import ScProgram
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.simulation import SYSTEMS, SystemSpec, run
from dynasor.sim.step_cost import LinearStepCost

COST = LinearStepCost("test", prefill_fixed_s=0.010, prefill_per_token_s=0.001, prefill_per_token_context_s=0.0,
                      decode_fixed_s=0.020, decode_per_request_s=0.001, decode_per_kv_token_s=0.0)


def drain(engine, until_idle=True):
    while not engine.idle:
        engine.step()


def request(rid, prompt=100, output=5, max_new=64, prefix=None, program=None):
    return SimRequest(rid, program, prefix or rid, prompt, 0, output, max_new, source=program)


def test_one_request_is_one_prefill_then_a_decode_step_per_token():
    engine = SimEngine(COST, EngineLimits(), QueuePolicy.FCFS, keep_steps=True)
    req = request("r", prompt=100, output=5)
    engine.submit(req)
    drain(engine)
    # prefill 0.010 + 100 x 0.001 = 0.110 (samples token 1), then 4 decode steps of 0.021
    assert req.admitted_at == 0.0 and req.first_token_at == pytest.approx(0.110)
    assert req.finished_at == pytest.approx(0.110 + 4 * 0.021) and req.generated == 5
    assert [s.kind for s in engine.steps] == ["prefill"] + ["decode"] * 4


def test_a_cached_prefix_skips_its_prefill():
    engine = SimEngine(COST, EngineLimits(), QueuePolicy.LPM, keep_steps=True)
    first = request("a", prompt=100, output=2, prefix="prompt")
    engine.submit(first)
    drain(engine)
    second = request("b", prompt=100, output=2, prefix="prompt")
    engine.submit(second)
    engine.step()
    # the whole prompt is cached but one token (a prefill computes at least one): 0.010 + 0.001
    assert second.matched == 99 and engine.steps[-1].seconds == pytest.approx(0.011)


def sjf_case(system):
    """C (one branch of 20 tokens) arrives at 0 and is prefilled alone; A (4 branches) and B (1
    branch) arrive at 0.001; at most 4 requests run."""
    programs = [ScProgram("C", 0.0, 100, (20,), 64, 1, False), ScProgram("A", 0.001, 100, (50,) * 4, 64, 4, False),
                ScProgram("B", 0.001, 100, (50,), 64, 1, False)]
    result = run(programs, system, COST, EngineLimits(max_running_requests=4))
    return {r.program.program_id: r for r in result.runs}


def test_shortest_program_first_admits_the_one_branch_program_before_the_four_branch_one():
    # gang-sjf at t = 0.110 (after C's prefill): B's remaining work 64 < A's 4 x 64, so B goes first
    sjf = sjf_case(SYSTEMS["gang-sjf"])
    assert sjf["B"].requests[0].admitted_at == pytest.approx(0.110)
    # fcfs: A0-A2 fill the 4 slots at 0.110 (prefill 0.310 -> t = 0.420); C ends after 19 decode
    # steps of 4 requests (0.024 each); A3, ahead of B in the queue, takes its slot with a 1-token
    # prefill (its prompt is cached: 0.011); B waits for A0-A2's 30 remaining tokens
    fcfs = sjf_case(SYSTEMS["sglang-fcfs"])
    assert [r.admitted_at for r in fcfs["A"].requests[:3]] == [pytest.approx(0.110)] * 3
    c_ends = 0.420 + 19 * 0.024
    assert fcfs["A"].requests[3].admitted_at == pytest.approx(c_ends)
    assert fcfs["B"].requests[0].admitted_at == pytest.approx(c_ends + 0.011 + 30 * 0.024)
    assert fcfs["B"].latency > sjf["B"].latency


def test_kv_exhaustion_retracts_the_request_with_the_fewest_output_tokens():
    # 3 requests of 10-token prompts and 40 output tokens in a 100-token pool; max_new 200 clipped
    # to 20 by the admission estimate, so all 3 are admitted (each reserves 10 + 20 + 1 = 31)
    limits = EngineLimits(kv_tokens=100, clip_max_new_tokens=20)
    engine = SimEngine(COST, limits, QueuePolicy.FCFS)
    reqs = [request(f"r{i}", prompt=10, output=40, max_new=200) for i in range(3)]
    for r in reqs:
        engine.submit(r)
    drain(engine)
    # KV after k decode steps: 30 + 3k; the 24th step finds 1 free token for 3 requests and
    # retracts the last of three equal candidates, at 0.040 + 23 x 0.023
    assert engine.retractions == 1 and [r.retractions for r in reqs] == [0, 0, 1]
    assert reqs[2].arrived_at == 0.0 and reqs[2].queued_at == pytest.approx(0.040 + 23 * 0.023)
    assert all(r.generated == 40 and not r.aborted for r in reqs)
    assert engine.recomputed_tokens == 10 + 23  # its prompt and 23 of its tokens were dropped


def test_a_certaindex_stop_aborts_the_branches_still_in_the_engine():
    program = ScProgram("P", 0.0, 50, (5, 5, 30, 30), 64, 2, True)
    together = SystemSpec("together", QueuePolicy.GANG_SJF, certaindex=True, launch="together")
    stopped = {r.program.program_id: r for r in run([program], together, COST,
                                                       EngineLimits(max_running_requests=2)).runs}["P"]
    kept = {r.program.program_id: r for r in run([program], SYSTEMS["gang-sjf"], COST,
                                                    EngineLimits(max_running_requests=2)).runs}["P"]
    assert stopped.stopped and stopped.answered == 2 and sum(r.aborted for r in stopped.requests) == 2
    assert kept.answered == 4 and stopped.latency < kept.latency and stopped.tokens < kept.tokens


def test_staged_launch_submits_the_rest_only_when_the_program_goes_on():
    stop = ScProgram("S", 0.0, 50, (5, 5, 30, 30), 64, 2, True)
    go = ScProgram("G", 0.0, 50, (5, 5, 30, 30), 64, 2, False)
    staged = SystemSpec("staged", QueuePolicy.GANG_SJF, certaindex=True, launch="staged")
    runs = {r.program.program_id: r for r in run([stop, go], staged, COST, EngineLimits()).runs}
    assert len(runs["S"].requests) == 2 and runs["S"].stopped
    assert len(runs["G"].requests) == 4 and runs["G"].answered == 4


def test_deferred_branches_wait_behind_another_program_while_their_first_round_runs():
    # A: 4 branches, detection at 2 (A-0 ends after 5 tokens, A-1 after 30); B: one branch arriving
    # just after; 2 may run. When A-0 ends, B's branch and A's deferred A-2 wait for the free slot.
    def admitted(launch):
        a = ScProgram("A", 0.0, 50, (5, 30, 30, 30), 64, 2, False)
        b = ScProgram("B", 0.001, 50, (10,), 64, 1, False)
        system = SystemSpec(launch, QueuePolicy.GANG_SJF, certaindex=True, launch=launch)
        runs = {r.program.program_id: r for r in run([a, b], system, COST, EngineLimits(max_running_requests=2)).runs}
        return runs, {req.rid: req.admitted_at for r in runs.values() for req in r.requests}

    runs, deferred = admitted("deferred")
    assert [r.deferred for r in runs["A"].requests] == [False, False, True, True]
    assert deferred["B-0"] < deferred["A-2"]  # deferred: the other program's branch goes first
    _, together = admitted("together")
    assert together["A-2"] < together["B-0"]  # together: A is in service, its gang goes first
    assert runs["A"].answered == 4 and runs["B"].answered == 1


def test_a_deferred_program_that_stops_aborts_its_deferred_branches():
    program = ScProgram("P", 0.0, 50, (5, 5, 30, 30), 64, 2, True)
    system = SystemSpec("deferred", QueuePolicy.GANG_SJF, certaindex=True, launch="deferred")
    (stopped,) = run([program], system, COST, EngineLimits(max_running_requests=2)).runs
    assert stopped.stopped and stopped.answered == 2 and [r.aborted for r in stopped.requests] == [False, False,
                                                                                                   True, True]
    assert stopped.tokens == 10  # the deferred branches never ran


def test_in_batch_prefix_sharing_holds_back_the_second_request_of_an_uncached_prompt():
    from dynasor.sim.queue_policy import held_for_prefix_sharing

    queue = [request("a0", prefix="A"), request("b0", prefix="B"), request("a1", prefix="A"),
             request("c0", prompt=16, prefix="C"), request("c1", prompt=16, prefix="C")]
    assert held_for_prefix_sharing(queue, lambda req: 0, 32) == {"a1"}  # C is shorter than the threshold
    assert held_for_prefix_sharing(queue, lambda req: 100 if req.prefix_key == "A" else 0, 32) == set()  # cached


def test_lpm_puts_the_cached_prompt_first_and_fcfs_keeps_arrival_order():
    for policy, first in ((QueuePolicy.LPM, "warm"), (QueuePolicy.FCFS, "cold")):
        engine = SimEngine(COST, EngineLimits(max_running_requests=1), policy)
        engine.submit(request("seed", prompt=200, output=1, prefix="P"))
        drain(engine)  # the prompt P is now cached
        engine.submit(request("blocker", prompt=10, output=50, prefix="X"))
        engine.step()  # the blocker runs, the cap is full: the next two wait
        cold, warm = request("cold", prompt=200, output=1, prefix="Q"), request("warm", prompt=200, output=1,
                                                                                 prefix="P")
        engine.submit(cold)
        engine.submit(warm)
        drain(engine)
        assert min((cold, warm), key=lambda r: r.admitted_at).rid == first


def test_a_header_every_program_shares_is_prefilled_once():
    # two programs whose 200-token prompts start with the same 150-token header (few-shot examples):
    # the second program's prefill computes only its own 50 tokens (0.010 + 0.050)
    engine = SimEngine(COST, EngineLimits(), QueuePolicy.FCFS, keep_steps=True)
    first = SimRequest("a", None, "A", 200, 0, 1, 8, header=("shots", 150))
    engine.submit(first)
    drain(engine)
    second = SimRequest("b", None, "B", 200, 0, 1, 8, header=("shots", 150))
    engine.submit(second)
    engine.step()
    assert second.matched == 150 and engine.steps[-1].seconds == pytest.approx(0.060)
    assert engine.cache.entries["shots"].tokens == 150 and engine.cache.entries["A"].tokens == 50


def test_transport_delays_arrival_and_requests_sent_together_reach_an_idle_engine_apart():
    from dynasor.sim.simulation import Transport

    program = ScProgram("P", 0.0, 100, (3, 3), 64, 2, False)
    transport = Transport(arrival_s=0.05, spacing_s=0.001, return_s=0.01)
    result = run([program], SYSTEMS["sglang-fcfs"], COST, EngineLimits(), transport=transport)
    first, second = result.runs[0].requests
    # the first branch reaches the idle engine at 0.050 and is prefilled alone (0.110); the second,
    # 1 ms later, waits for that step and hits the cached prompt (1 token: 0.011)
    assert first.admitted_at == pytest.approx(0.050) and second.admitted_at == pytest.approx(0.160)
    assert second.matched == 99
    assert result.runs[0].finished_at == pytest.approx(max(first.finished_at, second.finished_at) + 0.01)


def test_a_staged_program_that_goes_on_ends_with_its_second_round():
    # both first-round branches end in the same step: the program must not count as finished
    # before it hears the second one and launches its second round
    program = ScProgram("G", 0.0, 50, (5, 5, 5, 5), 64, 2, False)
    staged = SystemSpec("staged", QueuePolicy.GANG_SJF, certaindex=True, launch="staged")
    (result,) = run([program], staged, COST, EngineLimits()).runs
    assert len(result.requests) == 4 and result.answered == 4
    assert result.finished_at == pytest.approx(max(r.finished_at for r in result.requests))
    assert result.finished_at > max(r.finished_at for r in result.requests[:2])


def test_quiet_decode_steps_in_one_call_are_the_same_steps():
    """step(until=...) runs the decode steps that can change nothing but the clock back to back:
    the same step records, clock, counts and new_token_ratio as one step per call."""
    def play(until):
        limits = EngineLimits(kv_tokens=700, init_new_token_ratio=0.05, min_new_token_ratio=0.01)
        engine = SimEngine(COST, limits, QueuePolicy.FCFS, keep_steps=True)
        reqs = [request(f"r{i}", prompt=100, output=out, max_new=400) for i, out in enumerate((300, 280, 250))]
        for req in reqs:  # one at a time: the second is admitted beside the first, the third waits
            engine.submit(req)
            engine.step()
        calls = 0
        while not engine.idle:
            engine.step(until=until)
            calls += 1
        return engine, reqs, calls

    one_by_one, reqs_a, calls_a = play(None)
    quietly, reqs_b, calls_b = play(float("inf"))
    assert calls_b < calls_a / 10  # few calls: steps ran back to back between finishes
    assert [(s.kind, s.start, s.seconds, s.requests) for s in quietly.steps] == \
        [(s.kind, s.start, s.seconds, s.requests) for s in one_by_one.steps]
    assert [(r.finished_at, r.generated, r.retractions) for r in reqs_b] == \
        [(r.finished_at, r.generated, r.retractions) for r in reqs_a]
    assert quietly.retractions == one_by_one.retractions > 0  # the pool ran out on the way: retraction steps
    assert quietly.ratio == one_by_one.ratio and quietly.busy_seconds == one_by_one.busy_seconds
    # an event at 0.5 s: the last step of the call starts before it
    engine = SimEngine(COST, EngineLimits(), QueuePolicy.FCFS, keep_steps=True)
    engine.submit(request("r", prompt=100, output=300))
    engine.step()
    engine.step(until=0.5)
    assert engine.steps[-1].start < 0.5 <= engine.now


def test_capacity_counts_the_iterations_a_request_waits_and_the_pool_it_holds():
    """One running slot, two requests: the second waits through the first's prefill and 4 decode
    steps (5 of 10 iterations), and the quiet back-to-back steps meter the same as one per call."""
    def play(until):
        engine = SimEngine(COST, EngineLimits(max_running_requests=1, kv_tokens=1000), QueuePolicy.FCFS)
        for rid in ("a", "b"):
            engine.submit(request(rid, prompt=100, output=5))
        while not engine.idle:
            engine.step(until=until)
        return engine

    one_by_one, quietly = play(None), play(float("inf"))
    meter = one_by_one.capacity
    assert (meter.steps, meter.steps_with_waiting) == (10, 5)
    assert meter.seconds == pytest.approx(one_by_one.busy_seconds)
    # the pool never holds more than both prompts and outputs: (100 + 5) x 2 of 1,000 tokens
    assert 0.1 <= meter.peak_kv_use <= 0.21 and 0 < meter.kv_use_seconds / meter.seconds < meter.peak_kv_use
    q = quietly.capacity
    assert (q.steps, q.steps_with_waiting, q.peak_kv_use) == (meter.steps, meter.steps_with_waiting, meter.peak_kv_use)
    assert q.kv_use_seconds == pytest.approx(meter.kv_use_seconds)
    assert meter.to_json(programs=2, retractions=0, recomputed_tokens=0)["waiting_step_share"] == 0.5
