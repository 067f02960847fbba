"""Everything Dynasor keeps in one scheduler process, owned by one object.

``DynasorScheduler.__init__`` builds a ``SchedulerContext`` from the process's config and
activates it; the hooks (queue order, sampling, eviction) reach it through ``current_context()``,
which is None in processes that run no Dynasor scheduler, so there the hooks leave SGLang alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dynasor.scheduler.ordering import StarvationGuard
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.rate import RateMeter
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.program_tracker import ProgramTracker
from dynasor.srt.queue_orderer import QueueOrderer

if TYPE_CHECKING:
    from dynasor.srt.metrics import ProgramMetrics


class SchedulerContext:
    """The program table and the state of every Dynasor mechanism in one scheduler process."""

    def __init__(self, config: DynasorServerConfig, table: ProgramTable | None = None) -> None:
        """``table``: an existing table to serve (benchmarks and tests); default a new one."""
        self.config = config
        self.table = table if table is not None else ProgramTable(
            ttl=config.program_ttl, max_done_programs=config.max_done_programs,
            confidence_window=config.confidence_window, key_secret=config.key_secret_bytes)
        self.rate = RateMeter()
        guard = StarvationGuard(config.starvation_factor, config.starvation_floor_s, config.starvation_cap_s)
        self.queue = QueueOrderer(self.table, config.queue_policy, guard, self.rate)
        self.tracker = ProgramTracker(self.table, self.rate)
        self.metrics: ProgramMetrics | None = None
        self.token_stats_topk = config.entropy_topk
        self.token_stats_enabled = True  # off under speculative decoding (no Sampler.forward per token)
        self.token_stats_rows: list[int] = []  # rows of the batch being sampled whose request asked
        self.program_eviction = config.eviction == "program"
        self.program_retraction = config.retraction == "program"

    def set_metrics(self, metrics: ProgramMetrics) -> None:
        self.metrics = self.tracker.metrics = self.queue.metrics = metrics


_current: SchedulerContext | None = None
# Checks a process must pass once SGLang has applied the hooks (the plugin leaves the hook self-check
# here; the scheduler and the launcher run them): kept here so the scheduler needs no hook table.
_startup_checks: list[Callable[[], None]] = []


def add_startup_check(check: Callable[[], None]) -> None:
    _startup_checks.append(check)


def run_startup_checks() -> None:
    """Run every check this process's plugin left; each raises if the process must not go on."""
    for check in _startup_checks:
        check()


def activate_context(context: SchedulerContext | None) -> None:
    global _current
    _current = context


def current_context() -> SchedulerContext | None:
    return _current
