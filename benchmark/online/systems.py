"""The compared systems: which server, which waiting-queue policy, which allocation policy.

Each system gets its own freshly started server in the same environment (stock SGLang through
``python -m sglang.launch_server`` with the same engine flags, Dynasor through
``dynasor.launch_server``), so the only differences are the scheduler and the allocation:

=====================  =======  ==================  ===================================
name                   server   queue policy        allocation
=====================  =======  ==================  ===================================
sglang-fcfs            stock    fcfs                even (every program runs to its cap)
sglang-lpm             stock    lpm                 even
sglang-priority        stock    fcfs + priority     even; each request sends ``priority`` = its program's
                                                    remaining work as the client knows it (SJF with
                                                    SGLang's preemption and priority retraction)
dynasor-fcfs           Dynasor  fcfs (SGLang's)     even   (control: Dynasor's hooks, stock order)
program-fifo           Dynasor  program-fifo        even   (Parrot-style application FIFO)
gang                   Dynasor  gang                even
gang+certaindex        Dynasor  gang                certaindex (StaticThreshold)
gang-sjf               Dynasor  gang-sjf            even
gang-sjf+certaindex    Dynasor  gang-sjf            certaindex: the full system
gang-sjf+certaindex    Dynasor  gang-sjf            certaindex, the branches beyond detection
+deferred                                           launched at once, tagged ``deferred``
gang-sjf+certaindex    Dynasor  gang-sjf            certaindex; placement left to SGLang: with
+sglang-dispatch                                    ``--dp-size`` > 1 every request goes to the rank
                                                    SGLang's load balancing picks
                                                    (``--dynasor-dp-placement sglang``), behind the
                                                    router (``--workers``) to the worker its default
                                                    policy (``cache_aware``) picks: the affinity ablation
=====================  =======  ==================  ===================================

Behind SGLang's router (``--workers N``) the other Dynasor systems run the router's ``manual``
policy on Dynasor's routing key (one worker per program, ``dynasor.core.routing``); stock systems
its default ``cache_aware`` policy.

Certaindex systems launch self-consistency branches in the order ``--sc-launch`` says (staged by
default) unless they name their own (``launch``).

Stock servers get untagged requests (``StockSGLangBackend``); Dynasor servers tagged ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dynasor.client import AsyncDynasorClient
    from dynasor.evaluation.server_group import ServerGroup
    from dynasor.evaluation.server_process import ServerProcess
    from dynasor.program_runtime.allocation import AllocationPolicy
    from dynasor.program_runtime.backends import Backend


@dataclass(frozen=True)
class System:
    name: str
    server: str  # "stock" | "dynasor"
    schedule_policy: str
    certaindex: bool
    label: str
    launch: str | None = None  # SelfConsistency launch order; None: the run's --sc-launch
    # "program": Dynasor keeps a program on one data-parallel rank / router worker; "sglang": SGLang's own
    # dispatch and the router's default policy decide per request
    placement: str = "program"
    client_priority: bool = False  # stock: SGLang's priority scheduling, each request's priority from its client

    @property
    def stock(self) -> bool:
        return self.server == "stock"

    def server_flags(self) -> list[str]:
        """The flags that differ between systems' servers: the policy, and Dynasor's placement."""
        flag = "--schedule-policy" if self.stock else "--dynasor-schedule-policy"
        placement = ["--dynasor-dp-placement", "sglang"] if self.placement == "sglang" and not self.stock else []
        return [flag, self.schedule_policy, *placement, *(PRIORITY_FLAGS if self.client_priority else [])]

    @property
    def router_policy(self) -> str:
        """The router's policy in front of this system's workers (``--workers``)."""
        return "manual" if self.placement == "program" and not self.stock else "cache_aware"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


SYSTEMS: dict[str, System] = {s.name: s for s in (
    System("sglang-fcfs", "stock", "fcfs", False, "SGLang fcfs"),
    System("sglang-lpm", "stock", "lpm", False, "SGLang lpm"),
    System("sglang-priority", "stock", "fcfs", False, "SGLang priority scheduling, client SJF", client_priority=True),
    System("dynasor-fcfs", "dynasor", "fcfs", False, "Dynasor server, SGLang's fcfs"),
    System("program-fifo", "dynasor", "program-fifo", False, "program-fifo"),
    System("gang", "dynasor", "gang", False, "gang"),
    System("gang+certaindex", "dynasor", "gang", True, "gang + certaindex"),
    System("gang-sjf", "dynasor", "gang-sjf", False, "gang-sjf"),
    System("gang-sjf+certaindex", "dynasor", "gang-sjf", True, "gang-sjf + certaindex (full)"),
    System("gang-sjf+certaindex+deferred", "dynasor", "gang-sjf", True, "gang-sjf + certaindex, deferred rest",
           launch="deferred"),
    System("gang-sjf+certaindex+sglang-dispatch", "dynasor", "gang-sjf", True,
           "gang-sjf + certaindex, SGLang's placement", placement="sglang"),
)}
BASELINES = ("sglang-fcfs", "sglang-lpm", "sglang-priority")
# What --systems all runs (gang-sjf without certaindex and the deferred launch are for the powered preset).
DEFAULT_SYSTEMS = ("sglang-fcfs", "sglang-lpm", "program-fifo", "gang", "gang+certaindex", "gang-sjf+certaindex")
POLICY_FLAGS = ("--schedule-policy", "--dynasor-schedule-policy")
# Stock SGLang's priority scheduling: lower value first, preemption past its threshold (10), priority retraction.
PRIORITY_FLAGS = ("--enable-priority-scheduling", "--schedule-low-priority-values-first",
                  "--retraction-policy", "priority")


def parse_systems(spec: str) -> list[System]:
    """Comma-separated names (``all`` for ``DEFAULT_SYSTEMS``), in the order given."""
    names = list(DEFAULT_SYSTEMS) if spec.strip() == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names:
        raise ValueError(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"systems listed twice: {names}")
    return [SYSTEMS[n] for n in names]


def server_argv(system: System, model_path: str | None, extra: Sequence[str]) -> list[str]:
    """Flags after the launcher: model (Dynasor only; stock gets it positionally), user flags, policy."""
    model = ["--model-path", model_path] if model_path and not system.stock else []
    return [*model, *extra, *system.server_flags()]


def make_server(system: System, port: int, log_path: Path, model_path: str | None,
                extra: Sequence[str], workers: int = 1) -> ServerProcess | ServerGroup:
    """The system's server; with ``workers`` > 1 that many behind SGLang's router (at ``port``)."""
    from dynasor.evaluation.ports import free_port
    from dynasor.evaluation.server_group import ServerGroup
    from dynasor.evaluation.server_process import ServerProcess

    argv = server_argv(system, model_path, extra)

    def one(port: int, log: Path) -> ServerProcess:
        if system.stock:
            from dynasor.model import default_model_path

            return ServerProcess.stock_sglang(model_path or str(default_model_path()), port, log, argv)
        return ServerProcess.dynasor(port, log, argv)

    if workers <= 1:
        return one(port, log_path)
    members = [one(free_port(), log_path.with_name(f"{log_path.stem}_worker{i}.log")) for i in range(workers)]
    router = ServerProcess.smg_router(port, log_path.with_name(f"{log_path.stem}_router.log"),
                                      [m.url for m in members], policy=system.router_policy)
    return ServerGroup(members, router)


def make_backend(system: System, client: AsyncDynasorClient) -> Backend:
    from dynasor.program_runtime.backends import DynasorBackend, StockSGLangBackend

    return StockSGLangBackend(client, system.client_priority) if system.stock else DynasorBackend(client)


def make_policy(system: System, threshold: float) -> AllocationPolicy:
    from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold

    return StaticThreshold(threshold) if system.certaindex else EvenAllocation()
