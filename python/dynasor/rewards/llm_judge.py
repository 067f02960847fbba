"""A reward model made of the policy LLM itself: P("Yes") to "Is the last step correct?".

One ``/generate`` call per score with ``max_new_tokens=1``, ``temperature=0`` and the top-20
logprobs of that one token. SGLang 0.5.23 returns them in ``meta_info["output_top_logprobs"]``:
one entry per generated token, each a list of ``[logprob, token_id, token_text]`` (the text only
with ``return_text_in_logprobs``), or ``None``. Greedy requests get logprobs of the unscaled
logits, so the probabilities are the model's own.

Reward: the summed probability of every top token whose stripped, lower-cased text is "yes"
(" Yes", "yes", "YES" ...), divided by P(yes) + P(no) when both appear in the top list, so that
mass the model puts on unrelated tokens (newlines, "Q") does not drag every score down. When only
one of the two appears, the raw P(yes) is kept: normalising would snap it to exactly 0 or 1 on the
strength of a truncated list.

The judge runs on the same Dynasor server as the policy, and its requests carry the program's tag
(without entropy), so the engine gangs them with the program's branches, reuses the prompt
prefix they share with the policy's requests, and aborts them with the program.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dynasor.client import AsyncDynasorClient
from dynasor.core.tag import ProgramTag
from dynasor.rewards.base import ScoreUsage

JUDGE_TEMPLATE = "{question}{previous}{step}\n\nIs the last step above correct? Answer Yes or No.\nAnswer:"


def yes_probability(top_logprobs: Sequence[Sequence[Any]] | None) -> float:
    """Reward from one position's top logprobs (``[logprob, token_id, text]`` entries)."""
    if not top_logprobs:
        return 0.0
    if all(entry[2] is None for entry in top_logprobs):
        raise ValueError("top logprobs carry no token text: request them with return_text_in_logprobs=true")
    p_yes = p_no = 0.0
    for logprob, _token_id, text in top_logprobs:
        word = (text or "").strip().lower()
        if word == "yes":
            p_yes += math.exp(logprob)
        elif word == "no":
            p_no += math.exp(logprob)
    if p_yes > 0.0 and p_no > 0.0:
        return p_yes / (p_yes + p_no)
    return min(p_yes, 1.0)


def reward_from_meta(meta_info: Mapping[str, Any]) -> float:
    """Reward from a judge response's ``meta_info`` (0 when the judge produced no token)."""
    positions = meta_info.get("output_top_logprobs") or []
    return yes_probability(positions[0] if positions else None)


class LLMJudge:
    """``RewardModel`` asking an LLM on a Dynasor (or stock SGLang) server about the last step."""

    def __init__(self, client: AsyncDynasorClient, template: str = JUDGE_TEMPLATE, step_join: str = "\n",
                 top_logprobs_num: int = 20) -> None:
        self.client = client
        self.template = template
        self.step_join = step_join
        self.top_logprobs_num = top_logprobs_num

    def prompt(self, question: str, steps: Sequence[str]) -> str:
        """Question and steps joined as the policy saw them, so the judge shares their KV prefix."""
        if not steps:
            raise ValueError("the judge scores the last step: steps must not be empty")
        previous = "".join(step + self.step_join for step in steps[:-1])
        return self.template.format(question=question, previous=previous, step=steps[-1])

    async def score(self, question: str, steps: Sequence[str], program_id: str | None = None,
                    usage: ScoreUsage | None = None) -> float:
        tag = ProgramTag(program_id, return_entropy=False) if program_id else None
        out = await self.client.generate(
            self.prompt(question, steps), {"max_new_tokens": 1, "temperature": 0.0}, program=tag,
            return_logprob=True, top_logprobs_num=self.top_logprobs_num, return_text_in_logprobs=True,
        )
        meta = out["meta_info"]
        aborted = (meta.get("finish_reason") or {}).get("type") == "abort"
        if usage is not None:
            usage.add_meta(meta)
            usage.aborted += int(aborted)
        return 0.0 if aborted else reward_from_meta(meta)
