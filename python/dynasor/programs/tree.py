"""Step trees for reward-guided programs (Rebase, MCTS): nodes, REBASE width allocation, UCT, and
the ``StepSearch`` base class both programs build on.

A *step* is one continuation of the policy up to the step delimiter (a stop string, "\\n" by
default; SGLang trims it from the text, and the delimiter is put back when the next prompt is
built, so every request of a program extends the same token prefix and hits the radix cache).
A node is terminal when its step states a final answer, when the model ended the solution (EOS,
or an empty step: a blank line closes a few-shot answer), or at ``max_depth`` (truncated).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynasor.certaindex import answer_certaindex, extract_answer
from dynasor.core.generation import Generation
from dynasor.core.result import ProgramResult
from dynasor.programs.base import ProgramRunner, ReasoningProgram
from dynasor.rewards.base import RewardModel, ScoreUsage

_STATES_ANSWER = re.compile(r"\\boxed\{|answer is|####", re.IGNORECASE)


def final_answer(step: str) -> str | None:
    """The answer a step states explicitly (``\\boxed{}``, "the answer is", ``####``), else None.

    Unlike ``extract_answer`` there is no last-number fallback: every arithmetic step has numbers,
    and a branch ends only when it commits to an answer."""
    return extract_answer(step) if _STATES_ANSWER.search(step) else None


def ended_by_model(generation: Generation) -> bool:
    """The model stopped on its own (EOS / stop token), not on the step delimiter or the length cap."""
    finish = generation.meta_info.get("finish_reason") or {}
    matched = finish.get("matched") if isinstance(finish, Mapping) else None
    return generation.finish_reason == "stop" and matched is not None and not isinstance(matched, str)


@dataclass(eq=False)
class StepNode:
    """One step of a partial solution; the root (depth 0) holds no step. ``visits``/``value_sum``
    are MCTS statistics (value = mean terminal reward through the node)."""

    step: str = ""
    parent: StepNode | None = None
    reward: float | None = None
    terminal: bool = False
    answer: str | None = None
    children: list[StepNode] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    depth: int = field(init=False)

    def __post_init__(self) -> None:
        self.depth = 0 if self.parent is None else self.parent.depth + 1

    def steps(self) -> list[str]:
        out, node = [], self
        while node.parent is not None:
            out.append(node.step)
            node = node.parent
        return out[::-1]

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    def walk(self) -> Iterator[StepNode]:
        yield self
        for child in self.children:
            yield from child.walk()


def softmax_widths(rewards: Sequence[float], budget: int, temperature: float) -> list[int]:
    """REBASE width allocation: children per node ∝ softmax(reward / T), summing to ``budget``.

    As in the REBASE reference code, nodes are served best first and each takes
    ceil(remaining budget × its share of the remaining softmax mass), which sums exactly to the
    budget and rounds in favour of the better nodes. Returned in input order."""
    if temperature <= 0:
        raise ValueError(f"softmax temperature must be > 0, got {temperature}")
    if not rewards or budget <= 0:
        return [0] * len(rewards)
    top = max(rewards)
    weights = [math.exp((r - top) / temperature) for r in rewards]
    order = sorted(range(len(rewards)), key=lambda i: -rewards[i])
    widths, remaining, mass = [0] * len(rewards), budget, sum(weights)
    for i in order:
        share = remaining * weights[i] / mass if mass > 0 else remaining
        widths[i] = min(remaining, math.ceil(share - 1e-9))
        remaining -= widths[i]
        mass -= weights[i]
    return widths


def uct(child: StepNode, parent_visits: int, c: float) -> float:
    """UCT = mean value + c·sqrt(ln N(parent) / N(child)); unvisited children come first."""
    if child.visits == 0:
        return math.inf
    return child.value + c * math.sqrt(math.log(max(parent_visits, 1)) / child.visits)


def select_leaf(root: StepNode, c: float) -> StepNode:
    """MCTS selection: descend by UCT through *open* children (a visited terminal child is closed:
    revisiting a finished solution teaches nothing). Ties, such as several unvisited children, go
    to the higher step reward, so each iteration starts from the best-rewarded unexplored node.
    Returns a node to expand (no open children) or an unvisited terminal node to evaluate."""
    node = root
    while not node.terminal:
        open_children = [ch for ch in node.children if not (ch.terminal and ch.visits)]
        if not open_children:
            break
        node = max(open_children, key=lambda ch: (uct(ch, node.visits, c), ch.reward or 0.0))
    return node


def backpropagate(node: StepNode | None, value: float) -> None:
    while node is not None:
        node.visits += 1
        node.value_sum += value
        node = node.parent


class StepSearch(ReasoningProgram):
    """What Rebase and MCTS share: the prompt and tree, one-step expansion scored by the reward
    model (every policy call through ``runtime.generate``; siblings concurrently), and token
    accounting (policy tokens and reward-model tokens kept apart)."""

    def __init__(self, prompt: str, reward: RewardModel, cap: int, detect_at: int,
                 sampling_params: Mapping[str, Any] | None, step_delimiter: str, max_depth: int) -> None:
        super().__init__()
        if not 1 <= detect_at <= cap:
            raise ValueError(f"need 1 <= detect_at <= cap, got detect_at={detect_at}, cap={cap}")
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        self.prompt, self.reward, self.cap, self.detect_at = prompt, reward, cap, detect_at
        self.delimiter, self.max_depth = step_delimiter, max_depth
        self.sampling_params = dict(sampling_params or {"temperature": 0.8, "max_new_tokens": 128})
        self.sampling_params.setdefault("stop", [step_delimiter])
        self.root = StepNode()
        self.usage = ScoreUsage()
        # generated_tokens: policy + reward model tokens
        self.state = {"policy_tokens": 0, "calls": 0, "aborted": 0, "signals": {}}

    def prompt_for(self, steps: Sequence[str]) -> str:
        return self.prompt + "".join(step + self.delimiter for step in steps)

    def trajectory_answer(self, steps: Sequence[str]) -> str | None:
        """Answer of a finished path: the last step's explicit answer, else from the whole text."""
        return (final_answer(steps[-1]) if steps else None) or extract_answer(self.delimiter.join(steps))

    async def sample_step(self, runtime: ProgramRunner, steps: Sequence[str]) -> Generation | None:
        """The next step after ``steps`` (None if the engine aborted it)."""
        generation = await runtime.generate(self, self.prompt_for(steps), self.sampling_params)
        self.state["calls"] += 1
        self.state["policy_tokens"] += generation.completion_tokens
        self._count()
        if generation.aborted:
            self.state["aborted"] += 1
            return None
        return generation

    async def score(self, steps: Sequence[str]) -> float:
        reward = await self.reward.score(self.prompt, list(steps), program_id=self.program_id, usage=self.usage)
        self._count()
        return reward

    def _count(self) -> None:
        self.generated_tokens = self.state["policy_tokens"] + self.usage.completion_tokens

    async def _grow(self, runtime: ProgramRunner, parent: StepNode) -> StepNode | None:
        generation = await self.sample_step(runtime, parent.steps())
        if generation is None:
            return None
        node = StepNode(generation.text, parent)
        blank = not generation.text.strip()
        answer = final_answer(generation.text)
        if answer is not None or blank or ended_by_model(generation) or node.depth >= self.max_depth:
            node.terminal = True
            steps = node.steps()[:-1] if blank else node.steps()
            node.answer = answer if answer is not None else self.trajectory_answer(steps)
        # a blank step adds nothing to judge: the path ended at the parent, keep its reward
        node.reward = parent.reward if blank and parent.reward is not None else await self.score(node.steps())
        return node

    async def expand(self, runtime: ProgramRunner, parents: Sequence[StepNode]) -> list[StepNode]:
        """One new child per entry of ``parents`` (repeat a parent for several), all concurrently;
        children are attached in request order, so the tree does not depend on timing."""
        grown = await asyncio.gather(*[self._grow(runtime, parent) for parent in parents])
        children = [child for child in grown if child is not None]
        for child in children:
            assert child.parent is not None
            child.parent.children.append(child)
        return children

    def remaining_work(self) -> float | None:
        """Estimated tokens still to generate: tokens per knob unit so far × knob units left."""
        if self.knob <= 0:
            return None
        return self.generated_tokens / self.knob * max(self.cap - self.knob, 0)

    def set_signals(self, reward: float, answers: Sequence[str | None]) -> None:
        """Keep both paper signals (reward R and answer entropy H̃), for AND policies (§2.4)."""
        self.state["signals"] = {"reward": reward, "answer": answer_certaindex(answers)}

    def result(self, answer: str | None, stopped: bool, detected: float | None,
               extra: Mapping[str, Any]) -> ProgramResult:
        nodes = list(self.root.walk())[1:]
        self._count()
        return ProgramResult(answer, self.knob, self.generated_tokens, stopped, self.certaindex, {
            "policy_tokens": self.state["policy_tokens"],
            "policy_calls": self.state["calls"],
            "judge_tokens": self.usage.completion_tokens,
            "judge_prompt_tokens": self.usage.prompt_tokens,
            "judge_calls": self.usage.calls,
            "tree_size": len(nodes),
            "depth": max((n.depth for n in nodes), default=0),
            "aborted_generations": self.state["aborted"],
            "certaindex_at_detection": detected,
            "answer_certaindex": self.state["signals"].get("answer"),
            **extra,
        })
