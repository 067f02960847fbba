"""One simulated run: programs arrive at their times into one engine under one system."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dynasor.scheduler.ordering import QueuePolicy, StarvationGuard
from dynasor.sim.background import BACKGROUND, TraceRequest, background_request
from dynasor.sim.capacity import CapacityMeter
from dynasor.sim.cluster import SimCluster
from dynasor.sim.dispatch import DISPATCHES
from dynasor.sim.engine import SimEngine
from dynasor.sim.priority import PriorityScheduling
from dynasor.sim.programs import ScProgram, SimulatedProgram
from dynasor.sim.request import EngineLimits, SimRequest
from dynasor.sim.step_cost import StepCost


@dataclass(frozen=True)
class SystemSpec:
    """A serving system: SGLang's stock ``fcfs`` / ``lpm`` (untagged requests, plain LRU eviction,
    round-robin data parallelism) or a Dynasor policy (tagged requests, program-aware eviction
    unless turned off, program placement unless another dispatch is named), with or without the
    certaindex stop, and how programs launch their branches. ``client_priority``: stock SGLang
    with its priority scheduling on (``sim.priority``), each request sent with the priority its
    client can know: the program's unfinished branches × their token budget, lower first."""

    name: str
    policy: QueuePolicy
    certaindex: bool = False
    launch: str = "together"
    program_eviction: bool = True
    guard: StarvationGuard = StarvationGuard()
    dispatch: str = "program"  # across engines (dynasor.sim.dispatch); untagged requests go round robin
    client_priority: bool = False
    routing_key: bool = False  # stock SGLang's routing-key policy, the program id as the key
    kv_admission: bool = False  # gang admission against KV (dynasor.scheduler.kv_gang)
    program_retraction: bool = False  # when decode runs out of KV, the program with the most work left gives way

    @property
    def tagged(self) -> bool:
        return not self.policy.is_stock

    def describe(self) -> dict[str, object]:
        guarded = self.policy.by_remaining_work and self.guard.cap_s != float("inf")
        return {"policy": self.policy.value, "tagged": self.tagged, "certaindex": self.certaindex,
                "launch": self.launch, "program_aware_eviction": self.program_eviction and self.tagged,
                "starvation_guard": self.guard.__dict__ if guarded else None,
                "dispatch": self.dispatch if self.tagged else "round_robin", "client_priority": self.client_priority,
                "routing_key": self.routing_key, "kv_admission": self.kv_admission,
                "program_retraction": self.program_retraction}


SYSTEMS = {
    "sglang-fcfs": SystemSpec("sglang-fcfs", QueuePolicy.FCFS, dispatch="round_robin"),
    "sglang-lpm": SystemSpec("sglang-lpm", QueuePolicy.LPM, dispatch="round_robin"),
    "sglang-priority": SystemSpec("sglang-priority", QueuePolicy.FCFS, dispatch="round_robin", client_priority=True),
    "sglang-routing-key": SystemSpec("sglang-routing-key", QueuePolicy.FCFS, dispatch="round_robin", routing_key=True),
    "gang": SystemSpec("gang", QueuePolicy.GANG),
    "gang-sjf": SystemSpec("gang-sjf", QueuePolicy.GANG_SJF),
    # certaindex programs launch staged (the paper's intra-program scheduler, the online benchmark's default)
    "gang-sjf+certaindex": SystemSpec("gang-sjf+certaindex", QueuePolicy.GANG_SJF, certaindex=True, launch="staged"),
    # every branch sent at once, those past detection deferred: idle capacity runs them early
    "gang-sjf+certaindex/deferred": SystemSpec("gang-sjf+certaindex/deferred", QueuePolicy.GANG_SJF,
                                               certaindex=True, launch="deferred"),
}
FULL_SYSTEM = "gang-sjf+certaindex"
NO_GUARD = StarvationGuard(floor_s=float("inf"), cap_s=float("inf"))
# The full system with one mechanism taken out (the ablation rows of a GPU-scale study).
ABLATIONS = {
    "gang": SystemSpec("sjf+certaindex", QueuePolicy.SJF, certaindex=True, launch="staged"),
    "SJF": SystemSpec("gang+certaindex", QueuePolicy.GANG, certaindex=True, launch="staged"),
    "starvation guard": SystemSpec("gang-sjf+certaindex/no-guard", QueuePolicy.GANG_SJF, certaindex=True,
                                   launch="staged", guard=NO_GUARD),
    "certaindex": SYSTEMS["gang-sjf"],
    "program-aware eviction": SystemSpec("gang-sjf+certaindex/lru", QueuePolicy.GANG_SJF, certaindex=True,
                                         launch="staged", program_eviction=False),
}
# The full system with SGLang's own data-parallel dispatch instead of program placement (N engines).
DISPATCH_VARIANTS = {
    name: SystemSpec(f"{FULL_SYSTEM}/{name.replace('_', '-')}", QueuePolicy.GANG_SJF, certaindex=True,
                     launch="staged", dispatch=name)
    for name in ("round_robin", "total_requests")
}
# The long-reasoning regime: gang admission against KV and program retraction (dynasor.scheduler.kv_gang).


def with_kv(name: str, policy: QueuePolicy, launch: str, certaindex: bool = True, admission: bool = True,
            retraction: bool = True) -> SystemSpec:
    return SystemSpec(name, policy, certaindex=certaindex, launch=launch, kv_admission=admission,
                      program_retraction=retraction)


KV_SYSTEMS = {
    spec.name: spec for spec in (
        with_kv("gang-sjf/kv", QueuePolicy.GANG_SJF, "together", certaindex=False),
        with_kv("gang-sjf+certaindex/kv", QueuePolicy.GANG_SJF, "staged"),
        with_kv("gang-sjf+certaindex/together", QueuePolicy.GANG_SJF, "together", admission=False, retraction=False),
        with_kv("gang-sjf+certaindex/together+kv", QueuePolicy.GANG_SJF, "together"),
        with_kv("gang-sjf+certaindex/deferred+kv", QueuePolicy.GANG_SJF, "deferred"),
    )
}
KV_FULL_SYSTEM = "gang-sjf+certaindex/deferred+kv"
# That system with one mechanism taken out.
KV_ABLATIONS = {
    "gang admission against KV": with_kv("gang-sjf+certaindex/deferred+program-retraction", QueuePolicy.GANG_SJF,
                                         "deferred", admission=False),
    "program retraction": with_kv("gang-sjf+certaindex/deferred+kv-admission", QueuePolicy.GANG_SJF, "deferred",
                                  retraction=False),
    "gang": with_kv("sjf+certaindex/deferred+kv", QueuePolicy.SJF, "deferred"),
    "SJF": with_kv("gang+certaindex/deferred+kv", QueuePolicy.GANG, "deferred"),
    "certaindex": KV_SYSTEMS["gang-sjf/kv"],
}
ALL_SYSTEMS = {**SYSTEMS, **KV_SYSTEMS, **{spec.name: spec for spec in (*ABLATIONS.values(), *KV_ABLATIONS.values(),
                                                                       *DISPATCH_VARIANTS.values())}}


@dataclass
class RunResult:
    runs: list[SimulatedProgram]
    simulated_seconds: float
    busy_seconds: float
    retractions: int
    steps: int
    background_latencies: list[float] = field(default_factory=list)  # arrival to end, background requests
    engines: int = 1
    served_by: dict[str, int] = field(default_factory=dict)  # request id -> its engine
    input_tokens: int = 0  # admitted input, all engines
    cached_tokens: int = 0  # of which found in a prefix cache
    prefill_tokens: int = 0  # computed by prefill iterations
    preemptions: int = 0  # running requests that gave their place to a more important one
    capacity: CapacityMeter = field(default_factory=CapacityMeter)  # all engines
    recomputed_tokens: int = 0  # KV thrown away by retractions and preemptions, all engines

    @property
    def placed(self) -> list[int]:
        """Requests each engine received."""
        counts = [0] * self.engines
        for engine in self.served_by.values():
            counts[engine] += 1
        return counts

    @property
    def cache_hit_rate(self) -> float:
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0


@dataclass(frozen=True)
class Transport:
    """What happens outside the engine loop, measured on the live server (``profile_cpu``): a
    request reaches the scheduler ``arrival_s`` after its program sends it (HTTP, tokenizer), and
    requests sent at the same moment arrive ``spacing_s`` apart (the tokenizer takes them one by
    one, so an idle engine starts on the first alone); the client hears a request end
    ``return_s`` after it ended. Zero by default (the GPU studies)."""

    arrival_s: float = 0.0
    spacing_s: float = 0.0
    return_s: float = 0.0


def run(programs: Sequence[ScProgram], system: SystemSpec, cost: StepCost, limits: EngineLimits,
        on_step: Callable[[SimEngine], None] | None = None, transport: Transport = Transport(),
        background: Sequence[TraceRequest] = (), engines: int = 1) -> RunResult:
    """Play ``programs`` (and untagged ``background`` requests at their trace times) to the end, on
    ``engines`` engines placed by the system's dispatch (``dynasor.sim.dispatch``).

    Conservative discrete events: the engine with the earliest clock runs its next iteration
    unless an event is due no later than that clock; an event is handled once every busy engine
    has reached its time."""
    priority = PriorityScheduling() if system.client_priority else None
    cluster = SimCluster([SimEngine(cost, limits, system.policy, program_eviction=system.program_eviction,
                                    guard=system.guard, priority=priority, routing_key=system.routing_key,
                                    kv_admission=system.kv_admission, program_retraction=system.program_retraction)
                          for _ in range(engines)],
                         DISPATCHES[system.dispatch](engines))
    events: list[tuple[float, int, str, object]] = []  # (time, order, kind, what)
    order = itertools.count()
    burst = {"at": -1.0, "n": 0}

    def submit(req: SimRequest) -> None:
        now = cluster.now
        burst["n"] = burst["n"] + 1 if burst["at"] == now else 0
        burst["at"] = now
        heapq.heappush(events, (now + transport.arrival_s + burst["n"] * transport.spacing_s, next(order),
                                "submit", req))

    runs = {p.program_id: SimulatedProgram(p, system.certaindex, system.launch, system.tagged, submit,
                                           client_priority=system.client_priority)
            for p in programs}
    for engine in cluster.engines:
        engine.on_finish = lambda req, engine=engine: heapq.heappush(  # type: ignore[misc]
            events, (engine.now + transport.return_s, next(order), "heard", req))
    for p in programs:
        heapq.heappush(events, (p.arrival, next(order), "program", runs[p.program_id]))
    sent_at: dict[str, float] = {}  # background request -> its trace arrival
    for i, row in enumerate(background):
        req = background_request(i, row)
        sent_at[req.rid] = row.arrival
        heapq.heappush(events, (row.arrival, next(order), "submit", req))
    background_latencies: list[float] = []
    steps = 0
    while True:
        busy = cluster.busy
        first = min(busy, key=lambda e: e.now) if busy else None
        if events and (first is None or events[0][0] <= first.now):
            at, _, kind, what = heapq.heappop(events)
            cluster.now = at
            if kind == "submit":  # reaches the server; a busy engine takes it between iterations
                assert isinstance(what, SimRequest)
                if not what.done:  # a request aborted in transit never arrives
                    cluster.submit(what)
            elif kind == "program":
                assert isinstance(what, SimulatedProgram)
                what.start(cluster)
            else:
                assert isinstance(what, SimRequest)
                if what.source == BACKGROUND:
                    background_latencies.append(at - sent_at[what.rid])
                else:
                    runs[what.source or ""].on_request_end(what, cluster, at)
            continue
        if first is None:
            break
        if len(busy) == 1 and on_step is None:  # quiet decode steps up to the next event in one call
            first.step(until=events[0][0] if events else math.inf)
        else:
            first.step()
        steps += 1
        if on_step is not None:
            on_step(first)
    end = max([e.now for e in cluster.engines] + [r.finished_at or 0.0 for r in runs.values()])
    return RunResult(list(runs.values()), end, sum(e.busy_seconds for e in cluster.engines),
                     sum(e.retractions for e in cluster.engines), steps, background_latencies,
                     engines=engines, served_by=cluster.served_by,
                     input_tokens=sum(e.admitted_input_tokens for e in cluster.engines),
                     cached_tokens=sum(e.cached_input_tokens for e in cluster.engines),
                     prefill_tokens=sum(e.prefill_tokens for e in cluster.engines),
                     preemptions=sum(e.preemptions for e in cluster.engines),
                     capacity=CapacityMeter.total(e.capacity for e in cluster.engines),
                     recomputed_tokens=sum(e.recomputed_tokens for e in cluster.engines))
