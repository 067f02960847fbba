"""Gang admission against KV and program retraction (``dynasor.scheduler.kv_gang``), as rules and
in the simulated engine, on hand-computable cases."""

from dynasor.scheduler.kv_gang import KvRow, RunningGroup, gang_fits, peak_kv, program_retraction_order
from dynasor.scheduler.ordering import QueuePolicy
from dynasor.sim.engine import SimEngine
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.step_cost import LinearStepCost

COST = LinearStepCost("test", prefill_fixed_s=0.010, prefill_per_token_s=0.001, prefill_per_token_context_s=0.0,
                      decode_fixed_s=0.020, decode_per_request_s=0.001, decode_per_kv_token_s=0.0)


def test_the_peak_is_just_before_a_request_ends():
    # a: holds 10, ends in 5 steps; b: holds 0, ends in 10. Before a ends: 10 + 0 + 2 x 5 = 20;
    # before b ends (a gone): 0 + 10 = 10
    assert peak_kv([KvRow(10, 5), KvRow(0, 10)]) == 20
    assert peak_kv([KvRow(0, 100)] * 3) == 300 and peak_kv([]) == 0
    assert gang_fits([KvRow(10, 5)], [KvRow(0, 10)], capacity=20)
    assert not gang_fits([KvRow(10, 5)], [KvRow(0, 10)], capacity=19)


def test_the_program_with_the_most_remaining_work_gives_way_first():
    groups = [RunningGroup("a", 300.0, ("a0", "a1")), RunningGroup("b", 900.0, ("b0", "b1", "b2")),
              RunningGroup("c", 300.0, ("c0",))]
    assert program_retraction_order(groups) == [("b0", "b1", "b2"), ("c0",), ("a0", "a1")]


def branches(program, count, prompt=100, output=100, max_new=100, hint=None):
    return [SimRequest(f"{program}{i}", program, program, prompt, 0, output, max_new, source=program,
                       remaining_work_hint=hint) for i in range(count)]


def test_a_gang_that_does_not_fit_waits_whole():
    """A (one branch, expected to make 255 more tokens) runs; B's 8 branches (50-token prompt, 100
    tokens each) peak at 50 + 9 x 100 = 950 > 900 (the pool less A's cached prompt). SGLang's own
    check admits 4 of them (a 151-token charge each against 1000 - 100 - 0.7 x 399 = 621)."""
    admitted = {}
    for kv_gang in (False, True):
        engine = SimEngine(COST, EngineLimits(kv_tokens=1000), QueuePolicy.GANG_SJF, kv_admission=kv_gang)
        (a,) = branches("A", 1, output=300, max_new=400)
        engine.submit(a)
        engine.step()
        b = branches("B", 8, prompt=50)
        for req in b:
            engine.submit(req)
        engine.step()
        admitted[kv_gang] = sum(r.admitted_at is not None for r in b)
        while not engine.idle:
            engine.step()
        assert all(r.generated == 100 for r in b) and a.generated == 300
    assert admitted == {False: 4, True: 0}


def test_under_program_retraction_the_program_with_more_remaining_work_gives_way():
    """X (3 branches, hint 3000 tokens) and then Y (1 branch, hint 1000) run until the pool of 4000
    runs out (they need 100 + 3 x 1000 + 100 + 1000). SGLang's order retracts Y's request (fewest
    output tokens); program retraction takes a branch of X, the program with more work left."""
    retracted = {}
    for kv_gang in (False, True):
        engine = SimEngine(COST, EngineLimits(kv_tokens=4000), QueuePolicy.GANG_SJF, kv_admission=True,
                           program_retraction=kv_gang)
        x = branches("X", 3, output=1000, max_new=1000, hint=3000.0)
        for req in x:
            engine.submit(req)
        engine.step()
        (y,) = branches("Y", 1, output=1000, max_new=1000, hint=1000.0)
        engine.submit(y)
        while engine.retractions == 0 and not engine.idle:
            engine.step()
        retracted[kv_gang] = sorted(r.rid for r in (*x, y) if r.retractions)
        while not engine.idle:
            engine.step()
        assert all(r.generated == 1000 for r in (*x, y))
    assert retracted == {False: ["Y0"], True: ["X0"]}
