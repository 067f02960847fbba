"""Open-loop load generator: SelfConsistency programs launched at their Poisson arrival times.

Open loop (no client-side concurrency limit, a 1024-connection HTTP pool) so that overload shows
up as queueing in the server, where the compared schedulers act. A window ends at ``duration``
for arrivals; it is then drained and cut by ``should_cut``: as soon as nothing is left, or every
unfinished program is past its deadline at the largest SLO scale (waiting longer tells nothing),
or ``drain_max`` seconds have passed *and* every unfinished program is past its deadline at the
primary SLO scale (so the primary attainment is exact). Programs still running at the cut are
aborted in the engine (their records are censored) before the next window starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmark.online.metrics import ProgramRecord
from benchmark.online.systems import System, make_backend, make_policy
from benchmark.online.workload import Workload
from dynasor.certaindex import is_correct
from dynasor.core.generation import Generation
from dynasor.datasets.arithmetic import make_prompt
from dynasor.datasets.loaders import Problem

if TYPE_CHECKING:
    from dynasor.programs import SelfConsistency
    from dynasor.programs.base import ProgramResult

CLIENT_CONNECTIONS = 1024
ABORT_GRACE_S = 30.0
POLL_S = 0.25


@dataclass(frozen=True)
class ScProgramSpec:
    """Every program of a run: SelfConsistency with ``cap`` branches and detection at ``detect_at``
    (even-allocation systems reach it too, but their policy always continues). ``launch``: the
    launch order of systems with certaindex that name none of their own (``SelfConsistency``'s
    ``staged``, the paper's intra-program scheduler, by default); even systems have no decision to
    wait for and always launch every branch at once."""

    cap: int
    detect_at: int
    threshold: float
    sampling_params: Mapping[str, Any]
    launch: str = "staged"

    def program(self, system: System, problem: Problem) -> SelfConsistency:
        from dynasor.programs import SelfConsistency

        return SelfConsistency(make_prompt(problem), cap=self.cap, detect_at=self.detect_at,
                               sampling_params=self.sampling_params, launch=self.launch_of(system))

    def launch_of(self, system: System) -> str:
        if not system.certaindex:
            return "together"
        return system.launch or self.launch


@dataclass(frozen=True)
class WindowLimits:
    must_wait: Sequence[float]  # per arrival: deadline at the primary SLO scale (seconds of age)
    give_up: Sequence[float]    # per arrival: deadline at the largest SLO scale
    drain_max: float            # seconds after the window end


def should_cut(elapsed: float, duration: float, ages: Mapping[int, float], limits: WindowLimits) -> bool:
    """``ages``: arrival index → seconds since its scheduled arrival, for unfinished programs
    (negative for programs not yet arrived)."""
    if not ages:
        return True
    if elapsed < duration:
        return False
    if all(age >= limits.give_up[i] for i, age in ages.items()):
        return True
    return elapsed >= duration + limits.drain_max and all(age >= limits.must_wait[i] for i, age in ages.items())


def _outcome(task: asyncio.Task[ProgramResult]) -> tuple[ProgramResult | None, str | None]:
    if task.cancelled():
        return None, None
    error = task.exception()
    return (None, repr(error)) if error is not None else (task.result(), None)


def request_rows(generations: Sequence[Generation]) -> list[list[int]]:
    """What the simulator replays of a program's requests (``benchmark.sim.validate``), and the prompt
    tokens the engine found cached."""
    return [[int(g.meta_info.get("prompt_tokens", 0)), g.completion_tokens, int(g.aborted),
             int(g.meta_info.get("cached_tokens") or 0)] for g in generations]


def request_times(generations: Sequence[Generation], sent_and_answered: Sequence[tuple[float, float]],
                  start: float) -> list[list[float | None]]:
    """Per request, seconds from ``start`` (wall clock): [sent, received, admitted, first token,
    finished]. Sent is the client's clock; received (``request_received_ts``), admission
    (``forward_entry_time``: first scheduled into a batch) and first token (received +
    ``first_token_latency``) are the server's, stock SGLang's and Dynasor's alike; finished is the
    server's ``request_finished_ts``, else the answer's arrival at the client."""

    def since(value: Any) -> float | None:
        return round(float(value) - start, 4) if isinstance(value, (int, float)) and value > 0 else None

    rows = []
    for generation, (sent, answered) in zip(generations, sent_and_answered):
        meta = generation.meta_info
        received, first = meta.get("request_received_ts"), meta.get("first_token_latency")
        first_token = received + first if isinstance(received, (int, float)) and isinstance(first, (int, float)) \
            else None
        rows.append([since(sent), since(received), since(meta.get("forward_entry_time")), since(first_token),
                     since(meta.get("request_finished_ts") or answered)])
    return rows


def _record(index: int, problem: Problem, arrival: float, latency: float | None, censored_at: float | None,
            result: ProgramResult | None, error: str | None,
            requests: list[list[int]] | None = None, times: list[list[float | None]] | None = None,
            rids: list[str | None] | None = None) -> ProgramRecord:
    done = result is not None and latency is not None
    answer = result.answer if result is not None and done else None
    return ProgramRecord(
        index, problem.id, problem.level or 0, arrival, latency, censored_at,
        tokens=result.generated_tokens if result is not None else None,
        correct=is_correct(answer, problem.answer) if done else None,
        stopped_early=bool(result and result.stopped_early), answer=answer,
        certaindex_at_detection=result.extra.get("certaindex_at_detection") if result is not None else None,
        error=error, requests=requests, request_times=times, request_ids=rids)


async def run_window(url: str, system: System, workload: Workload, shape: ScProgramSpec, limits: WindowLimits,
                     desc: str, router: bool = False) -> tuple[list[ProgramRecord], float]:
    """Run one rate window against a running server (``router``: SGLang's router in front of
    several); (records in arrival order, wall seconds)."""
    from tqdm import tqdm

    from dynasor.client import AsyncDynasorClient
    from dynasor.program_runtime.backends import RecordingBackend
    from dynasor.program_runtime.runtime import ProgramRuntime

    loop = asyncio.get_running_loop()
    arrivals = workload.arrivals
    async with AsyncDynasorClient(url, max_connections=CLIENT_CONNECTIONS, router=router) as client:
        recorder = RecordingBackend(make_backend(system, client))
        runtime = ProgramRuntime(recorder, make_policy(system, shape.threshold),
                                 max_concurrent_programs=max(1, len(arrivals)))
        programs: dict[int, SelfConsistency] = {}
        finished_at: dict[int, float] = {}
        t0, t0_wall = loop.time(), time.time()

        async def one(index: int, at: float, problem: Problem) -> ProgramResult:
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            program = shape.program(system, problem)
            programs[index] = program
            result = await runtime.run_one(program)
            finished_at[index] = loop.time()
            return result

        tasks = {a.index: asyncio.create_task(one(a.index, a.time, a.problem)) for a in arrivals}
        with tqdm(total=len(tasks), desc=desc, unit="program", leave=False) as bar:
            while True:
                pending = [t for t in tasks.values() if not t.done()]
                if pending:
                    await asyncio.wait(pending, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED)
                bar.update(sum(t.done() for t in tasks.values()) - bar.n)
                now = loop.time()
                ages = {i: now - t0 - arrivals[i].time for i, t in tasks.items() if not t.done()}
                bar.set_postfix(in_flight=sum(age >= 0 for age in ages.values()))
                if should_cut(now - t0, workload.duration, ages, limits):
                    break
        cut = loop.time()
        unfinished = [i for i, t in tasks.items() if not t.done()]
        await asyncio.gather(*(runtime.stop(programs[i]) for i in unfinished if i in programs),
                             return_exceptions=True)
        if unfinished:
            await asyncio.wait([tasks[i] for i in unfinished], timeout=ABORT_GRACE_S)
        for i in unfinished:
            tasks[i].cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        wall = loop.time() - t0

    records = []
    for a in arrivals:
        result, error = _outcome(tasks[a.index])
        scheduled = t0 + a.time
        program = programs.get(a.index)
        requests = times = rids = None
        if program is not None:
            generations = recorder.generations(program.program_id)
            requests = request_rows(generations)
            times = request_times(generations, recorder.sent_and_answered(program.program_id), t0_wall)
            rids = [g.meta_info.get("id") for g in generations]
        if a.index in unfinished:
            records.append(_record(a.index, a.problem, a.time, None, cut - scheduled, result, None, requests, times,
                                   rids))
        else:
            latency = finished_at[a.index] - scheduled if error is None else None
            records.append(_record(a.index, a.problem, a.time, latency, None, result, error, requests, times, rids))
    return records, wall


async def solo_latencies(url: str, system: System, problems: Mapping[int, Sequence[Problem]],
                         shape: ScProgramSpec, router: bool = False) -> dict[int, list[float]]:
    """Oracle: each problem run alone (one program at a time), seconds from submit to result."""
    from tqdm import tqdm

    from dynasor.client import AsyncDynasorClient
    from dynasor.program_runtime.runtime import ProgramRuntime

    loop = asyncio.get_running_loop()
    out: dict[int, list[float]] = {}
    async with AsyncDynasorClient(url, router=router) as client:
        runtime = ProgramRuntime(make_backend(system, client), make_policy(system, shape.threshold), 1)
        with tqdm(total=sum(len(ps) for ps in problems.values()), desc="oracle (solo runs)", unit="program",
                  leave=False) as bar:
            for level, level_problems in sorted(problems.items()):
                for problem in level_problems:
                    program = shape.program(system, problem)
                    started = loop.time()
                    await runtime.run_one(program)
                    out.setdefault(level, []).append(loop.time() - started)
                    bar.update()
    return out


async def warmup(url: str, prompts: Sequence[str], max_new_tokens: int = 4) -> None:
    """A few short untagged requests: first-batch costs and the shared 3-shot prefixes of every
    level land in the radix cache before anything is measured, on every server alike."""
    from dynasor.client import AsyncDynasorClient

    async with AsyncDynasorClient(url) as client:
        for prompt in prompts:
            await client.generate(prompt, {"max_new_tokens": max_new_tokens, "temperature": 0.0})
