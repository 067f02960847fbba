"""QueueOrderer keeps SGLang's waiting queue in program order between steps.

Requests are stand-ins with the few attributes the orderer reads (the engine's ``Req`` has them
too); the live ordering on SGLang's queue is covered in test/integration/test_scheduling.py. The
incremental steps are checked against a from-scratch ``order_waiting`` of the same queue.
"""

import random
import time
from types import SimpleNamespace

import pytest

from dynasor.scheduler.group_order import order_waiting
from dynasor.scheduler.ordering import QueuePolicy, StarvationGuard, WaitingRequest
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.rate import RateMeter
from dynasor.srt.queue_orderer import PREFIX_MATCH_MAX_WAITING, QueueOrderer

A, B = "program-A-0000000001", "program-B-0000000002"


def req(rid: str, max_new_tokens: int = 16):
    return SimpleNamespace(rid=rid, num_matched_prefix_tokens=0,
                           sampling_params=SimpleNamespace(max_new_tokens=max_new_tokens),
                           time_stats=SimpleNamespace(wait_queue_entry_time=time.perf_counter()))


@pytest.fixture
def small():
    table = ProgramTable()
    now = time.time()
    for i, pid in enumerate([A, A, B, B]):
        table.on_arrival(f"r{i}", pid, 4, now=now - 1.0 + 0.1 * i, max_new_tokens=16)
    return table, QueueOrderer(table, QueuePolicy.GANG_SJF, StarvationGuard(), RateMeter())


def test_unchanged_queue_and_table_skip_the_reorder(small):
    _, orderer = small
    queue = [req("r3"), req("r1"), req("r2"), req("r0")]
    orderer.reorder(queue, set())
    first = [r.rid for r in queue]
    assert first == ["r0", "r1", "r2", "r3"] and orderer.reorders == 1
    orderer.reorder(queue, set())
    assert orderer.reorders == 1 and [r.rid for r in queue] == first


def test_a_waiting_programs_event_a_new_request_or_deprioritisation_forces_a_reorder(small):
    table, orderer = small
    queue = [req("r0"), req("r1"), req("r2"), req("r3")]
    orderer.reorder(queue, set())
    table.on_arrival("x0", "program-X-0000000003", 4, now=time.time())
    table.on_admitted("x0", now=time.time())
    table.on_progress("x0", 3, now=time.time())  # a program with nothing waiting: order unaffected
    orderer.reorder(queue, set())
    assert orderer.reorders == 1
    table.on_admitted("r2", now=time.time())  # B enters service: its waiting branch moves up
    r2 = next(r for r in queue if r.rid == "r2")
    queue.remove(r2)
    orderer.note_admitted([r2])
    orderer.reorder(queue, set())
    assert orderer.reorders == 2 and queue[0].rid == "r3"
    queue.append(req("u1"))  # an untagged arrival changes the queue, not the table
    orderer.note_queued(queue[-1])
    orderer.reorder(queue, set())
    assert orderer.reorders == 3 and [r.rid for r in queue] == ["r3", "u1", "r0", "r1"]  # 16 tokens < A's 32
    orderer.reorder(queue, {"r0"})  # held back for in-batch prefix sharing: last
    assert orderer.reorders == 4 and queue[-1].rid == "r0"
    next(r for r in queue if r.rid == "r1").num_matched_prefix_tokens = 8  # cached now: first inside A
    orderer.reorder(queue, set())
    assert [r.rid for r in queue] == ["r3", "u1", "r1", "r0"]
    assert orderer.full_reranks == 1  # all of it incremental


def expected_order(table: ProgramTable, queue: list, now: float) -> list[str]:
    rows = []
    for r in queue:
        rec = table.requests.get(r.rid)
        if rec is not None:
            rows.append(WaitingRequest(r.rid, rec.program_id, rec.queued_at, 0, deferred=rec.deferred))
        else:
            prior = table.expected_output_tokens_prior()
            expected = min(prior, r.sampling_params.max_new_tokens)
            rows.append(WaitingRequest(r.rid, None, r.queued_at, 0, False, expected))
    views = {p: table.view(p) for p in table.programs}
    ordering = order_waiting(rows, views, QueuePolicy.GANG_SJF, now, StarvationGuard(cap_s=1e6, floor_s=1e6))
    return [rows[i].rid for i in ordering.order]


def test_incremental_steps_give_the_from_scratch_order_at_every_step():
    """A queue far above the full re-rank size, with arrivals (some deferred), admissions in queue order,
    progress and finishes every step: after each step the queue equals a fresh ranking, with one full
    re-rank (a program's deferred requests change rank when its last request that is not deferred ends)."""
    rng = random.Random(7)
    table = ProgramTable(default_output_tokens=64.0)
    orderer = QueueOrderer(table, QueuePolicy.GANG_SJF, StarvationGuard(cap_s=1e6, floor_s=1e6), RateMeter())
    programs = [f"program-{i:04d}-000000000" for i in range(60)]
    queue, running, n = [], [], 0

    def arrive(count):
        nonlocal n
        for _ in range(count):
            r = req(f"q{n}", rng.choice([16, 64, 256]))
            n += 1
            if rng.random() < 0.8:
                table.on_arrival(r.rid, rng.choice(programs), 8, now=time.time(),
                                 max_new_tokens=r.sampling_params.max_new_tokens, deferred=rng.random() < 0.3)
            r.queued_at = time.time() - (time.perf_counter() - r.time_stats.wait_queue_entry_time)
            queue.append(r)
            orderer.note_queued(r)

    arrive(PREFIX_MATCH_MAX_WAITING * 3)
    for step in range(40):
        orderer.reorder(queue, set())
        assert [r.rid for r in queue] == expected_order(table, queue, time.time()), f"step {step}"
        admitted = queue[:rng.randrange(1, 6)]  # SGLang admits a prefix of the ordered queue
        queue[:] = queue[len(admitted):]
        orderer.note_admitted(admitted)
        for r in admitted:
            table.on_admitted(r.rid, now=time.time())
        running += admitted
        for r in rng.sample(running, k=min(len(running), 4)):
            table.on_progress(r.rid, (table.requests[r.rid].generated_tokens + 3) if r.rid in table.requests
                              else 0, now=time.time())
        for r in running[:2]:
            table.on_finished(r.rid, aborted=False, now=time.time())
        running = running[2:]
        arrive(rng.randrange(0, 6))
    # the table's prior may move with finishes: each move is one re-rank, the rest are incremental
    assert orderer.full_reranks <= 1 + table.prior_epoch < 20, (orderer.full_reranks, table.prior_epoch)


def test_a_change_nobody_reported_falls_back_to_a_full_rerank():
    table = ProgramTable()
    orderer = QueueOrderer(table, QueuePolicy.GANG_SJF, StarvationGuard(), RateMeter())
    queue = []
    for i in range(PREFIX_MATCH_MAX_WAITING + 20):
        table.on_arrival(f"r{i}", A if i % 2 else B, 4, now=time.time(), max_new_tokens=16)
        queue.append(req(f"r{i}"))
    orderer.reorder(queue, set())
    assert orderer.full_reranks == 1
    gone = queue.pop(5)  # aborted while waiting, without a note to the orderer
    table.on_finished(gone.rid, aborted=True, now=time.time())
    orderer.reorder(queue, set())
    assert orderer.full_reranks == 2 and gone.rid not in {r.rid for r in queue}
    assert len(queue) == PREFIX_MATCH_MAX_WAITING + 19


def test_a_passed_starvation_bound_escalates_without_any_other_event():
    """The kept order re-keys a group when its bound passes: the long program, queued first, goes
    to the front, and the table counts the escalation."""
    table = ProgramTable()
    # the bound must outlast building the queue and the first step on a loaded CI machine (0.05 s did not)
    guard = StarvationGuard(factor=0.0, floor_s=0.5, cap_s=0.5)
    orderer = QueueOrderer(table, QueuePolicy.GANG_SJF, guard, RateMeter())
    queue = []
    table.on_arrival("long", "program-LONG-000000001", 4, now=time.time(), max_new_tokens=4096)
    queue.append(req("long", 4096))
    for i in range(PREFIX_MATCH_MAX_WAITING + 10):
        table.on_arrival(f"s{i}", f"program-S{i:04d}-00000000", 4, now=time.time() + 1e-3, max_new_tokens=4)
        queue.append(req(f"s{i}", 4))
    orderer.reorder(queue, set())
    assert queue[-1].rid == "long"
    time.sleep(0.6)
    orderer.reorder(queue, set())
    assert queue[0].rid == "long" and table.get("program-LONG-000000001").escalations == 1
    assert orderer.full_reranks == 1

