"""Rebase and MCTS over a scripted fake backend and a table-driven fake reward (no engine, no timing):
tree shapes, REBASE width allocation, UCT selection, reward aggregation and the one-call stop.
The live test is test/integration/test_tree_search.py."""

import asyncio
import math

import pytest

from dynasor.core.generation import Generation
from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs.mcts import MCTS
from dynasor.programs.rebase import Rebase, weighted_vote
from dynasor.programs.tree import StepNode, backpropagate, ended_by_model, select_leaf, softmax_widths, uct

PROMPT = "Q:"
STEP_TOKENS = 5


class ScriptedBackend:
    """The k-th request after steps ``s`` answers ``script[s][k % len]`` (steps parsed back from the
    prompt), so a tree is fully determined by the script whatever order the requests run in."""

    def __init__(self, script, eos=()):
        self.script, self.eos = script, set(eos)
        self.counts, self.calls, self.stop_calls = {}, [], 0
        self.in_flight = self.max_in_flight = 0

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        assert prompt.startswith(PROMPT) and params["stop"] == ["\n"]
        steps = tuple(prompt[len(PROMPT):].split("\n")[:-1])
        self.calls.append((program_id, steps))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        k = self.counts.get(steps, 0)
        self.counts[steps] = k + 1
        text = self.script[steps][k % len(self.script[steps])]
        matched = 2 if text in self.eos else "\n"
        return Generation(text, STEP_TOKENS, "stop", {"finish_reason": {"type": "stop", "matched": matched}})

    async def stop_program(self, program_id):
        self.stop_calls += 1


class TableReward:
    """Reward of a path looked up by its full step tuple (0.5 if absent); one judge token per call."""

    def __init__(self, table):
        self.table, self.calls = table, []

    async def score(self, question, steps, program_id=None, usage=None):
        assert question == PROMPT and steps
        self.calls.append((program_id, tuple(steps)))
        if usage is not None:
            usage.calls += 1
            usage.completion_tokens += 1
        return self.table.get(tuple(steps), 0.5)


def run(program, backend, policy=EvenAllocation()):
    return asyncio.run(ProgramRuntime(backend, policy).run([program]))[0]


# ---- helpers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rewards, budget, temperature, expected", [
    # e^.9, e^.5, e^.1 = 2.460, 1.649, 1.105 (sum 5.213): ceil(5·.472)=3, then ceil(2·1.649/2.754)=2
    ([0.9, 0.5, 0.1], 5, 1.0, [3, 2, 0]),
    ([0.1, 0.9, 0.5], 5, 1.0, [0, 3, 2]),      # same, in input order
    ([0.9, 0.5, 0.1], 3, 1.0, [2, 1, 0]),      # ceil(3·.472)=2, then ceil(1·.599)=1
    ([0.9, 0.5, 0.1], 5, 0.2, [5, 0, 0]),      # T = 0.2 (REBASE default): ceil(5·.867)=5
    ([0.5, 0.5, 0.5], 4, 1.0, [2, 1, 1]),
    ([0.3], 4, 0.2, [4]),
    ([0.3, 0.7], 0, 1.0, [0, 0]),
])
def test_softmax_widths_hand_computed(rewards, budget, temperature, expected):
    assert softmax_widths(rewards, budget, temperature) == expected


def test_softmax_widths_always_spend_the_budget():
    for budget in range(1, 20):
        for rewards in ([0.0, 1.0, 0.99, 0.2], [0.5] * 7, [1e-3, 0.0]):
            assert sum(softmax_widths(rewards, budget, 0.2)) == budget
    with pytest.raises(ValueError):
        softmax_widths([0.5], 2, 0.0)


def uct_tree():
    root = StepNode()
    for q, n in ((0.5, 6), (0.7, 3), (0.2, 1)):
        child = StepNode(f"q{q}", root, reward=0.5, visits=n, value_sum=q * n)
        root.children.append(child)
    root.visits = 10
    return root


def test_uct_hand_computed():
    root = uct_tree()
    a, b, c = root.children
    # Q + c·sqrt(ln 10 / n):  .5 + sqrt(2.3026/6),  .7 + sqrt(2.3026/3),  .2 + sqrt(2.3026/1)
    assert [uct(ch, 10, 1.0) for ch in (a, b, c)] == pytest.approx([1.119487, 1.576087, 1.717427], abs=1e-6)
    assert select_leaf(root, 1.0) is c
    assert [uct(ch, 10, 0.5) for ch in (a, b, c)] == pytest.approx([0.809744, 1.138043, 0.958714], abs=1e-6)
    assert select_leaf(root, 0.5) is b


def test_selection_prefers_unvisited_best_reward_and_skips_finished_solutions():
    root = uct_tree()
    low, high = StepNode("u1", root, reward=0.2), StepNode("u2", root, reward=0.8)
    root.children += [low, high]
    assert uct(low, 10, 1.0) == math.inf and select_leaf(root, 1.0) is high
    high.terminal = True
    assert select_leaf(root, 1.0) is high          # an unvisited solution is evaluated
    backpropagate(high, 1.0)
    assert (high.visits, high.value, root.visits, root.value_sum) == (1, 1.0, 11, 1.0)
    assert select_leaf(root, 1.0) is low           # a visited solution is closed
    for ch in root.children:
        ch.terminal, ch.visits = True, max(ch.visits, 1)
    assert select_leaf(root, 1.0) is root          # all closed: widen the node itself


def test_weighted_vote_and_eos():
    assert weighted_vote(["7", "7", "8", None], [0.2, 0.3, 0.6, 1.0]) == "8"
    assert weighted_vote(["7", "7.0", "8"], [0.3, 0.3, 0.6]) in ("7", "7.0")   # equivalent answers pool
    assert weighted_vote([None], [1.0]) is None
    assert ended_by_model(Generation("x", 1, "stop", {"finish_reason": {"type": "stop", "matched": 2}}))
    assert not ended_by_model(Generation("x", 1, "stop", {"finish_reason": {"type": "stop", "matched": "\n"}}))
    assert not ended_by_model(Generation("x", 1, "length", {"finish_reason": {"type": "length", "length": 1}}))


# ---- Rebase --------------------------------------------------------------------------------------

REBASE_SCRIPT = {
    (): ["a", "b", "c \\boxed{7}", "d"],
    ("a",): ["so \\boxed{7}", "so \\boxed{8}"],
    ("b",): ["so \\boxed{7}"],
    ("d",): ["so \\boxed{9}"],
}
REBASE_REWARDS = {
    ("a",): 0.9, ("b",): 0.5, ("c \\boxed{7}",): 0.3, ("d",): 0.1,
    ("a", "so \\boxed{7}"): 0.2, ("a", "so \\boxed{8}"): 0.95, ("b", "so \\boxed{7}"): 0.2,
}


def rebase(width, detect_at, temperature=1.0):
    backend, reward = ScriptedBackend(REBASE_SCRIPT), TableReward(REBASE_REWARDS)
    return Rebase(PROMPT, reward, width=width, detect_at=detect_at, softmax_temperature=temperature), backend, reward


def test_rebase_expands_by_softmax_of_rewards_and_votes_by_reward():
    program, backend, reward = rebase(width=4, detect_at=4)
    result = run(program, backend)
    # depth 1: root gets all 4; "c" finishes (width left 3), then a/b/d at .9/.5/.1 get [2, 1, 0]
    assert backend.counts == {(): 4, ("a",): 2, ("b",): 1}
    assert backend.max_in_flight == 4                     # siblings are sampled concurrently
    assert {pid for pid, _ in backend.calls + reward.calls} == {program.program_id}
    assert len(reward.calls) == 7 and result.extra["judge_calls"] == 7
    assert result.knob_used == 4 and result.extra["tree_size"] == 7 and result.extra["depth"] == 2
    assert sorted(result.extra["answers"]) == ["7", "7", "7", "8"]
    # 7 has three votes but total reward .3+.2+.2 = .7 < .95 for 8
    assert result.answer == "8" and result.extra["best_reward_answer"] == "8"
    assert result.certaindex == pytest.approx(0.95)       # Rebase: max terminal reward
    assert result.extra["judge_tokens"] == 7 and result.extra["policy_tokens"] == 7 * STEP_TOKENS
    assert result.generated_tokens == 7 * STEP_TOKENS + 7 == program.generated_tokens
    assert program.remaining_work() == 0.0                # knob at the cap
    assert not result.stopped_early and backend.stop_calls == 0


def test_rebase_stops_at_the_detection_width_with_one_stop_call():
    program, backend, _ = rebase(width=8, detect_at=4)
    result = run(program, backend, StaticThreshold(0.9))
    assert result.stopped_early and backend.stop_calls == 1
    assert result.knob_used == 4 and result.extra["certaindex_at_detection"] == pytest.approx(0.95)
    assert sum(backend.counts.values()) == 7              # the second search never started
    assert program.remaining_work() == pytest.approx((7 * STEP_TOKENS + 7) / 4 * 4)   # per path x 4 left


def test_rebase_below_threshold_spends_the_rest_of_the_width():
    program, backend, _ = rebase(width=8, detect_at=4)
    result = run(program, backend, StaticThreshold(0.99))
    assert not result.stopped_early and backend.stop_calls == 0
    assert result.knob_used == 8 and backend.counts[()] == 8     # a second width-4 search from the root
    assert len(result.extra["answers"]) == 8 and result.extra["certaindex_at_detection"] == pytest.approx(0.95)


def test_rebase_truncates_at_max_depth_and_certaindex_is_max():
    backend = ScriptedBackend({(): ["x"], ("x",): ["y"]})
    program = Rebase(PROMPT, TableReward({("x",): 0.4, ("x", "y"): 0.3}), width=2, detect_at=2, max_depth=2)
    result = run(program, backend)
    assert result.extra["depth"] == 2 and result.knob_used == 2 and result.answer is None
    assert result.certaindex == pytest.approx(0.3) and program.update_certaindex() == 0.3


# ---- MCTS ----------------------------------------------------------------------------------------

MCTS_SCRIPT = {
    (): ["x", "y"],
    ("x",): ["\\boxed{5}"],
    ("y",): ["\\boxed{6}", "z"],
    ("y", "z"): ["\\boxed{6}", "\\boxed{7}"],
}
MCTS_REWARDS = {
    ("x",): 0.8, ("y",): 0.4, ("x", "\\boxed{5}"): 0.6, ("y", "\\boxed{6}"): 0.9, ("y", "z"): 0.3,
    ("y", "z", "\\boxed{6}"): 0.5, ("y", "z", "\\boxed{7}"): 0.7,
}


def mcts(iterations, detect_at, **kw):
    backend, reward = ScriptedBackend(MCTS_SCRIPT), TableReward(MCTS_REWARDS)
    return MCTS(PROMPT, reward, iterations=iterations, detect_at=detect_at, branching=2, **kw), backend, reward


def test_mcts_select_expand_simulate_backpropagate():
    program, backend, reward = mcts(iterations=3, detect_at=3)
    result = run(program, backend)
    # 1: expand root -> x .8, y .4; roll out x -> boxed 5 (.6)
    # 2: y unvisited -> expand y -> boxed6 .9 (terminal, simulated), z .3
    # 3: UCT x .6 + sqrt(ln 2) = 1.43 < y .9 + sqrt(ln 2) = 1.73 -> y; boxed6 closed -> z -> boxed7 .7
    assert backend.counts == {(): 2, ("x",): 1, ("y",): 2, ("y", "z"): 2}
    assert result.extra["answers"] == ["5", "6", "7"] and result.extra["rewards"] == [0.6, 0.9, 0.7]
    assert result.certaindex == pytest.approx((0.6 + 0.9 + 0.7) / 3)   # MCTS: mean terminal reward
    assert result.answer == "6"                                         # best of n by reward
    assert result.extra["tree_size"] == 6 and result.extra["depth"] == 3   # rollouts stay out of the tree
    assert len(reward.calls) == 7 and result.generated_tokens == 7 * STEP_TOKENS + 7
    x, y = program.root.children
    assert (program.root.visits, x.visits, y.visits) == (3, 1, 2)
    assert y.value == pytest.approx(0.8) and x.value == pytest.approx(0.6)
    assert backend.max_in_flight == 2 and {pid for pid, _ in backend.calls} == {program.program_id}


def test_mcts_stops_at_detection_with_one_stop_call():
    program, backend, _ = mcts(iterations=6, detect_at=3)
    result = run(program, backend, StaticThreshold(0.7))
    assert result.stopped_early and backend.stop_calls == 1 and result.knob_used == 3
    assert result.extra["certaindex_at_detection"] == pytest.approx(0.7333333)


def test_mcts_below_threshold_runs_to_the_cap():
    program, backend, _ = mcts(iterations=6, detect_at=3)
    result = run(program, backend, StaticThreshold(0.8))
    assert not result.stopped_early and backend.stop_calls == 0 and result.knob_used == 6
    assert len(result.extra["answers"]) == 6


def test_mcts_evaluates_finished_children_for_free_then_widens():
    backend = ScriptedBackend({(): ["\\boxed{1}", "\\boxed{2}", "\\boxed{3}"]}, eos=())
    rewards = {("\\boxed{1}",): 0.2, ("\\boxed{2}",): 0.9, ("\\boxed{3}",): 0.5}
    program = MCTS(PROMPT, TableReward(rewards), iterations=4, detect_at=4, branching=3)
    result = run(program, backend)
    # 1 expands (3 calls) and takes "2"; 2 and 3 evaluate "3" then "1" without tokens; 4 widens the root
    assert result.extra["answers"] == ["2", "3", "1", "2"] and backend.counts == {(): 6}
    assert result.extra["tree_size"] == 6 and result.answer == "2"


def test_blank_step_and_eos_end_a_branch():
    backend = ScriptedBackend({(): ["a"], ("a",): ["  ", "so 4 <eos>"]}, eos={"so 4 <eos>"})
    reward = TableReward({("a",): 0.6, ("a", "so 4 <eos>"): 0.1})
    program = Rebase(PROMPT, reward, width=2, detect_at=2, softmax_temperature=1.0)
    result = run(program, backend)
    blank, eos = sorted(program.leaves, key=lambda leaf: leaf.step)
    assert blank.terminal and blank.reward == 0.6 and blank.answer is None   # parent's reward, no judge call
    assert eos.terminal and eos.answer == "4" and eos.reward == 0.1
    assert len(reward.calls) == 3 and result.certaindex == 0.6


def test_bad_knobs():
    with pytest.raises(ValueError, match="detect_at"):
        Rebase(PROMPT, TableReward({}), width=4, detect_at=5)
    with pytest.raises(ValueError, match="detect_at"):
        MCTS(PROMPT, TableReward({}), iterations=2, detect_at=3)
    with pytest.raises(ValueError, match="branching"):
        MCTS(PROMPT, TableReward({}), branching=0)
    with pytest.raises(ValueError, match="temperature"):
        Rebase(PROMPT, TableReward({}), softmax_temperature=0)
