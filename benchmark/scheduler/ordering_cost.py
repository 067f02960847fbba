"""Waiting-queue ordering cost per scheduling step: SGLang's own policies and Dynasor's hook, one process.

The queue holds real SGLang ``Req`` objects (programs share a 64-token prompt, each request adds 8
tokens of its own); SGLang's ``SchedulePolicy`` runs over a radix cache holding half the program
prompts. Dynasor's step is its hook as the server runs it: SGLang's ``lpm`` pass with the plugin's
prefix-match and sort hooks in place, then ``QueueOrderer.reorder``.

Columns (milliseconds per step, median):

- ``sglang_fcfs_ms`` / ``sglang_lpm_ms``: SGLang's ``calc_priority`` on the same queue. Beyond 128
  waiting requests SGLang's ``lpm`` itself falls back to fcfs (``WAITING_QUEUE_PREFIX_MATCH_MAX``).
- ``dynasor_full_rerank_ms``: a queue Dynasor has never seen (freshly shuffled): a rank from scratch.
- ``dynasor_steady_ms`` (and ``_p90``): steady state. Every step ``--admit`` requests are admitted
  from the front of the ordered queue (SGLang's admission order) and enter service, the same
  number arrive for random programs, every running request makes one token of progress and the
  ``--admit`` longest-running ones finish, so the queue length stays put (after ``WARMUP_STEPS``
  untimed steps, in which the table's output-length prior settles); what SGLang and the
  program table do for those events is outside the timed region, only the ordering step is timed.
  ``sglang_lpm_steady_ms`` is SGLang's ``lpm`` on the same steady-state queues.
  ``dynasor_over_lpm_steady_ms`` is the median of the per-step differences (Dynasor's step minus
  SGLang's lpm on the same queue), ``dynasor_reorder_steady_ms`` the time inside
  ``QueueOrderer.reorder`` alone (Dynasor's step also skips SGLang's own lpm sort).
- ``dynasor_unchanged_ms``: a step in which nothing changed since the previous one.
"""

from __future__ import annotations

import random
import statistics
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dynasor.core.tag import new_program_id
from dynasor.scheduler.program_table import ProgramTable

WARMUP_STEPS = 100


@dataclass
class SteadyLoad:
    """The events of the steady state around one queue."""

    table: ProgramTable
    pids: list[str]
    prompts: list[array]
    rng: random.Random
    running: list[Any]
    serial: int = 0

    def new_req(self, age_s: float = 0.0) -> Any:
        """A request of a random program that arrived up to ``age_s`` ago."""
        from sglang.srt.managers.schedule_batch import Req
        from sglang.srt.sampling.sampling_params import SamplingParams

        p = self.rng.randrange(len(self.pids))
        ids = self.prompts[p] + array("q", (self.rng.randrange(1, 49000) for _ in range(8)))
        self.serial += 1
        req = Req(f"r{self.serial}", "", ids, SamplingParams(max_new_tokens=self.rng.choice([64, 256, 1024])))
        self.table.on_arrival(req.rid, self.pids[p], len(ids), now=time.time() - self.rng.random() * age_s,
                              max_new_tokens=req.sampling_params.max_new_tokens)
        return req


def build_queue(n: int, n_programs: int, seed: int, in_service: int) -> tuple[list[Any], SteadyLoad]:
    rng = random.Random(seed)
    load = SteadyLoad(ProgramTable(), [new_program_id() for _ in range(n_programs)],
                      [array("q", (rng.randrange(1, 49000) for _ in range(64))) for _ in range(n_programs)], rng, [])
    queue = [load.new_req(age_s=10.0) for _ in range(n + in_service)]
    now = time.time()
    for req in queue[n:]:  # some programs in service
        load.table.on_admitted(req.rid, now)
        load.running.append(req)
    return queue[:n], load


def steady_events(load: SteadyLoad, queue: list[Any], admit: int, orderer: Any) -> list[Any]:
    """One step of the steady state between two orderings; returns the new queue (SGLang builds a new list)."""
    now = time.time()
    admitted = queue[:admit]
    gone = set(admitted)
    queue = [r for r in queue if r not in gone]
    for req in admitted:
        load.table.on_admitted(req.rid, now)
    orderer.note_admitted(admitted)
    load.running += admitted
    for req in load.running:
        rec = load.table.requests.get(req.rid)
        if rec is not None:
            load.table.on_progress(req.rid, rec.generated_tokens + 1, now)
    for req in load.running[:admit]:
        load.table.on_finished(req.rid, aborted=False, now=now)
    del load.running[:admit]
    for _ in range(admit):
        req = load.new_req()
        queue.append(req)
        orderer.note_queued(req)
    return queue


@contextmanager
def plugin_hooks() -> Iterator[Callable[[Any, list[Any]], None]]:
    """SGLang's ``SchedulePolicy`` with Dynasor's three scheduling hooks in place; yields one step."""
    from sglang.srt.managers.schedule_policy import SchedulePolicy

    from dynasor.srt.queue_order_hooks import keep_deprioritized, order_with_programs, skip_lpm_sort

    calc = getattr(SchedulePolicy.calc_priority, "__wrapped__", SchedulePolicy.calc_priority)
    original_matches = SchedulePolicy._compute_prefix_matches
    original_sort = SchedulePolicy._sort_by_longest_prefix

    def matches(self: Any, *a: Any, **k: Any) -> Any:
        result = original_matches(self, *a, **k)
        keep_deprioritized(result, self)
        return result

    SchedulePolicy._compute_prefix_matches = matches
    SchedulePolicy._sort_by_longest_prefix = staticmethod(lambda *a: skip_lpm_sort(original_sort, *a))
    try:
        yield lambda policy, queue: order_with_programs(calc, policy, queue)
    finally:
        SchedulePolicy._compute_prefix_matches = original_matches
        SchedulePolicy._sort_by_longest_prefix = staticmethod(original_sort)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def p90_ms(times: list[float]) -> float:
    return sorted(times)[int(0.9 * (len(times) - 1))] * 1e3


def measure(n: int, n_programs: int, repeats: int, steps: int, admit: int, in_service: int) -> dict[str, Any]:
    import torch
    from sglang.srt.managers.schedule_policy import SchedulePolicy
    from sglang.srt.mem_cache.base_prefix_cache import InsertParams
    from sglang.srt.mem_cache.radix_cache import RadixCache, RadixKey

    from dynasor.srt.config import DynasorServerConfig
    from dynasor.srt.context import SchedulerContext, activate_context

    queue, load = build_queue(n, n_programs, seed=n + n_programs, in_service=in_service)
    cache = RadixCache.create_simulated()
    for prompt in load.prompts[: n_programs // 2]:
        cache.insert(InsertParams(key=RadixKey(token_ids=prompt), value=torch.zeros(len(prompt), dtype=torch.int64)))
    fcfs = SchedulePolicy("fcfs", cache, False, False, False)
    lpm = SchedulePolicy("lpm", cache, False, False, False)
    calc = getattr(SchedulePolicy.calc_priority, "__wrapped__", SchedulePolicy.calc_priority)
    context = SchedulerContext(DynasorServerConfig(schedule_policy="gang-sjf"), load.table)
    activate_context(context)

    def timed(step: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        step()
        return time.perf_counter() - t0

    rng = random.Random(0)
    stock_fcfs, stock_lpm, full = [], [], []
    with plugin_hooks() as dynasor_step:
        for _ in range(repeats):
            shuffled = queue[:]
            rng.shuffle(shuffled)
            stock_fcfs.append(timed(lambda: calc(fcfs, shuffled[:])))
            copy = shuffled[:]
            stock_lpm.append(timed(lambda: calc(lpm, copy)))
            context.queue.forget()  # a queue the orderer has never seen
            full.append(timed(lambda: dynasor_step(lpm, shuffled)))
        queue = shuffled
        for _ in range(WARMUP_STEPS):  # the table's output-length prior settles
            queue = steady_events(load, queue, admit, context.queue)
            dynasor_step(lpm, queue)
        reranks_before = context.queue.full_reranks
        steady, steady_lpm, unchanged, reorder_only = [], [], [], []
        orderer_reorder = context.queue.reorder

        def timed_reorder(waiting_queue: list[Any], deprioritized: set[str]) -> None:
            reorder_only.append(timed(lambda: orderer_reorder(waiting_queue, deprioritized)))

        context.queue.reorder = timed_reorder  # type: ignore[method-assign]
        for _ in range(steps):
            queue = steady_events(load, queue, admit, context.queue)
            copy = queue[:]
            steady_lpm.append(timed(lambda: calc(lpm, copy)))
            steady.append(timed(lambda: dynasor_step(lpm, queue)))
            unchanged.append(timed(lambda: dynasor_step(lpm, queue)))
        context.queue.reorder = orderer_reorder  # type: ignore[method-assign]
    activate_context(None)
    return {"waiting": n, "programs": n_programs, "admitted_per_step": admit, "running": len(load.running),
            "sglang_fcfs_ms": median_ms(stock_fcfs), "sglang_lpm_ms": median_ms(stock_lpm),
            "dynasor_full_rerank_ms": median_ms(full),
            "sglang_lpm_steady_ms": median_ms(steady_lpm),
            "dynasor_steady_ms": median_ms(steady), "dynasor_steady_p90_ms": p90_ms(steady),
            "dynasor_over_lpm_steady_ms": median_ms([d - s for d, s in zip(steady, steady_lpm)]),
            "dynasor_reorder_steady_ms": median_ms(reorder_only[0::2]),
            "dynasor_unchanged_ms": median_ms(unchanged),
            "steady_steps": steps, "full_reranks_in_steady_state": context.queue.full_reranks - reranks_before}


HEADER = (f"{'waiting':>8} {'programs':>8} | {'sglang fcfs':>11} {'sglang lpm':>10} | {'dynasor full':>12} | "
          f"{'lpm steady':>10} {'dynasor steady':>14} {'p90':>7} {'over lpm':>8} {'reorder':>7} | {'unchanged':>9}")


def format_row(r: dict[str, Any]) -> str:
    return (f"{r['waiting']:>8} {r['programs']:>8} | {r['sglang_fcfs_ms']:>11.3f} {r['sglang_lpm_ms']:>10.3f} | "
            f"{r['dynasor_full_rerank_ms']:>12.3f} | {r['sglang_lpm_steady_ms']:>10.3f} "
            f"{r['dynasor_steady_ms']:>14.3f} {r['dynasor_steady_p90_ms']:>7.3f} "
            f"{r['dynasor_over_lpm_steady_ms']:>+8.3f} {r['dynasor_reorder_steady_ms']:>7.3f} | "
            f"{r['dynasor_unchanged_ms']:>9.3f}")
