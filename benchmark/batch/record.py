"""Live recording for the batch benchmark: one run per problem at the largest knob, kept as plain
data (``calibrate.Profile``, ``CoTTrace``, ``RebaseTrace``) that ``offline`` replays under every
policy, plus the optional live SC point with real engine aborts.

Recording reuses the programs unchanged, run under even allocation: ``RecordingBackend`` keeps
every request's prompt and generation (DynasorCoT's chunks and probes are told apart by the probe
suffix, in text or in token ids: ``DynasorCoT.probe_reasoning``) and ``DetectionSnapshot`` is a
never-stopping policy that notes what a program had spent when it reached its detection step
(Rebase asks its policy exactly once, there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.batch.offline import CoTTrace, Probe, RebaseTrace
from dynasor.certaindex import extract_answer, extract_probe_answer, is_correct
from dynasor.core.generation import Backend, Generation, Prompt
from dynasor.core.result import ProgramResult
from dynasor.datasets.labelled import Labelled
from dynasor.program_runtime.backends import RecordingBackend
from dynasor.programs.base import ReasoningProgram
from dynasor.programs.cot import DynasorCoT
from dynasor.programs.rebase import Rebase


class DetectionSnapshot:
    """Even allocation that records, per program, its tokens and leaves when it asks to continue."""

    def __init__(self) -> None:
        self.at: dict[str, dict[str, int]] = {}

    def should_continue(self, program: ReasoningProgram) -> bool:
        usage = getattr(program, "usage", None)
        self.at.setdefault(program.program_id, {
            "tokens": program.generated_tokens,
            "judge_tokens": int(usage.completion_tokens) if usage is not None else 0,
            "leaves": len(getattr(program, "leaves", ())),
        })
        return True


def cot_trace(item: Labelled, program: DynasorCoT, calls: Sequence[tuple[Prompt, Generation]]) -> CoTTrace:
    """Chunks (sequential, so completion order is their order) and the probe after each, matched
    by the reasoning (text, or generated ids) its prompt carries."""
    carried = [(program.probe_reasoning(p), g) for p, g in calls]
    chunks = [g for reasoning, g in carried if reasoning is None and not g.aborted]
    texts: list[str] = []
    keys: list[str | tuple[int, ...]] = []
    text, ids = "", list[int]()
    for g in chunks:
        text += g.text
        ids += g.output_ids
        texts.append(text)
        keys.append(tuple(ids) if program.ids is not None else text)
    by_reasoning = {reasoning: g for reasoning, g in carried if reasoning is not None and not g.aborted}
    probes = [by_reasoning.get(k) for k in keys]
    return CoTTrace(item.id, item.gold, tuple(g.completion_tokens for g in chunks),
                    tuple(extract_answer(t) for t in texts),
                    tuple(Probe(extract_probe_answer(g.text), g.text, g.completion_tokens) if g else None
                          for g in probes), item.level, item.source)


def rebase_trace(item: Labelled, program: Rebase, result: ProgramResult,
                 snapshot: Mapping[str, int] | None) -> RebaseTrace:
    """Without a snapshot (the program never reached a detection step) the first search is all of it."""
    extra = result.extra
    total, judge = result.generated_tokens, int(extra.get("judge_tokens", 0))
    snap = snapshot or {"tokens": total, "judge_tokens": judge, "leaves": len(extra["answers"])}
    return RebaseTrace(item.id, item.gold, program.cap, program.detect_at, tuple(extra["answers"]),
                       tuple(float(r) for r in extra["rewards"]), snap["leaves"], snap["tokens"],
                       snap["judge_tokens"], total, judge, item.level, item.source)


async def record_cot(backend: Backend, items: Sequence[Labelled], chunk_tokens: int, budget: int,
                     sampling: Mapping[str, Any], probe: Mapping[str, Any],
                     concurrency: int) -> tuple[list[CoTTrace], float]:
    from dynasor.program_runtime.allocation import EvenAllocation
    from dynasor.program_runtime.runtime import ProgramRuntime

    tracer = RecordingBackend(backend)
    programs = [DynasorCoT(it.prompt, chunk_tokens=chunk_tokens, window=1, max_tokens=budget,
                           sampling_params=sampling, probe_params=probe) for it in items]
    _, wall = await ProgramRuntime(tracer, EvenAllocation(), concurrency).run_with_progress(programs, "record cot")
    return [cot_trace(it, p, tracer.calls.get(p.program_id, [])) for it, p in zip(items, programs)], wall


async def record_rebase(backend: Backend, reward: Any, items: Sequence[Labelled], width: int, detect_at: int,
                        step: Mapping[str, Any], max_depth: int, concurrency: int) -> tuple[list[RebaseTrace], float]:
    from dynasor.program_runtime.runtime import ProgramRuntime

    snapshot = DetectionSnapshot()
    programs = [Rebase(it.prompt, reward, width=width, detect_at=detect_at, sampling_params=step,
                       max_depth=max_depth) for it in items]
    runtime = ProgramRuntime(backend, snapshot, concurrency)
    results, wall = await runtime.run_with_progress(programs, f"record rebase w={width}")
    return [rebase_trace(it, p, r, snapshot.at.get(p.program_id)) for it, p, r in zip(items, programs, results)], wall


def live_sc_row(label: str, results: Sequence[ProgramResult], golds: Sequence[str], wall: float) -> dict[str, Any]:
    """A live SC run's totals: tokens include the partial tokens of branches aborted in the engine."""
    n = len(results)
    return {"policy": label, "mode": "live", "n": n,
            "accuracy": sum(is_correct(r.answer, g) for r, g in zip(results, golds)) / n,
            "tokens": sum(r.generated_tokens for r in results) / n,
            "stopped": sum(r.stopped_early for r in results) / n,
            "aborted_branches": sum(r.extra.get("aborted_branches", 0) for r in results), "wall_seconds": wall}
