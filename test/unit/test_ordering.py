import random
from collections.abc import Mapping

import pytest

from dynasor.scheduler.group_order import order_waiting
from dynasor.scheduler.ordering import ProgramView, QueuePolicy, StarvationGuard, WaitingRequest


def reqs(*spec):
    """spec: (rid, program or None, queued_at[, cached, deprioritized])."""
    return [WaitingRequest(s[0], s[1], s[2], *s[3:]) for s in spec]


def view(first_arrival, in_service=False, work=100.0):
    return ProgramView(first_arrival, in_service, work)


def rids(waiting, policy, programs, now=10.0, **kw):
    return [waiting[i].rid for i in order_waiting(waiting, programs, policy, now, **kw).order]


INTERLEAVED = reqs(("a1", "A", 1.0), ("b1", "B", 1.1), ("a2", "A", 1.2), ("b2", "B", 1.3),
                   ("a3", "A", 1.4), ("b3", "B", 1.5))


def test_stock_policies_keep_sglangs_order():
    for policy in (QueuePolicy.FCFS, QueuePolicy.LPM):
        assert rids(INTERLEAVED, policy, {}) == ["a1", "b1", "a2", "b2", "a3", "b3"]


@pytest.mark.parametrize("policy", [QueuePolicy.PROGRAM_FIFO, QueuePolicy.GANG, QueuePolicy.GANG_SJF])
def test_programs_are_contiguous(policy):
    programs = {"A": view(1.0), "B": view(1.1)}
    assert rids(INTERLEAVED, policy, programs) == ["a1", "a2", "a3", "b1", "b2", "b3"]


def test_gang_puts_programs_in_service_first():
    programs = {"A": view(1.0), "B": view(1.1, in_service=True)}
    assert rids(INTERLEAVED, QueuePolicy.GANG, programs) == ["b1", "b2", "b3", "a1", "a2", "a3"]
    assert rids(INTERLEAVED, QueuePolicy.PROGRAM_FIFO, programs)[0] == "a1"  # FIFO ignores service


def test_sjf_orders_programs_by_remaining_work():
    waiting = reqs(("l", "LONG", 1.0), ("m", "MID", 2.0), ("s", "SHORT", 3.0))
    programs = {"LONG": view(1.0, work=3000), "MID": view(2.0, work=200), "SHORT": view(3.0, work=50)}
    now = 3.5  # nobody has waited past the 5 s floor of the starvation guard
    assert rids(waiting, QueuePolicy.GANG_SJF, programs, now) == ["s", "m", "l"]
    assert rids(waiting, QueuePolicy.GANG, programs, now) == ["l", "m", "s"]
    programs["LONG"] = view(1.0, in_service=True, work=3000)  # finishing a gang beats SJF
    assert rids(waiting, QueuePolicy.GANG_SJF, programs, now) == ["l", "s", "m"]
    assert rids(waiting, QueuePolicy.SJF, programs, now) == ["s", "m", "l"]  # sjf: no gang, by work only


@pytest.mark.parametrize("policy", [QueuePolicy.GANG_SJF, QueuePolicy.SJF])
def test_programs_that_look_alike_keep_arrival_order_under_sjf(policy):
    """Equal hints give exactly first come, first served; so do estimates that differ by less than
    their resolution (one work class); a program whose estimate is clearly shorter still goes first."""
    from dynasor.scheduler.ordering import WORK_TIE_RATIO

    names = [f"P{i}" for i in range(12)]
    waiting = reqs(*[(f"r{i}", name, 1.0 + i) for i, name in enumerate(names)])
    arrival_order = [f"r{i}" for i in range(12)]
    equal = {name: view(1.0 + i, work=400) for i, name in enumerate(names)}
    assert rids(waiting, policy, equal, now=2.0) == arrival_order
    low = WORK_TIE_RATIO ** 27  # the lower edge of a class; the class spans a factor WORK_TIE_RATIO
    rng = random.Random(3)
    noisy = {name: view(1.0 + i, work=low * rng.uniform(1.0, WORK_TIE_RATIO * 0.999) - 1)
             for i, name in enumerate(names)}
    assert rids(waiting, policy, noisy, now=2.0) == arrival_order
    noisy["P11"] = view(12.0, work=low / WORK_TIE_RATIO ** 2)
    assert rids(waiting, policy, noisy, now=2.0)[0] == "r11"


def test_work_classes_are_monotone_and_tie_within_the_ratio():
    from dynasor.scheduler.ordering import WORK_TIE_RATIO, work_class

    values = [0, 1, 5, 50, 99, 100, 124, 1000, 1e6]
    assert [work_class(v) for v in values] == sorted(work_class(v) for v in values)
    assert work_class(0) == 0 and work_class(100 * WORK_TIE_RATIO ** 2) > work_class(100)


def test_sjf_without_gang_still_escalates_a_starved_program():
    waiting = reqs(("a", "LONG", 0.0), ("b", "SHORT", 18.0))
    programs = {"LONG": view(0.0, work=5000), "SHORT": view(18.0, work=10)}
    guard = StarvationGuard(factor=4.0, floor_s=5.0, cap_s=15.0)
    assert rids(waiting, QueuePolicy.SJF, programs, 10.0, guard=guard) == ["b", "a"]
    assert rids(waiting, QueuePolicy.SJF, programs, 20.0, guard=guard) == ["a", "b"]


def test_the_starvation_guard_lifts_a_program_over_programs_not_in_service_but_not_over_a_gang():
    waiting = reqs(("g", "GANG", 1.0), ("a", "LONG", 0.0), ("b", "SHORT", 18.0))
    programs = {"GANG": view(1.0, in_service=True, work=3000), "LONG": view(0.0, work=5000),
                "SHORT": view(18.0, work=10)}
    guard = StarvationGuard(factor=4.0, floor_s=5.0, cap_s=15.0)
    before = order_waiting(waiting, programs, QueuePolicy.GANG_SJF, 10.0, guard)  # LONG waited 10 s < 15 s
    assert [waiting[i].rid for i in before.order] == ["g", "b", "a"] and not before.escalated
    after = order_waiting(waiting, programs, QueuePolicy.GANG_SJF, 20.0, guard)  # LONG waited 20 s > 15 s
    assert [waiting[i].rid for i in after.order] == ["g", "a", "b"] and after.escalated == {"LONG"}


def test_longest_prefix_first_inside_a_program_and_deprioritized_last():
    waiting = reqs(("x", "A", 1.0, 0), ("y", "A", 1.1, 40), ("z", "A", 1.2, 10), ("w", "B", 0.5, 0, True))
    programs = {"A": view(1.0), "B": view(0.5)}
    assert rids(waiting, QueuePolicy.GANG, programs) == ["y", "z", "x", "w"]


def test_untagged_requests_stay_first_come_first_served():
    waiting = reqs(("u2", None, 2.0), ("u1", None, 1.0), ("u3", None, 3.0))
    for policy in (QueuePolicy.PROGRAM_FIFO, QueuePolicy.GANG, QueuePolicy.GANG_SJF):
        assert rids(waiting, policy, {}) == ["u1", "u2", "u3"]


def test_tie_breaking_is_deterministic():
    waiting = reqs(*[(f"r{i}", f"P{i % 3}", 1.0) for i in range(9)])
    programs = {f"P{i}": view(1.0) for i in range(3)}
    expected = rids(waiting, QueuePolicy.GANG_SJF, programs)
    for seed in range(5):
        shuffled = waiting[:]
        random.Random(seed).shuffle(shuffled)
        assert rids(shuffled, QueuePolicy.GANG_SJF, programs) == expected
    assert expected == ["r0", "r3", "r6", "r1", "r4", "r7", "r2", "r5", "r8"]


def test_starvation_bound_under_an_adversarial_stream_of_short_programs():
    """A long program competes with a new short program every second; SJF alone would starve it."""
    guard = StarvationGuard(factor=4.0, floor_s=5.0, cap_s=60.0)
    long_view = view(0.0, work=10_000)  # 100 s of service at 100 tok/s: the bound is the 60 s cap
    bound = guard.bound(long_view.remaining_work / 100.0)
    assert bound == 60.0
    waiting = [WaitingRequest("long", "LONG", 0.0)]
    programs = {"LONG": long_view}
    now, admitted_at, escalated_at = 0.0, None, None
    for step in range(200):
        now = float(step)
        pid = f"S{step}"
        waiting.append(WaitingRequest(f"s{step}", pid, now))
        programs[pid] = view(now, work=10)
        ordering = order_waiting(waiting, programs, QueuePolicy.GANG_SJF, now, guard)
        if "LONG" in ordering.escalated and escalated_at is None:
            escalated_at = now
        first = waiting[ordering.order[0]]
        waiting.remove(first)  # the batch admits one request per step
        if first.rid == "long":
            admitted_at = now
            break
    assert escalated_at is not None and admitted_at is not None
    assert admitted_at <= bound + 1.0
    assert escalated_at == admitted_at


class CountingMapping(Mapping):
    def __init__(self, data):
        self.data, self.lookups = data, 0

    def __getitem__(self, key):
        self.lookups += 1
        return self.data[key]

    def get(self, key, default=None):
        self.lookups += 1
        return self.data.get(key, default)

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)


def make_queue(n, n_programs, seed=0):
    rng = random.Random(seed)
    waiting = [WaitingRequest(f"r{i}", f"P{rng.randrange(n_programs)}", rng.random() * 100, rng.randrange(64))
               for i in range(n)]
    programs = {f"P{i}": view(rng.random() * 100, rng.random() < 0.2, rng.random() * 1000) for i in range(n_programs)}
    return waiting, programs


def test_ordering_looks_up_each_program_once():
    """One view per program (not per request); the permutation covers every request once."""
    waiting, programs = make_queue(10_000, 1_000)
    counting = CountingMapping(programs)
    ordering = order_waiting(waiting, counting, QueuePolicy.GANG_SJF, 100.0)
    assert sorted(ordering.order) == list(range(10_000))
    assert counting.lookups == len({r.program_id for r in waiting})


def test_rate_meter_ignores_idle_gaps():
    from dynasor.scheduler.rate import RateMeter

    meter = RateMeter(min_interval_s=0.5, max_gap_s=2.0)
    for step in range(20):
        meter.add(10, step * 0.1)  # 100 tokens/s
    assert meter.rate(default=0.0) == pytest.approx(100.0, rel=0.15)
    for step in range(20):
        meter.add(10, 60.0 + step * 0.1)  # after a minute idle: still ~100 tokens/s
    assert meter.rate(default=0.0) == pytest.approx(100.0, rel=0.15)


def test_deferred_requests_wait_behind_everything_while_their_program_has_other_work():
    waiting = [WaitingRequest("a-rest", "A", 1.0, deferred=True), WaitingRequest("u1", None, 5.0, expected_tokens=1e6),
               WaitingRequest("b1", "B", 6.0), WaitingRequest("a1", "A", 2.0)]
    for policy in (QueuePolicy.GANG_SJF, QueuePolicy.GANG, QueuePolicy.PROGRAM_FIFO):
        held = {"A": ProgramView(1.0, True, 10.0, deferring=True), "B": ProgramView(6.0, False, 1e6, deferring=True)}
        assert rids(waiting, policy, held)[-1] == "a-rest", policy
    # A's detection round is over (nothing of A that is not deferred waits or runs): A's deferred
    # request ranks as A would, here first (least remaining work)
    done = {"A": ProgramView(1.0, False, 10.0, deferring=False), "B": ProgramView(6.0, False, 1e6, deferring=True)}
    assert rids(waiting[:3], QueuePolicy.GANG_SJF, done) == ["a-rest", "u1", "b1"]


def test_a_held_back_deferred_group_is_never_escalated():
    waiting = [WaitingRequest("a-rest", "A", 0.0, deferred=True), WaitingRequest("b1", "B", 9.0)]
    programs = {"A": ProgramView(0.0, False, 10.0, deferring=True), "B": ProgramView(9.0, False, 1e6)}
    ordering = order_waiting(waiting, programs, QueuePolicy.GANG_SJF, now=1000.0)
    assert [waiting[i].rid for i in ordering.order] == ["b1", "a-rest"] and "A" not in ordering.escalated
    programs["A"] = ProgramView(0.0, False, 10.0, deferring=False)  # promoted, and it waited 1000 s
    ordering = order_waiting(waiting, programs, QueuePolicy.GANG_SJF, now=1000.0)
    assert "A" in ordering.escalated and waiting[ordering.order[0]].rid == "a-rest"  # the longer wait first
