"""One simulated run: programs arrive at their times into one engine under one system."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dynasor.scheduler.ordering import QueuePolicy
from dynasor.sim.engine import SimEngine
from dynasor.sim.programs import ProgramRun, ScProgram
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.step_cost import StepCost


@dataclass(frozen=True)
class SystemSpec:
    """A serving system: SGLang's stock ``fcfs`` / ``lpm`` (untagged requests, plain LRU eviction)
    or a Dynasor policy (tagged requests, program-aware eviction unless turned off), with or
    without the certaindex stop, and how programs launch their branches."""

    name: str
    policy: QueuePolicy
    certaindex: bool = False
    launch: str = "together"
    program_eviction: bool = True

    @property
    def tagged(self) -> bool:
        return not self.policy.is_stock


SYSTEMS = {
    "sglang-fcfs": SystemSpec("sglang-fcfs", QueuePolicy.FCFS),
    "sglang-lpm": SystemSpec("sglang-lpm", QueuePolicy.LPM),
    "gang": SystemSpec("gang", QueuePolicy.GANG),
    "gang-sjf": SystemSpec("gang-sjf", QueuePolicy.GANG_SJF),
    "gang-sjf+certaindex": SystemSpec("gang-sjf+certaindex", QueuePolicy.GANG_SJF, certaindex=True),
}


@dataclass
class RunResult:
    runs: list[ProgramRun]
    simulated_seconds: float
    busy_seconds: float
    retractions: int
    steps: int


def run(programs: Sequence[ScProgram], system: SystemSpec, cost: StepCost, limits: EngineLimits,
        on_step: Callable[[SimEngine], None] | None = None) -> RunResult:
    engine = SimEngine(cost, limits, system.policy, program_eviction=system.program_eviction)
    runs = {p.program_id: ProgramRun(p, system.certaindex, system.launch, system.tagged) for p in programs}

    def ended(req: SimRequest) -> None:
        runs[req.source or ""].on_request_end(req, engine)

    engine.on_finish = ended
    arrivals = [(p.arrival, p.program_id) for p in programs]
    heapq.heapify(arrivals)
    steps = 0
    while arrivals or not engine.idle:
        while arrivals and arrivals[0][0] <= engine.now:
            runs[heapq.heappop(arrivals)[1]].start(engine)
        if engine.idle:
            if not arrivals:
                break
            engine.now = arrivals[0][0]
            continue
        engine.step()
        steps += 1
        if on_step is not None:
            on_step(engine)
    return RunResult(list(runs.values()), engine.now, engine.busy_seconds, engine.retractions, steps)
