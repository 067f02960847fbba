"""SelfConsistency + runtime logic over a fake backend (no engine): the live test is in test/integration."""

import asyncio
import itertools

import pytest

from dynasor.core.generation import Generation
from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs import SelfConsistency


class FakeBackend:
    """Branch i of a program answers ``answers[i]`` after (i + 1) x 25 ms; stop_program aborts the rest.

    The 25 ms steps leave the program's loop ample time to read each answer (and stop) before the
    next branch finishes, even on a loaded CI machine.
    """

    def __init__(self, answers_by_prompt):
        self.answers_by_prompt = answers_by_prompt
        self.counters = {}
        self.stopped = set()
        self.stop_calls = 0

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        i = next(self.counters.setdefault(program_id, itertools.count()))
        await asyncio.sleep(0.025 * (i + 1))
        if program_id in self.stopped:
            return Generation("", 1, "abort")
        return Generation(f"so \\boxed{{{self.answers_by_prompt[prompt][i]}}}", 10, "stop")

    async def stop_program(self, program_id):
        self.stop_calls += 1
        self.stopped.add(program_id)


async def run(answers, policy, cap=10, detect_at=5):
    backend = FakeBackend({"q": answers})
    program = SelfConsistency("q", cap=cap, detect_at=detect_at)
    result = (await ProgramRuntime(backend, policy).run([program]))[0]
    return result, backend


def test_unanimous_detection_stops_and_aborts_the_rest():
    result, backend = asyncio.run(run(["4"] * 5 + ["9"] * 5, StaticThreshold(0.7)))
    assert result.stopped_early and backend.stop_calls == 1
    assert result.answer == "4" and result.knob_used == 5 and result.certaindex == 1.0
    assert result.extra["aborted_branches"] == 5
    assert result.generated_tokens == 5 * 10 + 5 * 1


def test_disagreement_runs_to_the_cap():
    result, backend = asyncio.run(run(["4", "4", "4", "4", "5", "5", "5", "5", "5", "5"], StaticThreshold(0.7)))
    assert not result.stopped_early and backend.stop_calls == 0
    assert result.knob_used == 10 and result.answer == "5"  # majority over all 10


def test_even_allocation_never_stops():
    result, backend = asyncio.run(run(["4"] * 10, EvenAllocation()))
    assert not result.stopped_early and result.knob_used == 10 and backend.stop_calls == 0


def test_equivalent_answers_vote_together():
    result, _ = asyncio.run(run(["0.5", "\\frac12", "1/2", "7", "7"], EvenAllocation(), cap=5, detect_at=5))
    assert result.answer in ("0.5", "\\frac12", "1/2")


def test_bad_knobs():
    with pytest.raises(ValueError, match="detect_at"):
        SelfConsistency("q", cap=3, detect_at=5)


class LaunchCountingBackend(FakeBackend):
    def __init__(self, answers_by_prompt):
        super().__init__(answers_by_prompt)
        self.launched = 0
        self.launched_when_finished = []  # launches so far, as each branch finishes
        self.hints = []  # the request hints of each launch, in launch order

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        self.launched += 1
        self.hints.append(hints)
        generation = await super().generate(prompt, params, program_id, remaining_work)
        self.launched_when_finished.append(self.launched)
        return generation


def run_staged(answers, policy, cap=10, detect_at=5, launch="staged"):
    backend = LaunchCountingBackend({"q": answers})
    program = SelfConsistency("q", cap=cap, detect_at=detect_at, launch=launch)
    result = asyncio.run(ProgramRuntime(backend, policy).run([program]))[0]
    return result, backend


def test_staged_stop_launches_only_the_detection_round():
    result, backend = run_staged(["4"] * 5 + ["9"] * 5, StaticThreshold(0.7))
    assert backend.launched == 5 and backend.stop_calls == 0  # nothing outstanding to abort
    assert result.stopped_early and result.answer == "4" and result.knob_used == 5
    assert result.extra["aborted_branches"] == 0 and result.generated_tokens == 5 * 10


def test_staged_continue_launches_the_rest_after_detection():
    answers = ["4", "5", "6", "7", "8"] + ["9"] * 5
    result, backend = run_staged(answers, StaticThreshold(0.7))
    assert backend.launched == 10 and not result.stopped_early and result.knob_used == 10
    assert backend.launched_when_finished[:5] == [5] * 5  # the second round waited for the decision
    assert result.answer == "9" and result.extra["certaindex_at_detection"] == 0.0


def test_staged_even_allocation_runs_every_branch():
    result, backend = run_staged(["4"] * 10, EvenAllocation())
    assert backend.launched == 10 and result.knob_used == 10 and not result.stopped_early


def test_deferred_launch_sends_every_branch_at_once_the_rest_tagged_deferred():
    result, backend = run_staged(["4"] * 5 + ["9"] * 5, StaticThreshold(0.7), launch="deferred")
    assert [h.deferred for h in backend.hints] == [False] * 5 + [True] * 5
    assert backend.launched_when_finished[0] == 10  # no second round: all ten were out before any finished
    assert result.stopped_early and backend.stop_calls == 1 and result.extra["aborted_branches"] == 5
    answers = ["4", "5", "6", "7", "8"] + ["9"] * 5
    result, _ = run_staged(answers, StaticThreshold(0.7), launch="deferred")
    assert not result.stopped_early and result.knob_used == 10 and result.answer == "9"


def test_an_unknown_launch_order_is_refused():
    with pytest.raises(ValueError, match="launch must be one of"):
        SelfConsistency("q", launch="eager")
