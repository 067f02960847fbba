"""The main-process pieces of hardening without a server: aborted programs remembered for the TTL,
requests of aborted programs marked (and client-set markers stripped), a program aborted when a
request's consumer leaves early, and a dynasor-mode run cancelled when its HTTP client is gone."""

import asyncio
from types import SimpleNamespace

import pytest

from dynasor.core.tag import ABORTED_MARKER, new_program_id
from dynasor.srt import tokenizer_hooks
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.main_process_state import AbortedPrograms, MainProcessState, activate_main_process_state
from dynasor.srt.openai_mode_hooks import _unless_disconnected


def test_aborted_programs_expire_after_the_ttl_and_are_bounded():
    aborted = AbortedPrograms(ttl=10.0, max_entries=2)
    aborted.add("a", now=0.0)
    aborted.add("b", now=5.0)
    assert aborted.contains("a", now=9.9) and aborted.contains("b", now=9.9)
    assert not aborted.contains("a", now=10.0) and aborted.contains("b", now=10.0)
    aborted.add("c", now=11.0)
    aborted.add("d", now=12.0)  # over the bound: the oldest goes
    assert not aborted.contains("b", now=12.0) and len(aborted) == 2


@pytest.fixture
def state():
    state = MainProcessState(DynasorServerConfig(program_ttl=30.0))
    activate_main_process_state(state)
    yield state
    activate_main_process_state(None)


def request(pid: str, **custom):
    return SimpleNamespace(rid=None, sampling_params={"custom_params": {"dynasor": {"program_id": pid}, **custom}})


def test_requests_of_an_aborted_program_are_marked_and_clients_cannot_set_the_mark(state):
    gone, live = new_program_id(), new_program_id()
    state.aborted.add(gone)
    late = request(gone)
    tokenizer_hooks.validate_request_tags(None, late)
    assert late.sampling_params["custom_params"][ABORTED_MARKER] is True
    forged = request(live, **{ABORTED_MARKER: True})
    tokenizer_hooks.validate_request_tags(None, forged)
    assert ABORTED_MARKER not in forged.sampling_params["custom_params"]


class FakeManager:
    def __init__(self):
        self.rid_to_state, self.aborted = {}, []

    def abort_request(self, rid=""):
        self.aborted.append(rid)


def live_state(pid: str):
    return SimpleNamespace(finished=False, dispatched=True,
                           obj=SimpleNamespace(sampling_params={"custom_params": {"dynasor": {"program_id": pid}}}))


async def stream(outputs, wait: float = 0.0):
    for out in outputs:
        yield out
        await asyncio.sleep(wait)


async def test_a_consumer_leaving_before_the_final_output_aborts_the_whole_program():
    pid = new_program_id()
    manager = FakeManager()
    manager.rid_to_state = {"r1": live_state(pid), "r2": live_state(pid), "x": live_state(new_program_id())}
    chunks = [{"meta_info": {"finish_reason": None}}] * 3

    def original(tm, obj, request=None):
        return stream(chunks, wait=0.01)

    gen = tokenizer_hooks.abort_program_when_client_leaves(original, manager, request(pid))
    await gen.__anext__()
    await gen.aclose()  # the streaming client went away
    await asyncio.sleep(0.05)
    assert sorted(manager.aborted) == ["r1", "r2"]  # the program's requests, not the other program's


async def test_leaving_after_the_final_output_aborts_nothing():
    pid = new_program_id()
    manager = FakeManager()
    manager.rid_to_state = {"r1": live_state(pid)}

    def original(tm, obj, request=None):
        return stream([{"meta_info": {"finish_reason": {"type": "stop"}}}])

    gen = tokenizer_hooks.abort_program_when_client_leaves(original, manager, request(pid))
    await gen.__anext__()  # what a non-streaming caller reads, then drops the generator
    await gen.aclose()
    await asyncio.sleep(0.02)
    assert manager.aborted == []


async def test_a_mode_run_is_cancelled_soon_after_its_client_disconnects():
    cancelled = asyncio.Event()
    gone_at = asyncio.get_running_loop().time() + 0.1

    async def run():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    class Raw:
        async def is_disconnected(self):
            return asyncio.get_running_loop().time() >= gone_at

    started = asyncio.get_running_loop().time()
    with pytest.raises(ValueError, match="disconnected"):
        await _unless_disconnected(run(), Raw(), poll_s=0.02)
    await asyncio.sleep(0)
    assert cancelled.is_set() and asyncio.get_running_loop().time() - started < 0.5
