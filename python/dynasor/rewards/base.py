"""The reward-model interface used by reward-guided programs (Rebase, MCTS).

A reward model scores the last step of a partial solution, given the question and every step so
far, with a value in [0, 1] (docs/paper.md: certaindex aggregates these normalised rewards).
Programs pass their ``program_id`` so that a reward model served by the same Dynasor server can
tag its requests with the program (scheduled and aborted with it), and a ``ScoreUsage`` so that
reward cost is reported apart from the policy's tokens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class ScoreUsage:
    """What a reward model spent for one program (one object per program, never shared)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    aborted: int = 0

    def add_meta(self, meta_info: Mapping[str, Any]) -> None:
        """Count one SGLang response by its ``meta_info`` token fields."""
        self.calls += 1
        self.prompt_tokens += int(meta_info.get("prompt_tokens", 0) or 0)
        self.completion_tokens += int(meta_info.get("completion_tokens", 0) or 0)
        self.cached_tokens += int(meta_info.get("cached_tokens", 0) or 0)

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cached_tokens": self.cached_tokens,
                "aborted": self.aborted}


class RewardModel(Protocol):
    async def score(self, question: str, steps: Sequence[str], program_id: str | None = None,
                    usage: ScoreUsage | None = None) -> float:
        """Reward in [0, 1] of ``steps[-1]`` given ``question`` and ``steps[:-1]``."""
        ...


def checked_reward(value: Any, source: str) -> float:
    """``value`` as a float in [0, 1]; anything else is a broken scorer, so raise rather than
    let a bad number steer the search and the certaindex."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{source} returned a non-numeric score: {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{source} returned score {value!r}, outside [0, 1]")
    return value
