"""Certaindex signals (definitions and thresholds: docs/paper.md).

- ``answer_certaindex``: H̃ = 1 − H / log n over answer clusters (n ≥ 2; 0 below that: no evidence).
- ``probe_consistent``: the last N probe answers are non-empty, equivalent, and no probe text has a
  hesitation word (matched on word boundaries, so "know" or "button" do not count). The public
  Dynasor code exits even when the answers disagree; here agreement is required.
- ``reward_certaindex``: mean of terminal rewards (MCTS) or max (Rebase).
- ``lowest_window_mean`` (from ``dynasor.core.window``): DeepConf's lowest group confidence.
- ``all_pass``: a program meets certainty only if every signal reaches its threshold (AND).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from dynasor.certaindex.equivalence import answers_equivalent, cluster_answers
from dynasor.core.window import lowest_window_mean

__all__ = [
    "HESITATION_WORDS", "all_pass", "answer_certaindex", "has_hesitation", "lowest_window_mean", "probe_consistent",
    "reward_certaindex",
]

HESITATION_WORDS = ("wait", "hold", "but", "okay", "no", "hmm")
_HESITATION = re.compile(r"\b(?:" + "|".join(HESITATION_WORDS) + r")\b", re.IGNORECASE)


def answer_certaindex(answers: Sequence[str | None]) -> float:
    n = len(answers)
    if n < 2:
        return 0.0
    entropy = -sum(len(c) / n * math.log(len(c) / n) for c in cluster_answers(answers))
    # round off float noise (all-distinct answers give ±1e-16, unanimous 1 - 1e-16), then clamp
    return min(1.0, max(0.0, round(1.0 - entropy / math.log(n), 12)))


def has_hesitation(text: str) -> bool:
    return _HESITATION.search(text) is not None


def probe_consistent(probe_answers: Sequence[str], probe_texts: Sequence[str], window: int) -> bool:
    if window < 1 or len(probe_answers) < window:
        return False
    answers, texts = probe_answers[-window:], probe_texts[-window:]
    if any(not a for a in answers) or any(has_hesitation(t) for t in texts):
        return False
    return all(answers_equivalent(answers[0], a) for a in answers[1:])


def reward_certaindex(rewards: Sequence[float], mode: str) -> float:
    if not rewards:
        return 0.0
    if mode == "mean":
        return sum(rewards) / len(rewards)
    if mode == "max":
        return max(rewards)
    raise ValueError(f"reward aggregation must be 'mean' (MCTS) or 'max' (Rebase), got {mode!r}")


def all_pass(values: Mapping[str, float], thresholds: Mapping[str, float]) -> bool:
    """AND of every thresholded signal; a signal with a threshold but no value fails."""
    return all(name in values and values[name] >= threshold for name, threshold in thresholds.items())
