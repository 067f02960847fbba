"""Rebase and MCTS end to end on the live server, guided by an LLM judge on the same server.

Small on purpose (2-core CPU): a 3-shot one-step arithmetic prompt, width / iterations 3, depth
<= 3, 24 tokens per step ending at "\\n". The checks are about the mechanism, not the small
model's accuracy: every policy and judge request is tagged with the program (the engine's count
of the program's requests and generated tokens equals the program's own), judge tokens are
counted, rewards are probabilities, and the detection step can stop a program live."""

import time
from collections.abc import Callable
from typing import Any

from dynasor.client import AsyncDynasorClient
from dynasor.program_runtime.allocation import AllocationPolicy, EvenAllocation, StaticThreshold
from dynasor.program_runtime.backends import DynasorBackend
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs.mcts import MCTS
from dynasor.programs.rebase import Rebase
from dynasor.programs.tree import StepSearch
from dynasor.rewards import LLMJudge

THREE_SHOT = (
    "Q: What is 2 + 3?\nA: 2 + 3 = 5. The answer is \\boxed{5}.\n\n"
    "Q: What is 7 - 4?\nA: 7 - 4 = 3. The answer is \\boxed{3}.\n\n"
    "Q: What is 6 + 1?\nA: 6 + 1 = 7. The answer is \\boxed{7}.\n\n"
)
PROMPT = THREE_SHOT + "Q: What is 4 + 3?\nA:"
STEP = {"max_new_tokens": 24, "temperature": 0.8, "stop": ["\n"]}


async def run_live(url: str, make: Callable[[LLMJudge], StepSearch], policy: AllocationPolicy) -> tuple[Any, dict, StepSearch]:
    async with AsyncDynasorClient(url) as client:
        program = make(LLMJudge(client))
        started = time.monotonic()
        result = await ProgramRuntime(DynasorBackend(client), policy).run_one(program)
        elapsed = time.monotonic() - started
        summary = await client.program(program.program_id)  # read before the program's TTL (10 s) expires
        listed = {p["program_key"] for p in await client.programs()}
    assert summary["program_key"] in listed
    summary["elapsed"] = elapsed
    return result, summary, program


def check(result: Any, summary: dict, program: StepSearch) -> None:
    extra = result.extra
    assert extra["judge_tokens"] > 0 and extra["judge_calls"] > 0 and extra["policy_tokens"] > 0
    assert result.generated_tokens == extra["policy_tokens"] + extra["judge_tokens"]
    node_rewards = [node.reward for node in program.root.walk() if node.parent is not None]
    assert node_rewards and all(0.0 <= r <= 1.0 for r in node_rewards + extra["rewards"])
    assert max(node_rewards) > 0.0, "the judge's top-20 logprobs never contained 'Yes'"
    assert 0.0 <= result.certaindex <= 1.0
    # policy steps and judge calls all carried the program tag, and nothing was left to abort
    assert summary["requests"]["total"] == extra["policy_calls"] + extra["judge_calls"]
    assert summary["requests"]["aborted"] == 0
    assert summary["generated_tokens"] == result.generated_tokens


async def test_rebase_with_llm_judge(url):
    def make(judge: LLMJudge) -> StepSearch:
        return Rebase(PROMPT, judge, width=3, detect_at=2, sampling_params=STEP, max_depth=3)

    result, summary, program = await run_live(url, make, EvenAllocation())
    print(f"\n[rebase] answer {result.answer} knob {result.knob_used} certaindex(max) {result.certaindex:.3f} "
          f"policy/judge tokens {result.extra['policy_tokens']}/{result.extra['judge_tokens']} "
          f"tree {result.extra['tree_size']} depth {result.extra['depth']} rewards "
          f"{[round(r, 3) for r in result.extra['rewards']]} in {summary['elapsed']:.1f}s")
    check(result, summary, program)
    assert result.knob_used == 3 and not result.stopped_early      # 2 at detection + 1 after it
    assert result.certaindex == max(result.extra["rewards"])
    assert 1 <= result.extra["depth"] <= 3


async def test_mcts_with_llm_judge_stops_at_detection(url):
    def make(judge: LLMJudge) -> StepSearch:
        return MCTS(PROMPT, judge, iterations=3, detect_at=2, branching=3, sampling_params=STEP, max_depth=3)

    # threshold 0: certaindex always meets it, so the program stops at its detection step (live stop path)
    result, summary, program = await run_live(url, make, StaticThreshold(0.0))
    print(f"\n[mcts] answer {result.answer} knob {result.knob_used} certaindex(mean) {result.certaindex:.3f} "
          f"policy/judge tokens {result.extra['policy_tokens']}/{result.extra['judge_tokens']} "
          f"tree {result.extra['tree_size']} depth {result.extra['depth']} rewards "
          f"{[round(r, 3) for r in result.extra['rewards']]} in {summary['elapsed']:.1f}s")
    check(result, summary, program)
    assert result.stopped_early and result.knob_used == 2 and result.extra["paths"] == 2
    rewards = result.extra["rewards"]
    assert abs(result.certaindex - sum(rewards) / len(rewards)) < 1e-9
    assert result.extra["certaindex_at_detection"] == result.certaindex
