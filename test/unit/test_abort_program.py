"""abort_program_requests: only requests that reached the scheduler get their abort (SGLang drops an
abort that overtakes its request and never sends a second one); the rest are polled until dispatched."""

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace

from dynasor.core.tag import new_program_id, tag_sampling_params
from dynasor.srt.program_abort import abort_program_requests


@dataclass
class FakeState:
    obj: SimpleNamespace
    dispatched: bool = False
    finished: bool = False


@dataclass
class FakeTokenizerManager:
    rid_to_state: dict = field(default_factory=dict)
    aborts: list = field(default_factory=list)

    def add(self, rid, program_id, dispatched):
        params = tag_sampling_params({"max_new_tokens": 8}, {"program_id": program_id}) if program_id else {}
        self.rid_to_state[rid] = FakeState(SimpleNamespace(sampling_params=params), dispatched)

    def abort_request(self, rid=""):
        assert self.rid_to_state[rid].dispatched, "an abort overtook its request"
        self.aborts.append(rid)


def test_undispatched_requests_are_aborted_once_dispatched():
    program, other = new_program_id(), new_program_id()
    tm = FakeTokenizerManager()
    tm.add("a", program, dispatched=True)
    tm.add("b", program, dispatched=False)
    tm.add("c", other, dispatched=True)
    tm.add("d", None, dispatched=True)

    async def main():
        task = asyncio.create_task(abort_program_requests(tm, program, timeout_s=2.0, poll_s=0.002))
        await asyncio.sleep(0.05)
        assert tm.aborts == ["a"]  # b is still being tokenized: not aborted yet
        tm.rid_to_state["b"].dispatched = True
        return await task

    assert asyncio.run(main()) == 2 and sorted(tm.aborts) == ["a", "b"]


def test_finished_requests_are_skipped_and_the_wait_is_bounded():
    program = new_program_id()
    tm = FakeTokenizerManager()
    tm.add("done", program, dispatched=True)
    tm.rid_to_state["done"].finished = True
    tm.add("stuck", program, dispatched=False)
    sent, seconds = asyncio.run(_timed(abort_program_requests(tm, program, timeout_s=0.05, poll_s=0.005)))
    assert sent == 0 and tm.aborts == [] and 0.05 <= seconds < 1.0


async def _timed(coro):
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await coro
    return result, loop.time() - start
