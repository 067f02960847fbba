"""Monte Carlo tree search over reasoning steps (TS-LLM / RAP style) with certaindex early stopping.

One iteration (the knob unit, docs/paper.md):

1. *Selection*: descend from the root by UCT over mean values (``select_leaf``); unvisited
   children first, best step reward first, so an iteration starts from the highest-reward node.
2. *Expansion*: sample ``branching`` next steps of the selected node concurrently; the reward
   model scores each.
3. *Simulation*: from the best-rewarded new child, roll out step by step to a final answer (or
   ``max_depth``) and score the finished path; a terminal child is its own finished path.
4. *Back-propagation*: the path's terminal reward is added to every node up to the root (mean
   values). An iteration that selects an unvisited terminal node only evaluates it (no tokens).

Certaindex = the **mean** terminal reward over the iterations' paths (§2.3), read at the detection
step ``detect_at`` iterations (Table 3: Detect@3, cap 15); on a stop the program calls
``runtime.stop`` once. Answer: best-of-n by terminal reward.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dynasor.certaindex import reward_certaindex
from dynasor.core.result import ProgramResult
from dynasor.programs.base import ProgramRunner
from dynasor.programs.tree import StepNode, StepSearch, backpropagate, ended_by_model, final_answer, select_leaf
from dynasor.rewards.base import RewardModel


@dataclass(frozen=True)
class Solution:
    """A finished solution found by one iteration: its steps, answer and terminal reward."""

    steps: tuple[str, ...]
    answer: str | None
    reward: float


class MCTS(StepSearch):
    def __init__(self, prompt: str, reward: RewardModel, iterations: int = 15, detect_at: int = 3,
                 branching: int = 3, exploration: float = 1.0, sampling_params: Mapping[str, Any] | None = None,
                 step_delimiter: str = "\n", max_depth: int = 8) -> None:
        """``iterations`` is the cap on the knob; ``exploration`` is the UCT constant c."""
        super().__init__(prompt, reward, iterations, detect_at, sampling_params, step_delimiter, max_depth)
        if branching < 1:
            raise ValueError(f"branching must be >= 1, got {branching}")
        self.branching, self.exploration = branching, exploration
        self.paths: list[Solution] = []

    def update_certaindex(self) -> float:
        self.certaindex = reward_certaindex([p.reward for p in self.paths], "mean")
        self.set_signals(self.certaindex, [p.answer for p in self.paths])
        return self.certaindex

    def best_answer(self) -> str | None:
        answered = [p for p in self.paths if p.answer is not None]
        return max(answered, key=lambda p: p.reward).answer if answered else None

    async def rollout(self, runtime: ProgramRunner, node: StepNode) -> Solution | None:
        """Continue ``node``'s path step by step to a finished solution and score it (the rollout
        steps stay out of the tree: they are one sample, not explored alternatives)."""
        steps = node.steps()
        while len(steps) < self.max_depth:
            generation = await self.sample_step(runtime, steps)
            if generation is None:
                return None
            if not generation.text.strip():
                break
            steps.append(generation.text)
            if final_answer(generation.text) is not None or ended_by_model(generation):
                break
        if len(steps) == node.depth and node.reward is not None:  # nothing added: the node's own reward
            return Solution(tuple(steps), self.trajectory_answer(steps), node.reward)
        return Solution(tuple(steps), self.trajectory_answer(steps), await self.score(steps))

    async def iterate(self, runtime: ProgramRunner) -> None:
        node = select_leaf(self.root, self.exploration)
        if not node.terminal:
            children = await self.expand(runtime, [node] * self.branching)
            if not children:
                return
            node = max(children, key=lambda child: child.reward or 0.0)
        if node.terminal:
            path: Solution | None = Solution(tuple(node.steps()), node.answer, node.reward or 0.0)
        else:
            path = await self.rollout(runtime, node)
        if path is not None:
            self.paths.append(path)
            backpropagate(node, path.reward)

    async def execute(self, runtime: ProgramRunner) -> ProgramResult:
        granted = runtime.grant(self, self.cap)
        stopped, detected = False, None
        for iteration in range(1, granted + 1):
            await self.iterate(runtime)
            self.knob = iteration
            if iteration == self.detect_at and iteration < granted:
                detected = self.update_certaindex()
                if not runtime.should_continue(self):
                    stopped = True
                    await runtime.stop(self)
                    break
        self.update_certaindex()
        return self.result(self.best_answer(), stopped, detected, {
            "answers": [p.answer for p in self.paths], "rewards": [p.reward for p in self.paths],
            "paths": len(self.paths),
        })
