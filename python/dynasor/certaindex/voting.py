"""Answer aggregation by vote, up to answer equivalence (``cluster_answers``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from dynasor.certaindex.equivalence import cluster_answers


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The largest cluster of equivalent answers (the first seen on ties), as its most common
    spelling; None when no answer is present."""
    present = [a for a in answers if a is not None]
    if not present:
        return None
    best = max(cluster_answers(present), key=len)
    return Counter(present[i] for i in best).most_common(1)[0][0]


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float]) -> str | None:
    """The cluster of equivalent answers with the largest total weight (ties: the larger cluster,
    then the one seen first), as its most common spelling."""
    voted = [i for i, a in enumerate(answers) if a is not None]
    if not voted:
        return None
    clusters = [[voted[j] for j in c] for c in cluster_answers([answers[i] for i in voted])]
    best = max(clusters, key=lambda c: (sum(weights[i] for i in c), len(c), -c[0]))
    return Counter(answers[i] for i in best).most_common(1)[0][0]
