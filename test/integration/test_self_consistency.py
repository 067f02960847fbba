"""SelfConsistency on the live server: certaindex stops some programs at the detection step (their
remaining branches are aborted in the engine) and lets others run to the cap.

One-step problems from a seeded generator with a 3-shot prompt. So that the test checks the
mechanism and not the small model's luck, the trivial problems are sampled at temperature 0.1
(their five detection samples agree) and the four-digit ones at 1.5 (they scatter)."""

import asyncio
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from dynasor.client import AsyncDynasorClient, DynasorHTTPError
from dynasor.core.stats import quantile
from dynasor.core.tag import LOW_CONFIDENCE
from dynasor.program_runtime.allocation import StaticThreshold
from dynasor.program_runtime.backends import DynasorBackend, RecordingBackend
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs import SelfConsistency
from dynasor.programs.deepconf import DeepConf
from dynasor.scheduler.token_stats_aggregate import first_window_below

from .conftest import MAX_RUNNING

THREE_SHOT = (
    "Q: What is 2 + 3?\nA: 2 + 3 = 5. The answer is \\boxed{5}.\n\n"
    "Q: What is 7 - 4?\nA: 7 - 4 = 3. The answer is \\boxed{3}.\n\n"
    "Q: What is 6 + 1?\nA: 6 + 1 = 7. The answer is \\boxed{7}.\n\n"
)


@contextmanager
def watching(url: str, program_ids: list[str], every_s: float = 0.25) -> Iterator[dict[str, dict]]:
    """The latest engine summary of each program, polled from a thread of its own. A program's
    summary is read once its run returns, but the runtime computes certaindex on the event loop
    (math-verify may spend a second per pathological answer a hot branch wrote), so that read can
    come after the finished program left the table (the test server keeps it 10 s): the poller,
    which the event loop cannot stall, still holds its last summary."""
    latest: dict[str, dict] = {}
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not done.is_set():
                for pid in program_ids:
                    reply = http.get(f"/dynasor/programs/{pid}")
                    if reply.status_code == 200:
                        latest[pid] = reply.json()
                done.wait(every_s)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield latest
    finally:
        done.set()
        thread.join(timeout=15)


async def finished_summary(client: AsyncDynasorClient, pid: str, latest: dict[str, dict]) -> dict:
    """The program's summary now, or the poller's last one if it already left the table."""
    try:
        return await client.program(pid)
    except DynasorHTTPError as err:
        if err.status != 404 or pid not in latest:
            raise
        return latest[pid]


def one_step_problems(n: int, seed: int) -> list[tuple[str, int]]:
    """Half trivial (single digit), half hard (four digits), as (question, answer)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        digits = 1 if i % 2 == 0 else 4
        a, b = rng.randrange(10**digits // 10 or 1, 10**digits), rng.randrange(10**digits // 10 or 1, 10**digits)
        out.append((f"Q: What is {a} + {b}?\nA:", a + b))
    return out


async def test_self_consistency_stops_easy_programs_and_runs_hard_ones_to_the_cap(url):
    # cap > the server's running slots: a program stopped at detect_at still has queued branches
    cap, detect_at = MAX_RUNNING + 8, 5
    problems = one_step_problems(6, seed=7)
    programs = [
        SelfConsistency(THREE_SHOT + question, cap=cap, detect_at=detect_at, sampling_params={
            "max_new_tokens": 24, "stop": ["\n"],
            # easy problems at low temperature agree; hard ones at high temperature scatter
            "temperature": 0.1 if i % 2 == 0 else 1.5,
        })
        for i, (question, _) in enumerate(problems)
    ]
    async with AsyncDynasorClient(url) as client:
        runtime = ProgramRuntime(DynasorBackend(client), StaticThreshold(0.7))
        with watching(url, [p.program_id for p in programs]) as latest:

            async def run_and_read(program):
                return await runtime.run_one(program), await finished_summary(client, program.program_id, latest)

            pairs = await asyncio.gather(*[run_and_read(p) for p in programs])
        results, engine = [r for r, _ in pairs], [s for _, s in pairs]
    correct = sum(r.answer == str(answer) for r, (_, answer) in zip(results, problems))
    stopped = [r for r in results if r.stopped_early]
    print(f"\n[sc] {len(stopped)}/{len(results)} stopped at {detect_at}, {correct}/{len(results)} correct, "
          f"tokens {sum(r.generated_tokens for r in results)}, certaindex {[round(r.certaindex, 2) for r in results]}")
    assert all(r.answer is not None for r in results)
    assert stopped and len(stopped) < len(results)
    for result, summary in zip(results, engine):
        if result.stopped_early:
            assert result.extra["certaindex_at_detection"] >= 0.7
            # branches still waiting or running when the program stopped were aborted in the engine
            assert summary["requests"]["aborted"] == result.extra["aborted_branches"]
            assert result.knob_used + result.extra["aborted_branches"] == cap
        else:
            assert result.knob_used == cap and summary["requests"]["finished"] == cap
    assert sum(r.extra["aborted_branches"] for r in stopped) > 0


async def easy_and_hard(url, launch, cap=8, detect_at=3):
    """An easy program (temperature 0.1: its samples agree, certaindex stops it) and a hard one (1.5: they
    scatter, it goes on) under ``launch``; each program's result and the engine's view of it."""
    (easy, _), (hard, _) = one_step_problems(2, seed=11)
    programs = [SelfConsistency(THREE_SHOT + question, cap=cap, detect_at=detect_at, launch=launch,
                                sampling_params={"max_new_tokens": 24, "stop": ["\n"], "temperature": temperature})
                for question, temperature in ((easy, 0.1), (hard, 1.5))]
    async with AsyncDynasorClient(url) as client:
        runtime = ProgramRuntime(DynasorBackend(client), StaticThreshold(0.7))
        with watching(url, [p.program_id for p in programs]) as latest:

            async def run_and_read(program):
                return await runtime.run_one(program), await finished_summary(client, program.program_id, latest)

            (stop, stop_engine), (go, go_engine) = await asyncio.gather(*[run_and_read(p) for p in programs])
    print(f"\n[sc {launch}] easy: stopped {stop.stopped_early}, engine {stop_engine['requests']}; "
          f"hard: certaindex@{detect_at} {go.extra['certaindex_at_detection']}, engine {go_engine['requests']}")
    return (stop, stop_engine), (go, go_engine)


async def test_staged_launch_sends_the_rest_only_when_the_program_goes_on(url):
    """launch="staged": the engine sees detect_at requests of a program that stops, cap of one that goes on."""
    cap, detect_at = 8, 3
    (stop, stop_engine), (go, go_engine) = await easy_and_hard(url, "staged", cap, detect_at)
    assert stop.stopped_early and stop.knob_used == detect_at and stop.extra["aborted_branches"] == 0
    assert stop_engine["requests"]["total"] == detect_at and stop_engine["requests"]["aborted"] == 0
    assert not go.stopped_early and go.knob_used == cap
    assert go_engine["requests"]["total"] == go_engine["requests"]["finished"] == cap


async def test_deferred_launch_sends_every_branch_and_a_stop_ends_the_deferred_ones(url):
    """launch="deferred": the engine sees all cap requests of both programs at once; the one that stops
    leaves none running (its deferred branches finished or were aborted), the one that goes on
    finishes every branch without a second round."""
    cap = 8
    (stop, stop_engine), (go, go_engine) = await easy_and_hard(url, "deferred", cap)
    assert stop.stopped_early and stop_engine["requests"]["total"] == cap
    assert stop_engine["requests"]["running"] == stop_engine["requests"]["waiting"] == 0
    assert stop_engine["requests"]["aborted"] == stop.extra["aborted_branches"]
    assert not go.stopped_early and go.knob_used == cap
    assert go_engine["requests"]["total"] == go_engine["requests"]["finished"] == cap


async def test_deepconf_online_warmup_sets_the_threshold_and_the_engine_stops_less_confident_branches(url):
    """DeepConf-online on a hard problem at temperature 1.5 (confidence varies from sample to sample):
    the warm-up branches run to the end and set the threshold (their 0.95 quantile, near their
    maximum); every later branch carries it, and the engine ends those whose window confidence falls
    below it with finish reason abort "low_confidence". With 17 later branches exchangeable with the 3
    warm-up ones, the chance that none falls below is about 1 in C(20, 3) = 1140 (with 9: 1 in 220,
    which CI met once)."""
    cap, warmup = 20, 3
    conf = DeepConf("online", eta=0.05, warmup=warmup, window=8)
    (_, _), (hard, _) = one_step_problems(2, seed=11)
    program = SelfConsistency(THREE_SHOT + hard, cap=cap, detect_at=cap, confidence=conf,
                              sampling_params={"max_new_tokens": 24, "temperature": 1.5, "ignore_eos": True})
    async with AsyncDynasorClient(url) as client:
        backend = RecordingBackend(DynasorBackend(client))
        result = await ProgramRuntime(backend, StaticThreshold(0.7)).run_one(program)
        engine = await client.program(program.program_id)
    generations = [g for _, g in backend.calls[program.program_id]]
    confidences, threshold = result.extra["confidences"], result.extra["confidence_threshold"]
    print(f"\n[deepconf online] threshold {threshold:.4f} from {[round(c, 4) for c in confidences[:warmup]]}; "
          f"{result.extra['low_confidence_stops']} of {cap - warmup} later branches stopped, engine {engine['requests']}")
    assert threshold == pytest.approx(quantile(confidences[:warmup], 0.95))
    stopped = [g for g in generations if g.aborted]
    assert result.extra["low_confidence_stops"] == len(stopped) == engine["low_confidence_stops"] >= 1
    # a branch that crossed on its 23rd token ends at its 24th, the last (CI met it): still a stop
    assert all(g.meta_info["finish_reason"]["message"] == LOW_CONFIDENCE and g.completion_tokens <= 24
               for g in stopped)
    # the engine ends a branch one token after the one whose window crossed (what the batch replay charges)
    crossings = [first_window_below(g.meta_info["topk_confidence"], 8, threshold) for g in stopped]
    assert [c + 1 if c is not None else None for c in crossings] == [g.completion_tokens for g in stopped]
    assert engine["requests"]["total"] == cap and engine["requests"]["aborted"] == len(stopped)
    assert result.knob_used + len(stopped) == cap
    # a later branch that ran to the end had no window below the threshold early enough to be stopped:
    # a crossing on token 23 or 24 leaves no token before the length limit ends it anyway
    finished_later = [g for g in generations[warmup:] if not g.aborted]
    late = [first_window_below(g.meta_info["topk_confidence"], 8, threshold) for g in finished_later]
    assert all(c is None or c + 1 >= 24 for c in late), late
    assert result.answer == conf.vote(result.extra["answers"], confidences)
