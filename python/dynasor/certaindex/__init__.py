"""Certaindex: how settled a reasoning program's answer is (paper §3; docs/paper.md)."""

from dynasor.certaindex.answers import extract_answer, extract_probe_answer
from dynasor.certaindex.decision import at_detection
from dynasor.certaindex.equivalence import answers_equivalent, canonical_answer, cluster_answers, is_correct
from dynasor.certaindex.signals import (
    HESITATION_WORDS,
    all_pass,
    answer_certaindex,
    lowest_window_mean,
    probe_consistent,
    reward_certaindex,
)
from dynasor.certaindex.voting import majority_vote, weighted_vote

__all__ = [
    "HESITATION_WORDS",
    "all_pass",
    "answer_certaindex",
    "answers_equivalent",
    "at_detection",
    "canonical_answer",
    "cluster_answers",
    "extract_answer",
    "extract_probe_answer",
    "is_correct",
    "lowest_window_mean",
    "majority_vote",
    "probe_consistent",
    "reward_certaindex",
    "weighted_vote",
]
