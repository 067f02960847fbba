"""DeepConf replayed on recorded self-consistency branches (their per-token ``topk_confidence``).

The rules are the live ones, imported, not restated: a branch's confidence, the online threshold
and the filtered weighted vote are ``DeepConf``'s (``dynasor.programs.deepconf``), the certaindex
decision is ``at_detection`` + ``StaticThreshold``, and where an online branch would be ended is
``first_window_below``, the scheduler's own per-token check.

- offline (``filter``): every branch runs; the vote keeps the ``eta`` share with the highest
  confidence. Same tokens as even, different answer.
- online: the first ``warmup`` branches (in recorded arrival order) run to the end and set the
  threshold; every later branch is cut where its window confidence first falls below it. The
  scheduler ends a request one token after the crossing token (SGLang's ``to_finish`` takes effect
  on the next step; the live test of the stop checks this count), so a branch crossing at token i
  of n costs i + 1 tokens and brings no answer when i < n; one crossing at its last token has
  already finished and votes.
- certaindex + online: as online, and at the ``detect_at``-th answer the certaindex stop of the
  live program applies (the branches after it are not charged, as in ``replay.replay_profile``).

Replay approximations (stated in the result JSON): a branch cut early would have finished earlier
live, so later branches may arrive in another order than recorded; the live program launches all
post-warm-up branches at once, so a certaindex stop may leave a few partial tokens the replay
does not charge.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynasor.certaindex import answer_certaindex, is_correct
from dynasor.certaindex.decision import at_detection
from dynasor.program_runtime.allocation import StaticThreshold
from dynasor.program_runtime.replay import Profile
from dynasor.programs.deepconf import DeepConf
from dynasor.scheduler.token_stats_aggregate import first_window_below


@dataclass(frozen=True)
class DeepConfOutcome:
    answer: str | None
    correct: bool
    tokens: int
    stopped: bool  # the program ended early (certaindex)
    cut_branches: int  # branches ended by the online threshold


def engine_stop_tokens(confidences: tuple[float, ...] | None, tokens: int, window: int,
                       stop_below: float | None) -> int | None:
    """Tokens a branch has generated when the engine ends it at ``stop_below`` (None: it finishes)."""
    if stop_below is None or not confidences:
        return None
    crossed = first_window_below(confidences[:tokens], window, stop_below)
    return crossed + 1 if crossed is not None and crossed < tokens else None


def replay_deepconf(profile: Profile, conf: DeepConf, threshold: float | None = None,
                    detect_at: int = 0) -> DeepConfOutcome:
    """One program under DeepConf (``conf.mode``), optionally with the certaindex stop at
    ``detect_at`` (``threshold`` None: no certaindex stop)."""
    branches, cap = profile.branches, len(profile.branches)
    warmup = min(conf.warmup, cap) if conf.online else cap
    answers: list[str | None] = []
    confidences: list[float | None] = []
    tokens, cut, stopped, stop_below = 0, 0, False, None
    for i, branch in enumerate(branches):
        if i == warmup and conf.online:
            stop_below = conf.threshold([c for c in confidences if c is not None])
        cut_at = engine_stop_tokens(branch.confidences, branch.tokens, conf.window, stop_below) if i >= warmup \
            else None
        if cut_at is not None:
            tokens += cut_at
            cut += 1
            continue
        tokens += branch.tokens
        answers.append(branch.answer)
        confidences.append(conf.confidence_of(branch.confidences))
        if threshold is not None and at_detection(len(answers), detect_at, cap) \
                and StaticThreshold(threshold).stops(answer_certaindex(answers)):
            stopped = i + 1 < cap
            break
    answer = conf.vote(answers, confidences)
    return DeepConfOutcome(answer, is_correct(answer, profile.gold), tokens, stopped, cut)
