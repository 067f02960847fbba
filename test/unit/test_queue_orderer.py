"""QueueOrderer.reorder re-ranks only when the queue, the table epoch or the clock says so.

Requests are stand-ins with the few attributes the hook reads (the engine's ``Req`` has them too);
the live ordering on SGLang's queue is covered in test/integration/test_scheduling.py.
"""

import time
from types import SimpleNamespace

import pytest

from dynasor.scheduler.ordering import QueuePolicy, StarvationGuard
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.rate import RateMeter
from dynasor.srt import queue_orderer
from dynasor.srt.queue_orderer import QueueOrderer

A, B = "program-A-0000000001", "program-B-0000000002"


def req(rid: str):
    return SimpleNamespace(rid=rid, num_matched_prefix_tokens=0,
                           sampling_params=SimpleNamespace(max_new_tokens=16),
                           time_stats=SimpleNamespace(wait_queue_entry_time=None))


@pytest.fixture
def counted(monkeypatch):
    table = ProgramTable()
    now = time.time()
    for i, pid in enumerate([A, A, B, B]):
        table.on_arrival(f"r{i}", pid, 4, now=now - 1.0 + 0.1 * i, max_new_tokens=16)
    orderer = QueueOrderer(table, QueuePolicy.GANG_SJF, StarvationGuard(), RateMeter())
    calls = []
    original = orderer.order

    def order(queue, deprioritized):
        calls.append(len(queue))
        return original(queue, deprioritized)

    monkeypatch.setattr(orderer, "order", order)
    return table, calls, orderer


def test_unchanged_queue_and_table_skip_the_reorder(counted):
    table, calls, orderer = counted
    queue = [req("r3"), req("r1"), req("r2"), req("r0")]
    orderer.reorder(queue, set())
    first = [r.rid for r in queue]
    assert first == ["r0", "r1", "r2", "r3"] and calls == [4]
    orderer.reorder(queue, set())
    assert calls == [4] and [r.rid for r in queue] == first


def test_a_table_event_a_new_request_or_deprioritisation_forces_a_reorder(counted):
    table, calls, orderer = counted
    queue = [req("r0"), req("r1"), req("r2"), req("r3")]
    orderer.reorder(queue, set())
    table.on_arrival("r9", A, 4, now=time.time())  # an epoch bump alone (r9 not queued yet)
    orderer.reorder(queue, set())
    assert len(calls) == 2
    table.on_admitted("r2", now=time.time())  # B enters service: its waiting branch moves up
    queue.remove(next(r for r in queue if r.rid == "r2"))
    orderer.reorder(queue, set())
    assert len(calls) == 3 and queue[0].rid == "r3"
    queue.append(req("u1"))  # an untagged arrival changes the queue, not the table
    orderer.reorder(queue, set())
    assert len(calls) == 4
    orderer.reorder(queue, {"r0"})
    assert len(calls) == 5 and queue[-1].rid == "r0"


def test_the_refresh_interval_bounds_staleness(counted, monkeypatch):
    _, calls, orderer = counted
    monkeypatch.setattr(queue_orderer, "REFRESH_S", 0.0)
    queue = [req("r0"), req("r1"), req("r2"), req("r3")]
    orderer.reorder(queue, set())
    orderer.reorder(queue, set())
    assert len(calls) == 2
