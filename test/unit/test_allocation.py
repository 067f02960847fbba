"""Allocation policies, the runtime's remaining-work tagging, and the offline EngineBackend (fake engine)."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from dynasor.core.generation import Generation
from dynasor.core.tag import tag_sampling_params
from dynasor.program_runtime.allocation import (
    BudgetCurve,
    EvenAllocation,
    LengthCap,
    PeriodicRecheck,
    SignalThresholds,
    StaticThreshold,
)
from dynasor.program_runtime.backends import EngineBackend
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs import SelfConsistency


def program(knob=0, certaindex=None, tokens=0, **attrs):
    return SimpleNamespace(knob=knob, certaindex=certaindex, generated_tokens=tokens, state={}, **attrs)


def test_even_and_static():
    assert EvenAllocation().should_continue(program(5, 1.0))
    assert StaticThreshold(0.7).should_continue(program(5, None))
    assert StaticThreshold(0.7).should_continue(program(5, 0.69))
    assert not StaticThreshold(0.7).should_continue(program(5, 0.7))


def test_periodic_recheck_checks_every_k_from_detection():
    policy = PeriodicRecheck(0.7, every_k=5)
    settled = [k for k in range(1, 21) if not policy.should_continue(program(k, 0.9, detect_at=5))]
    assert settled == [5, 10, 15, 20]
    assert policy.should_continue(program(10, 0.5, detect_at=5))  # a check step, but not certain enough
    assert policy.should_continue(program(10, None, detect_at=5))


def test_periodic_recheck_detection_step_sources():
    assert not PeriodicRecheck(0.7, every_k=2, detect_at=3).should_continue(program(7, 1.0, detect_at=5))
    assert [k for k in range(1, 7) if not PeriodicRecheck(0.7, every_k=3).should_continue(program(k, 1.0))] == [3, 6]
    with pytest.raises(ValueError, match="every_k"):
        PeriodicRecheck(every_k=0)


def test_length_cap_ignores_certaindex():
    assert LengthCap(100).should_continue(program(1, 1.0, tokens=99))
    assert not LengthCap(100).should_continue(program(1, 0.0, tokens=100))


def test_signal_thresholds_need_every_signal():
    policy = SignalThresholds({"answer": 0.99, "reward": 0.4})

    def with_signals(**signals):
        return SimpleNamespace(knob=3, certaindex=1.0, state={"signals": signals})

    assert not policy.should_continue(with_signals(answer=1.0, reward=0.5))
    assert policy.should_continue(with_signals(answer=1.0, reward=0.3))
    assert policy.should_continue(with_signals(answer=1.0))  # a missing signal fails the AND
    assert policy.should_continue(SimpleNamespace(knob=0, certaindex=None, state={}))


PROFILES = [(0.05, 12), (0.1, 20), (0.15, 8), (0.3, 9), (0.35, 5), (0.9, 3), (0.95, 2), (1.0, 4), (0.5, 14)]


def test_budget_curve_fit_is_the_monotone_upper_envelope():
    curve = BudgetCurve.fit(PROFILES, buckets=5)
    assert curve.edges == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # raw maxima per bucket: 20, 9, 14, (empty), 4 -> suffix max: 20, 14, 14, 4, 4
    assert curve.budgets == (20, 14, 14, 4, 4)
    assert all(a >= b for a, b in zip(curve.budgets, curve.budgets[1:]))
    assert curve.budget_for(0.0) == 20 and curve.budget_for(0.2) == 14 and curve.budget_for(1.0) == 4
    assert curve.budget_for(-1.0) == 20 and curve.budget_for(7.0) == 4


def test_budget_curve_quantile_and_empty_top():
    curve = BudgetCurve.fit([(0.1, v) for v in (1, 2, 3, 4, 5)], buckets=2, quantile=0.5)
    assert curve.budgets == (3, 3)  # median of the low bucket; the empty top takes its neighbour's
    assert BudgetCurve.fit([(0.1, 0.2)], buckets=1).budgets == (1,)  # min_budget, rounded up
    with pytest.raises(ValueError, match="no profiles"):
        BudgetCurve.fit([])


def test_budget_curve_should_continue_until_the_budget_of_its_certaindex():
    curve = BudgetCurve.fit(PROFILES, buckets=5)
    assert curve.should_continue(program(3, 0.95)) and not curve.should_continue(program(4, 0.95))
    assert curve.should_continue(program(19, 0.1)) and not curve.should_continue(program(20, 0.1))
    assert curve.should_continue(program(100, None))


def test_budget_curve_save_load(tmp_path):
    curve = BudgetCurve.fit(PROFILES, buckets=4, quantile=0.9)
    path = tmp_path / "curve.json"
    curve.save(path)
    assert json.loads(path.read_text()) == curve.to_json()
    assert BudgetCurve.load(path) == curve


def test_budget_curve_rejects_non_monotone_budgets():
    with pytest.raises(ValueError, match="non-increasing"):
        BudgetCurve((0.0, 0.5, 1.0), (3, 5))
    with pytest.raises(ValueError, match="edges"):
        BudgetCurve((0.0, 0.5), (3, 5))


class RecordingBackend:
    def __init__(self):
        self.remaining = []

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        self.remaining.append(remaining_work)
        return Generation("\\boxed{1}", 3, "stop")

    async def stop_program(self, program_id):
        pass


class Estimating(SelfConsistency):
    def __init__(self, work):
        super().__init__("q", cap=2, detect_at=2)
        self.work = work

    def remaining_work(self):
        return self.work


@pytest.mark.parametrize("work,sent", [(None, None), (42, 42.0), (-3, 0.0)])
def test_runtime_sends_the_programs_remaining_work(work, sent):
    backend = RecordingBackend()
    asyncio.run(ProgramRuntime(backend).run([Estimating(work)]))
    assert backend.remaining == [sent, sent]


class FakeTokenizerManager:
    def __init__(self):
        self.rid_to_state = {}
        self.aborted = []

    def abort_request(self, rid="", abort_all=False):
        self.aborted.append(rid)
        self.rid_to_state[rid].done.set()


class FakeEngine:
    """Registers each rid at once (as SGLang's tokenizer manager does), dispatches it when ``dispatch``
    is set, and ends it when aborted or when ``finish`` is set."""

    def __init__(self):
        self.tokenizer_manager = FakeTokenizerManager()
        self.calls = []
        self.dispatch = asyncio.Event()
        self.finish = asyncio.Event()

    async def async_generate(self, prompt=None, sampling_params=None, input_ids=None, rid=None):
        state = SimpleNamespace(dispatched=False, done=asyncio.Event())
        self.tokenizer_manager.rid_to_state[rid] = state
        self.calls.append((prompt, sampling_params, rid))
        await self.dispatch.wait()
        state.dispatched = True
        finished, aborted = asyncio.create_task(self.finish.wait()), asyncio.create_task(state.done.wait())
        await asyncio.wait([finished, aborted], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (finished, aborted):
            waiter.cancel()
        del self.tokenizer_manager.rid_to_state[rid]
        reason = "abort" if state.done.is_set() else "stop"
        return {"text": "ok", "meta_info": {"completion_tokens": 2, "finish_reason": {"type": reason}}}


async def _engine_backend_scenario():
    engine = FakeEngine()
    backend = EngineBackend(engine, abort_poll_s=0)
    a, b = "a" * 32, "b" * 32
    params = {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 8}
    tasks = [asyncio.create_task(backend.generate("p", params, a, remaining_work=5.0)),
             asyncio.create_task(backend.generate("p", params, a)),
             asyncio.create_task(backend.generate("p", params, b))]
    while len(engine.calls) < 3:
        await asyncio.sleep(0)
    stop = asyncio.create_task(backend.stop_program(a))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stop.done() and engine.tokenizer_manager.aborted == []  # not dispatched yet: abort held
    engine.dispatch.set()
    await stop
    out_a = await asyncio.gather(*tasks[:2])
    engine.finish.set()
    out_b = await tasks[2]
    late = await backend.generate("p", params, a)
    return engine, params, out_a, out_b, late


def test_engine_backend_tags_tracks_and_aborts_per_program():
    engine, params, out_a, out_b, late = asyncio.run(_engine_backend_scenario())
    (_, tagged, rid_a0), (_, _, rid_a1), (_, tagged_b, rid_b) = engine.calls
    assert tagged == tag_sampling_params(params, {"program_id": "a" * 32, "remaining_work": 5.0})
    assert tagged_b["custom_params"]["dynasor"]["program_id"] == "b" * 32
    assert "custom_params" not in params  # the caller's params are not mutated
    assert all(len(r) == 32 and int(r, 16) >= 0 and r == r.lower() for r in (rid_a0, rid_a1, rid_b))
    assert sorted(engine.tokenizer_manager.aborted) == sorted([rid_a0, rid_a1])
    assert [g.finish_reason for g in out_a] == ["abort", "abort"] and out_b.finish_reason == "stop"
    assert late.aborted and len(engine.calls) == 3  # a stopped program's new request never reaches the engine
