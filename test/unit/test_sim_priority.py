"""Stock SGLang's priority scheduling in the simulated engine (``dynasor.sim.priority``), on
hand-computable cases: queue order, preemption only for a request slot and only past the
threshold, the victim SGLang picks, retraction by priority, and the client-priority baseline."""

import pytest

from dynasor.scheduler.ordering import QueuePolicy
from dynasor.sim.engine import SimEngine
from dynasor.sim.priority import PriorityScheduling
from dynasor.sim.programs import ScProgram
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.simulation import SYSTEMS, run
from dynasor.sim.step_cost import LinearStepCost

COST = LinearStepCost("test", prefill_fixed_s=0.010, prefill_per_token_s=0.001, prefill_per_token_context_s=0.0,
                      decode_fixed_s=0.020, decode_per_request_s=0.001, decode_per_kv_token_s=0.0)
PRIORITY = PriorityScheduling()


def request(rid, priority, prompt=100, output=5, max_new=64):
    return SimRequest(rid, None, rid, prompt, 0, output, max_new, source=rid, priority=priority)


def engine(max_running=48, **limits):
    return SimEngine(COST, EngineLimits(max_running_requests=max_running, **limits), QueuePolicy.FCFS,
                     priority=PRIORITY)


def drain(e):
    while not e.idle:
        e.step()


def test_queue_order_is_priority_then_queue_time_and_no_priority_last():
    reqs = [request("none", None), request("late-5", 5), request("early-5", 5), request("one", 1)]
    reqs[1].queued_at, reqs[2].queued_at = 2.0, 1.0
    assert [r.rid for r in PRIORITY.queue_order(reqs)] == ["one", "early-5", "late-5", "none"]
    high_first = PriorityScheduling(low_values_first=False)
    assert [r.rid for r in high_first.queue_order(reqs)] == ["early-5", "late-5", "one", "none"]


def test_a_much_more_important_request_takes_the_only_slot_and_the_victim_recomputes_later():
    e = engine(max_running=1)
    long = request("long", 1000, output=50)
    e.submit(long)
    e.step()  # prefill long alone: 0.110
    short = request("short", 5)
    e.submit(short)
    e.step()
    # no free slot: short (5) outranks long (1000) by more than 10, so long goes back to the queue
    assert e.preemptions == 1 and long.retractions == 1 and long in e.queue.waiting
    assert short.admitted_at == pytest.approx(0.110) and e.running == [short]
    drain(e)
    assert short.finished_at < long.finished_at and long.generated == 50
    assert e.recomputed_tokens == 100  # long's prompt, prefilled again with its first token


def test_no_preemption_within_the_threshold_or_for_a_less_important_request():
    for running_priority, waiting_priority in ((15, 5), (5, 1000)):  # 10 apart is not enough
        e = engine(max_running=1)
        first = request("first", running_priority, output=20)
        e.submit(first)
        e.step()
        second = request("second", waiting_priority)
        e.submit(second)
        drain(e)
        assert e.preemptions == 0 and second.admitted_at >= first.finished_at


@pytest.mark.parametrize("priorities, victim", [((100, 100), "later"), ((200, 100), "earlier")])
def test_the_victim_is_the_least_important_then_the_latest_queued(priorities, victim):
    e = engine(max_running=2)
    earlier, later = request("earlier", priorities[0], output=50), request("later", priorities[1], output=50)
    e.submit(earlier)
    e.step()
    e.submit(later)
    e.step()
    assert e.running == [earlier, later]
    e.submit(request("urgent", 1))
    e.step()
    assert e.preemptions == 1 and [r.rid for r in e.queue.waiting] == [victim]


def test_a_request_short_of_kv_is_not_a_reason_to_preempt():
    # slots are free but the KV budget is not: stock SGLang waits (and may retract on decode)
    e = engine(max_running=48, kv_tokens=300)
    big = request("big", 1000, prompt=100, output=60, max_new=100)
    e.submit(big)
    e.step()
    urgent = request("urgent", 1, prompt=100, max_new=100)
    e.submit(urgent)
    e.step()
    assert e.preemptions == 0 and urgent in e.queue.waiting


@pytest.mark.parametrize("by_priority", [True, False])
def test_decode_retraction_takes_the_least_important_first_under_the_priority_policy(by_priority):
    # fixed new_token_ratio 0.1: both fit at admission, and the pool runs out while they decode
    limits = {"kv_tokens": 400, "init_new_token_ratio": 0.1, "min_new_token_ratio": 0.1, "new_token_ratio_decay": 0.0}
    e = SimEngine(COST, EngineLimits(**limits), QueuePolicy.FCFS,
                  priority=PriorityScheduling(retraction_by_priority=by_priority))
    old = request("old", 100, prompt=100, output=200, max_new=200)  # more output, less important
    e.submit(old)
    for _ in range(6):  # prefill, then 5 decode steps alone
        e.step()
    new = request("new", 1, prompt=50, output=200, max_new=200)
    e.submit(new)
    e.step()
    assert e.running == [old, new]
    drain(e)
    retracted = {r.rid for r in (old, new) if r.retractions}
    # priority: the less important one, though it has more output; length (SGLang's default): fewest outputs
    assert retracted == ({"old"} if by_priority else {"new"})


def test_the_client_priority_baseline_admits_the_smaller_program_first():
    """C (1 branch) is prefilled alone; then A (4 branches x 64 budget: priority 256) and B (1 x 64:
    priority 64) wait together with 3 of 4 slots free. fcfs admits A's branches; priority admits B."""
    programs = [ScProgram("C", 0.0, 100, (20,), 64, 1, False), ScProgram("A", 0.001, 100, (50,) * 4, 64, 4, False),
                ScProgram("B", 0.001, 100, (50,), 64, 1, False)]
    admitted = {}
    for name in ("sglang-fcfs", "sglang-priority"):
        result = run(programs, SYSTEMS[name], COST, EngineLimits(max_running_requests=4))
        runs = {r.program.program_id: r for r in result.runs}
        assert [r.priority for r in runs["A"].requests] == ([256] * 4 if name == "sglang-priority" else [None] * 4)
        admitted[name] = runs["B"].requests[0].admitted_at
        assert result.preemptions == 0  # A's waiting branches (256) outrank no running request
    assert admitted["sglang-priority"] == pytest.approx(0.110) and admitted["sglang-fcfs"] > 0.2


def test_priority_scheduling_refuses_lpm_as_sglang_does():
    with pytest.raises(ValueError, match="fcfs only"):
        SimEngine(COST, EngineLimits(), QueuePolicy.LPM, priority=PRIORITY)


def keyed(rid, program):
    return SimRequest(rid, None, program, 100, 0, 5, 64, source=program)


def test_routing_key_puts_the_programs_already_running_first_most_running_first():
    from dynasor.sim.background import BACKGROUND
    from dynasor.sim.routing_key import routing_key, sort_by_routing_key

    running = [keyed("x0", "X"), keyed("x1", "X"), keyed("y0", "Y")]
    waiting = [keyed("z0", "Z"), keyed("y1", "Y"), keyed("w0", "W"), keyed("x2", "X"), keyed("z1", "Z"),
               SimRequest("bg", None, None, 100, 0, 5, 64, source=BACKGROUND)]
    untouched = list(waiting)
    sort_by_routing_key(waiting, [])
    assert waiting == untouched  # nothing running has a key: the queue stays as it is
    sort_by_routing_key(waiting, running)
    # X (2 running), Y (1); then the rest by key string: the key-less background request, then W and
    # Z in their keys' order (a hash of the program id), each program's requests in queue order
    rest = ["w0", "z0", "z1"] if routing_key(keyed("", "W")) < routing_key(keyed("", "Z")) else ["z0", "z1", "w0"]
    assert [r.rid for r in waiting] == ["x2", "y1", "bg", *rest]
