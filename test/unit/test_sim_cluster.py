"""N simulated engines behind a dispatch (``dynasor.sim.cluster``, ``dynasor.sim.dispatch``): where
requests go under each dispatch, what program placement saves, and that one engine is unchanged."""

from dynasor.scheduler.ordering import QueuePolicy
from dynasor.sim.programs import ScProgram
from dynasor.sim.request import EngineLimits
from dynasor.sim.simulation import ALL_SYSTEMS, DISPATCH_VARIANTS, FULL_SYSTEM, SYSTEMS, SystemSpec, run
from dynasor.sim.step_cost import LinearStepCost

COST = LinearStepCost("test", prefill_fixed_s=0.010, prefill_per_token_s=0.001, prefill_per_token_context_s=0.0,
                      decode_fixed_s=0.020, decode_per_request_s=0.001, decode_per_kv_token_s=0.0)
GANG = SYSTEMS["gang-sjf"]  # every branch at once, no stop: placement is all that differs
ROUND_ROBIN = SystemSpec("gang-sjf/round-robin", QueuePolicy.GANG_SJF, dispatch="round_robin")


def programs(count, branches=4, prompt=200, output=20, spacing=0.0):
    return [ScProgram(f"P{i}", i * spacing, prompt, (output,) * branches, 64, branches, False) for i in range(count)]


def engines_of(result, program_id):
    return {engine for rid, engine in result.served_by.items() if rid.startswith(f"{program_id}-")}


def test_program_placement_keeps_each_program_on_one_engine_and_spreads_programs():
    result = run(programs(4), GANG, COST, EngineLimits(), engines=2)
    homes = [engines_of(result, f"P{i}") for i in range(4)]
    assert all(len(home) == 1 for home in homes)
    assert result.placed == [8, 8]  # least outstanding: the second program goes to the empty engine, and so on


def test_round_robin_spreads_a_programs_branches_over_the_engines():
    result = run(programs(1), ROUND_ROBIN, COST, EngineLimits(), engines=2)
    assert engines_of(result, "P0") == {0, 1} and result.placed == [2, 2]
    stock = run(programs(1), SYSTEMS["sglang-fcfs"], COST, EngineLimits(), engines=2)
    assert stock.placed == [2, 2]  # stock SGLang: untagged, round robin


def test_placement_prefills_a_programs_prompt_once_and_round_robin_once_per_engine():
    # branches arrive a step apart so the first one's prompt is cached before the others are admitted
    spaced = [ScProgram("P0", 0.0, 200, (20,) * 4, 64, 4, False)]
    placed = run(spaced, GANG, COST, EngineLimits(max_running_requests=1), engines=2)
    spread = run(spaced, ROUND_ROBIN, COST, EngineLimits(max_running_requests=1), engines=2)
    assert placed.prefill_tokens == 200 + 3 * 1  # one full prompt, then the last token of each branch
    assert spread.prefill_tokens == 2 * 200 + 2 * 1  # each engine computes the prompt once
    assert placed.cache_hit_rate > spread.cache_hit_rate > 0


def test_two_engines_serve_two_programs_as_fast_as_one_engine_serves_one():
    alone = run(programs(1), GANG, COST, EngineLimits(), engines=1).runs[0].latency
    pair = run(programs(2), GANG, COST, EngineLimits(), engines=2).runs
    shared = run(programs(2), GANG, COST, EngineLimits(), engines=1).runs
    assert [r.latency for r in pair] == [alone, alone]
    assert max(r.latency for r in shared) > alone


def test_a_certaindex_stop_aborts_branches_on_every_engine_holding_them():
    program = ScProgram("P", 0.0, 50, (5, 5, 30, 30), 64, 2, True)
    together = SystemSpec("together/rr", QueuePolicy.GANG_SJF, certaindex=True, launch="together",
                          dispatch="round_robin")
    result = run([program], together, COST, EngineLimits(), engines=2)
    (stopped,) = result.runs
    assert engines_of(result, "P") == {0, 1}
    assert stopped.stopped and [r.aborted for r in stopped.requests] == [False, False, True, True]
    assert all(r.generated < 30 for r in stopped.requests[2:])


def test_total_requests_sends_each_request_to_the_engine_holding_fewest():
    staggered = [ScProgram("A", 0.0, 50, (400,) * 3, 512, 3, False), ScProgram("B", 0.001, 50, (5,), 64, 1, False)]
    result = run(staggered, DISPATCH_VARIANTS["total_requests"], COST, EngineLimits(), engines=2)
    assert [result.served_by[f"A-{i}"] for i in range(3)] == [0, 1, 0]  # alternates while loads tie-break low
    assert result.served_by["B-0"] == 1  # engine 0 holds two of A's branches, engine 1 one


def test_every_system_names_a_known_dispatch():
    from dynasor.sim.dispatch import DISPATCHES

    assert all(spec.dispatch in DISPATCHES for spec in ALL_SYSTEMS.values())
    assert ALL_SYSTEMS[FULL_SYSTEM].describe()["dispatch"] == "program"
    assert SYSTEMS["sglang-fcfs"].describe()["dispatch"] == "round_robin"


def test_one_engine_ignores_the_dispatch():
    batch = programs(3, spacing=0.05)
    one = run(batch, GANG, COST, EngineLimits(max_running_requests=4))
    rr = run(batch, ROUND_ROBIN, COST, EngineLimits(max_running_requests=4))
    assert [r.latency for r in one.runs] == [r.latency for r in rr.runs] and one.steps == rr.steps


def test_an_idle_engine_takes_a_request_at_its_arrival_time():
    late = [ScProgram("A", 0.0, 50, (40,), 64, 1, False), ScProgram("B", 0.5, 50, (5,), 64, 1, False)]
    result = run(late, GANG, COST, EngineLimits(), engines=2)
    b = next(r for r in result.runs if r.program.program_id == "B")
    assert result.served_by["B-0"] == 1 and b.requests[0].arrived_at == 0.5
