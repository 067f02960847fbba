"""Offline replay of recorded reasoning programs: every knob point and stop rule of the batch
benchmark, computed from one live run per problem at the largest knob.

Why offline: replaying one recording under every policy gives *paired* comparisons (all policies
see the same samples, so their differences are not sampling noise between runs) and the sweep
costs one live run instead of one per point. What is not replayed: tokens of branches that a live
stop aborts part-way (a few per abort); the live SC point of ``bench_batch --live-n`` measures them.

- SC (``replay.Profile``: branch answers and tokens in arrival order). A cap-k program is a
  seeded random k-subset of the recorded branches, kept in arrival order, averaged over
  ``resamples`` subsets: branches are exchangeable samples, while the first k arrivals would be
  biased towards short outputs. The same subsets serve every policy at a cap. Policies: even (all
  k), certaindex (``replay.replay_profile``: stop at detect_at if H̃ ≥ τ), length (``LengthCap`` at the
  detection step: stop if the first detect_at branches generated ≥ ℓ tokens).
- CoT (``CoTTrace``: chunks with the reasoning's answer after each, and the probe after each). A
  budget of k chunks is the first k chunks. Even: the uniform budget, scored on the truncated
  reasoning with no probes (the paper's baseline). Certaindex: ``DynasorCoT`` under
  ``StaticThreshold(1.0)``: exit at the first probe whose window of ``w`` probes agrees, charged
  the reasoning so far, the chunk in flight at the exit (in full: an upper bound) and every probe.
- Rebase (``RebaseTrace``: one search of width ``detect_at``, then one of ``width - detect_at``).
  Even at ``detect_at`` is the first search, even at ``width`` the whole recording; certaindex
  stops after the first search if its max reward ≥ τ; length if it generated ≥ ℓ tokens.
  Judge tokens count in the total (and separately as ``extra_tokens``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from benchmark.batch.offline_deepconf import replay_deepconf
from dynasor.certaindex import is_correct, majority_vote, probe_consistent, weighted_vote
from dynasor.program_runtime.replay import Profile, ReplayOutcome, replay_profile
from dynasor.programs.deepconf import DeepConf

FAMILIES = ("even", "certaindex", "length", "deepconf-offline", "deepconf-online", "certaindex+online")


@dataclass(frozen=True)
class Spec:
    """One policy: ``family`` even / certaindex / length; ``value`` is τ (SC H̃, Rebase reward),
    ℓ (tokens at detection) or w (CoT probe window); ``label`` names its line in tables and plots."""

    family: str
    label: str
    value: float | None = None
    detect_at: int | None = None
    confidence: DeepConf | None = None  # the DeepConf families' settings


@dataclass(frozen=True)
class Result:
    """One program under one policy (SC: the mean over subsets, so ``correct`` may be fractional)."""

    correct: float
    tokens: float
    extra_tokens: float = 0.0
    stopped: float = 0.0


def mean_result(results: Sequence[Result]) -> Result:
    n = len(results)
    return Result(*(sum(getattr(r, f) for r in results) / n for f in ("correct", "tokens", "extra_tokens", "stopped")))


def sc_specs(thresholds: Sequence[float], lengths: Sequence[float], detect_at: int) -> list[Spec]:
    return ([Spec("even", "even")]
            + [Spec("certaindex", f"certaindex H>={t:g}@{detect_at}", t, detect_at) for t in thresholds]
            + [Spec("length", f"length >={ell:g} tok@{detect_at}", ell, detect_at) for ell in lengths])


def deepconf_specs(etas: Sequence[float], warmup: int, window: int, thresholds: Sequence[float],
                   detect_at: int) -> list[Spec]:
    """DeepConf-offline and -online per ``eta``, and certaindex + online per (threshold, eta)."""
    specs = [Spec("deepconf-offline", f"deepconf-offline eta={e:g}", e, None, DeepConf("filter", e, warmup, window))
             for e in etas]
    specs += [Spec("deepconf-online", f"deepconf-online eta={e:g} w{warmup}", e, None,
                   DeepConf("online", e, warmup, window)) for e in etas]
    specs += [Spec("certaindex+online", f"H>={t:g}@{detect_at}+online eta={e:g}", t, detect_at,
                   DeepConf("online", e, warmup, window)) for t in thresholds for e in etas]
    return specs


def subsample(profile: Profile, k: int, rng: random.Random) -> Profile:
    """k branches drawn without replacement, in their recorded arrival order."""
    if k >= len(profile.branches):
        return profile
    keep = sorted(rng.sample(range(len(profile.branches)), k))
    return replace(profile, branches=tuple(profile.branches[i] for i in keep))


def replay_length_cap(profile: Profile, max_tokens: float, detect_at: int) -> ReplayOutcome:
    """``LengthCap(max_tokens)`` asked at the detection step, where the program's tokens are those
    of its first ``detect_at`` finished branches."""
    used = profile.branches
    if detect_at < len(used) and sum(b.tokens for b in used[:detect_at]) >= max_tokens:
        used = used[:detect_at]
    answer = majority_vote([b.answer for b in used])
    return ReplayOutcome(answer, is_correct(answer, profile.gold), sum(b.tokens for b in used),
                   len(used) < len(profile.branches))


def _sc_once(profile: Profile, spec: Spec) -> ReplayOutcome:
    if spec.confidence is not None:
        with_certaindex = spec.family == "certaindex+online"
        out = replay_deepconf(profile, spec.confidence, spec.value if with_certaindex else None, spec.detect_at or 0)
        return ReplayOutcome(out.answer, out.correct, out.tokens, out.stopped)
    if spec.family == "even":
        return replay_profile(profile, None, 0)
    if spec.family == "certaindex":
        return replay_profile(profile, spec.value, spec.detect_at or 0)
    if spec.family == "length":
        return replay_length_cap(profile, float(spec.value or 0), spec.detect_at or 0)
    raise ValueError(f"unknown policy family {spec.family!r}")


def sc_result(profile: Profile, cap: int, spec: Spec, resamples: int = 20) -> Result:
    """The program at ``cap`` branches; subsets are seeded by problem id, cap and draw only."""
    if cap >= len(profile.branches):
        subsets = [profile]
    else:
        subsets = [subsample(profile, cap, random.Random(f"{profile.problem_id}/{cap}/{r}")) for r in range(resamples)]
    outcomes = [_sc_once(s, spec) for s in subsets]
    return mean_result([Result(float(o.correct), float(o.tokens), 0.0, float(o.stopped)) for o in outcomes])


def detection_tokens(profile: Profile, detect_at: int) -> int:
    """Tokens the program has generated when it reaches its detection step (what LengthCap reads)."""
    return sum(b.tokens for b in profile.branches[:detect_at])


@dataclass(frozen=True)
class Probe:
    answer: str
    text: str
    tokens: int


@dataclass(frozen=True)
class CoTTrace:
    """A ``DynasorCoT`` run that never stopped early: per chunk its reasoning tokens, the answer the
    reasoning so far states (``extract_answer``) and the probe sent after it (None: the model ended
    its output in that chunk, so no probe was sent)."""

    problem_id: str
    gold: str
    chunk_tokens: tuple[int, ...]
    chunk_answers: tuple[str | None, ...]
    probes: tuple[Probe | None, ...]
    level: int | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> CoTTrace:
        return cls(**{**row, "chunk_tokens": tuple(row["chunk_tokens"]), "chunk_answers": tuple(row["chunk_answers"]),
                      "probes": tuple(Probe(**p) if p else None for p in row["probes"])})


def replay_cot(trace: CoTTrace, budget_chunks: int, window: int | None) -> Result:
    """The program with ``max_tokens`` = ``budget_chunks`` chunks; ``window=None``: no probing."""
    k = min(budget_chunks, len(trace.chunk_tokens))
    if k < 1:
        raise ValueError("a budget needs at least one chunk")
    reasoning = sum(trace.chunk_tokens[:k])
    if window is None:
        return Result(float(is_correct(trace.chunk_answers[k - 1], trace.gold)), float(reasoning))
    answers: list[str] = []
    texts: list[str] = []
    probe_tokens = 0
    for i in range(k):
        probe = trace.probes[i]
        if probe is None:  # the model ended its output: no probe, exit "finished"
            break
        probe_tokens += probe.tokens
        answers.append(probe.answer)
        texts.append(probe.text)
        if i == k - 1:  # the probe after the budget's last chunk is spent, not judged (exit "budget")
            break
        if probe_consistent(answers, texts, window):
            spent = sum(trace.chunk_tokens[:i + 2]) + probe_tokens  # + the chunk in flight, in full
            return Result(float(is_correct(probe.answer, trace.gold)), float(spent), float(probe_tokens), 1.0)
    answer = trace.chunk_answers[k - 1] or next((a for a in reversed(answers) if a), None)
    return Result(float(is_correct(answer, trace.gold)), float(reasoning + probe_tokens), float(probe_tokens))


def cot_specs(windows: Sequence[int]) -> list[Spec]:
    return [Spec("even", "even (budget)")] + [Spec("certaindex", f"probe w={w}", float(w), w) for w in windows]


def cot_result(trace: CoTTrace, budget_chunks: int, spec: Spec) -> Result:
    return replay_cot(trace, budget_chunks, None if spec.family == "even" else int(spec.value or 0))


@dataclass(frozen=True)
class RebaseTrace:
    """A ``Rebase`` run under even allocation: leaves (first search first) with their answers and
    rewards, ``first`` = leaves of the first search, tokens generated (policy + judge) at the
    detection step and in total, and the judge's share of each."""

    problem_id: str
    gold: str
    width: int
    detect_at: int
    answers: tuple[str | None, ...]
    rewards: tuple[float, ...]
    first: int
    tokens_first: int
    judge_first: int
    tokens: int
    judge_tokens: int
    level: int | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> RebaseTrace:
        return cls(**{**row, "answers": tuple(row["answers"]), "rewards": tuple(row["rewards"])})


def replay_rebase(trace: RebaseTrace, stop_at_detection: bool) -> Result:
    n = trace.first if stop_at_detection else len(trace.answers)
    answer = weighted_vote(trace.answers[:n], trace.rewards[:n])
    tokens, judge = (trace.tokens_first, trace.judge_first) if stop_at_detection else (trace.tokens, trace.judge_tokens)
    stopped = stop_at_detection and trace.first < len(trace.answers)
    return Result(float(is_correct(answer, trace.gold)), float(tokens), float(judge), float(stopped))


def rebase_specs(thresholds: Sequence[float], lengths: Sequence[float], detect_at: int) -> list[Spec]:
    return ([Spec("even", "even")]
            + [Spec("certaindex", f"reward>={t:g}@{detect_at}", t, detect_at) for t in thresholds]
            + [Spec("length", f"length >={ell:g} tok@{detect_at}", ell, detect_at) for ell in lengths])


def rebase_result(trace: RebaseTrace, width: int, spec: Spec) -> Result | None:
    """The point at knob ``width``: the recording's detection width or its full width (else None)."""
    if width == trace.detect_at:
        return replace(replay_rebase(trace, True), stopped=0.0) if spec.family == "even" else None
    if width != trace.width:
        return None
    if spec.family == "even":
        return replay_rebase(trace, False)
    head = trace.rewards[:trace.first]
    if spec.family == "certaindex":
        stop = bool(head) and max(head) >= float(spec.value or 0)
    elif spec.family == "length":
        stop = trace.tokens_first >= float(spec.value or 0)
    else:
        raise ValueError(f"unknown policy family {spec.family!r}")
    return replay_rebase(trace, stop)


ResultFn = Callable[[Any, int, Spec], "Result | None"]
