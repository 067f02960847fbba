"""REBASE (reward-balanced search, Wu et al.) with certaindex early stopping.

One search of width W (docs/paper.md): the root gets W children (one step each, scored by the
reward model). At every depth, each finished child (a final answer, or truncated) uses up one unit
of width; the remaining width B is shared among the unfinished nodes of that depth by softmax of
reward / T (``softmax_widths``), and each node is expanded into that many children, all at once.
The search ends when W paths have finished. The answer is the reward-weighted majority vote over
finished paths (weight = reward of the path's last step).

Knob = width (finished paths). The detection step is in width units (paper Table 3, Detect@16):
a first search of width ``detect_at`` runs, certaindex is read (the **max** terminal reward,
§2.3), and the runtime's policy decides: stop (one ``runtime.stop`` call) or spend the rest of
the cap, ``cap - detect_at``, on a second search from the same root whose paths join the vote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynasor.certaindex import reward_certaindex, weighted_vote
from dynasor.core.result import ProgramResult
from dynasor.programs.base import ProgramRunner
from dynasor.programs.tree import StepNode, StepSearch, softmax_widths
from dynasor.rewards.base import RewardModel


class Rebase(StepSearch):
    def __init__(self, prompt: str, reward: RewardModel, width: int = 32, detect_at: int = 16,
                 sampling_params: Mapping[str, Any] | None = None, step_delimiter: str = "\n",
                 max_depth: int = 8, softmax_temperature: float = 0.2) -> None:
        """``width`` is the cap on the knob; ``softmax_temperature`` 0.2 is the REBASE default."""
        super().__init__(prompt, reward, width, detect_at, sampling_params, step_delimiter, max_depth)
        if softmax_temperature <= 0:
            raise ValueError(f"softmax_temperature must be > 0, got {softmax_temperature}")
        self.temperature = softmax_temperature
        self.leaves: list[StepNode] = []

    def rewards(self) -> list[float]:
        return [leaf.reward or 0.0 for leaf in self.leaves]

    def update_certaindex(self) -> float:
        self.certaindex = reward_certaindex(self.rewards(), "max")
        self.set_signals(self.certaindex, [leaf.answer for leaf in self.leaves])
        return self.certaindex

    async def search(self, runtime: ProgramRunner, width: int) -> None:
        """One REBASE search from the root, until ``width`` paths have finished."""
        frontier, remaining = [self.root], width
        while frontier and remaining > 0:
            widths = softmax_widths([node.reward or 0.0 for node in frontier], remaining, self.temperature)
            parents = [node for node, n in zip(frontier, widths) for _ in range(n)]
            children = await self.expand(runtime, parents)
            finished = [child for child in children if child.terminal]
            self.leaves.extend(finished)
            remaining -= len(finished)
            frontier = [child for child in children if not child.terminal]

    async def execute(self, runtime: ProgramRunner) -> ProgramResult:
        granted = runtime.grant(self, self.cap)
        first = min(self.detect_at, granted)
        stopped, detected = False, None
        await self.search(runtime, first)
        self.knob = len(self.leaves)
        if granted > first:
            detected = self.update_certaindex()
            if runtime.should_continue(self):
                await self.search(runtime, granted - first)
                self.knob = len(self.leaves)
            else:
                stopped = True
                await runtime.stop(self)
        self.update_certaindex()
        answers, rewards = [leaf.answer for leaf in self.leaves], self.rewards()
        best = max(range(len(rewards)), key=lambda i: rewards[i], default=None)
        return self.result(weighted_vote(answers, rewards), stopped, detected, {
            "answers": answers, "rewards": rewards,
            "best_reward_answer": answers[best] if best is not None else None,
        })
