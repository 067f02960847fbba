"""DeepConf in SelfConsistency over a fake backend (no engine): branch confidence, the filtered
weighted vote, and the online warm-up whose threshold later branches carry to the scheduler."""

import asyncio

import pytest

from dynasor.core.generation import Generation
from dynasor.core.tag import LOW_CONFIDENCE
from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs import SelfConsistency
from dynasor.programs.deepconf import DeepConf


def gen(answer, confidences):
    return Generation(f"so \\boxed{{{answer}}}", len(confidences), "stop", {"topk_confidence": list(confidences)})


def test_branch_confidence_is_the_lowest_window_mean():
    conf = DeepConf(window=2)
    assert conf.confidence(gen("4", [5.0, 1.0, 3.0, 9.0])) == pytest.approx(2.0)  # windows 3, 2, 6
    assert conf.confidence(Generation("x", 3, "stop")) is None  # no token stats returned


@pytest.mark.parametrize("raw", [{"mode": "offline"}, {"eta": 0}, {"eta": 1.5}, {"warmup": 0}, {"window": 0}])
def test_bad_settings_are_refused(raw):
    with pytest.raises(ValueError):
        DeepConf(**raw)


def test_the_vote_keeps_the_most_confident_share_and_weights_it():
    answers = ["4", "4", "4", "9", "9"]
    confidences = [1.0, 1.1, 1.2, 8.0, 7.0]
    assert DeepConf(eta=0.4).vote(answers, confidences) == "9"  # the two most confident
    assert DeepConf(eta=1.0).vote(answers, confidences) == "9"  # weights 15 vs 3.3
    assert DeepConf(eta=1.0).vote(answers, [5.0, 5.0, 5.0, 1.0, 1.0]) == "4"
    assert DeepConf().vote(answers, [None] * 5) == "4"  # no stats: plain majority
    assert DeepConf().threshold([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(4.6)  # the 0.9 quantile


class ScriptedBackend:
    """Branch i answers ``script[i]`` = (answer, token confidences) after (i + 1) x 10 ms. A branch whose
    hints carry a stop threshold above its lowest window ends as the scheduler would end it."""

    def __init__(self, script, window):
        self.script, self.window, self.hints, self.launched_at_finish = script, window, [], []

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        i = len(self.hints)
        self.hints.append(hints)
        await asyncio.sleep(0.01 * (i + 1))
        self.launched_at_finish.append(len(self.hints))
        answer, confidences = self.script[i]
        out = gen(answer, confidences)
        threshold = hints.stop_below_confidence if hints is not None else None
        if threshold is not None and DeepConf(window=hints.confidence_window).confidence(out) < threshold:
            return Generation("", 2, "abort", {"finish_reason": {"type": "abort", "message": LOW_CONFIDENCE}})
        return out

    async def stop_program(self, program_id):
        pass


def run(script, confidence, policy=None, cap=None, detect_at=None):
    backend = ScriptedBackend(script, confidence.window)
    n = cap or len(script)
    program = SelfConsistency("q", cap=n, detect_at=detect_at or n, confidence=confidence)
    result = asyncio.run(ProgramRuntime(backend, policy or EvenAllocation()).run_one(program))
    return result, backend


def test_filter_mode_answers_with_the_confident_minority():
    script = [("4", [1.0] * 4)] * 3 + [("9", [6.0] * 4)] * 2
    result, backend = run(script, DeepConf("filter", eta=0.4, window=2))
    assert result.answer == "9" and result.extra["confidences"] == [1.0, 1.0, 1.0, 6.0, 6.0]
    assert all(h.stop_below_confidence is None for h in backend.hints)  # filter mode never stops branches


def test_online_mode_warms_up_then_later_branches_carry_the_threshold():
    warm = [("4", [2.0] * 4), ("4", [3.0] * 4), ("5", [4.0] * 4), ("4", [5.0] * 4)]
    rest = [("7", [1.0] * 4), ("4", [6.0] * 4), ("7", [1.5] * 4), ("4", [4.9] * 4)]
    conf = DeepConf("online", eta=0.5, warmup=4, window=2)
    result, backend = run(warm + rest, conf)
    threshold = conf.threshold([2.0, 3.0, 4.0, 5.0])  # the 0.5 quantile: 3.5
    assert backend.launched_at_finish[:4] == [4, 4, 4, 4]  # the rest waited for the warm-up
    assert [h.stop_below_confidence for h in backend.hints] == [None] * 4 + [threshold] * 4
    assert all(h.confidence_window == 2 for h in backend.hints[4:])
    assert result.extra["low_confidence_stops"] == 2 and result.extra["aborted_branches"] == 2
    assert result.extra["confidence_threshold"] == threshold and result.answer == "4"


def test_online_mode_with_the_certaindex_stop_inside_the_warm_up():
    script = [("4", [3.0] * 4)] * 4 + [("9", [9.0] * 4)] * 4
    result, backend = run(script, DeepConf("online", warmup=4, window=2), StaticThreshold(0.7), cap=8, detect_at=3)
    assert result.stopped_early and len(backend.hints) == 4 and result.answer == "4"
