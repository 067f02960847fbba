"""What a finished dynasor-mode run answers: the choice's text and finish reason, usage, report.

``usage`` adds ``probe_tokens`` and ``baseline_tokens`` (see ``cot_outcome``/``sc_outcome``);
``completion_tokens`` counts everything generated, probes and aborted requests' partial output too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dynasor.certaindex import extract_answer
from dynasor.core.generation import Generation
from dynasor.core.result import ProgramResult
from dynasor.modes.options import CotOptions, ScOptions

COT_FINISH = {"probe": "stop", "policy": "stop", "finished": "stop", "budget": "length", "aborted": "abort"}


@dataclass(frozen=True)
class ModeOutcome:
    """What a finished mode run answers: the choice's text and finish reason, usage, report."""

    text: str
    finish_reason: str
    usage: dict[str, Any]
    dynasor: dict[str, Any]


def _usage(generations: Sequence[Generation], completion: int, probe: int, baseline: int | None) -> dict[str, Any]:
    """The user's prompt is the shortest one the program sent (chunks append to it, samples share it)."""
    prompts = [g.meta_info["prompt_tokens"] for g in generations if "prompt_tokens" in g.meta_info]
    prompt = min(prompts, default=0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "probe_tokens": probe, "baseline_tokens": baseline}


def _aborted(generations: Sequence[Generation]) -> int:
    return sum(g.aborted for g in generations)


def cot_outcome(options: CotOptions, result: ProgramResult, generations: Sequence[Generation],
                program_id: str, budget: int, explicit_max: int | None) -> ModeOutcome:
    """``baseline_tokens``: a plain run produces the same reasoning, so when the chain ended by
    itself or at the budget it is the reasoning generated; after an early exit it is the
    request's ``max_tokens`` (an upper bound: a plain run stops there unless the model ends
    sooner), or null when the request set none."""
    extra = result.extra
    if extra["exit"] in ("finished", "budget"):
        baseline: int | None = extra["reasoning_tokens"]
    else:
        baseline = explicit_max
    report = {"mode": "cot", **asdict(options), "program_id": program_id, "exit": extra["exit"],
              "stopped_early": result.stopped_early, "answer": result.answer, "certaindex": result.certaindex,
              "chunks": extra["chunks"], "max_tokens": budget, "reasoning_tokens": extra["reasoning_tokens"],
              "probe_tokens": extra["probe_tokens"], "probe_answers": extra["probe_answers"],
              "aborted_requests": _aborted(generations)}
    usage = _usage(generations, result.generated_tokens, extra["probe_tokens"], baseline)
    return ModeOutcome(extra["text"], COT_FINISH[extra["exit"]], usage, report)


def sc_outcome(options: ScOptions, result: ProgramResult, generations: Sequence[Generation],
               program_id: str, budget: int) -> ModeOutcome:
    """``baseline_tokens``: n × the mean tokens of the finished samples (what a plain n-sample run
    would have generated); null if no sample finished."""
    finished = [g for g in generations if not g.aborted]
    samples: list[dict[str, Any]] = [
        {"text": g.text, "answer": extract_answer(g.text), "completion_tokens": g.completion_tokens,
         "finish_reason": g.finish_reason} for g in finished]
    voted = next((s for s in samples if result.answer is not None and s["answer"] == result.answer), None)
    chosen = voted or (samples[0] if samples else None)
    baseline = round(options.n * sum(s["completion_tokens"] for s in samples) / len(samples)) if samples else None
    report = {"mode": "sc", **asdict(options), "program_id": program_id,
              "exit": "certaindex" if result.stopped_early else "cap", "stopped_early": result.stopped_early,
              "answer": result.answer, "certaindex": result.certaindex,
              "certaindex_at_detection": result.extra["certaindex_at_detection"], "max_tokens": budget,
              "samples": samples, "aborted_requests": _aborted(generations)}
    if options.confidence != "off":
        report.update(low_confidence_stops=result.extra.get("low_confidence_stops", 0),
                      confidence_threshold=result.extra.get("confidence_threshold"))
    text = chosen["text"] if chosen else ""
    finish = chosen["finish_reason"] if chosen and chosen["finish_reason"] in ("stop", "length") else "stop"
    return ModeOutcome(text, finish, _usage(generations, result.generated_tokens, 0, baseline), report)
