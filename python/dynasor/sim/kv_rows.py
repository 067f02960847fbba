"""What the simulated engine hands ``dynasor.scheduler.kv_gang``'s rules, and SGLang's retraction
order (one request at a time) beside the program-level one."""

from __future__ import annotations

from collections.abc import Sequence

from dynasor.scheduler.kv_gang import KvRow, RunningGroup, program_retraction_order
from dynasor.scheduler.program_table import ProgramTable
from dynasor.sim.prefix_cache import PrefixCache
from dynasor.sim.priority import PriorityScheduling
from dynasor.sim.request import EngineLimits, SimRequest


def growth(req: SimRequest, table: ProgramTable, limits: EngineLimits) -> float:
    """Tokens a request is still expected to make (an untagged one: its clipped budget)."""
    if req.program_id is not None:
        return table.expected_growth(req.rid)
    return float(min(req.max_new_tokens - req.generated, limits.clip_max_new_tokens))


def running_rows(running: Sequence[SimRequest], table: ProgramTable, limits: EngineLimits) -> list[KvRow]:
    return [KvRow(r.computed - r.shared, growth(r, table, limits)) for r in running]


def gang_rows(program_id: str, waiting: Sequence[SimRequest], cache: PrefixCache, table: ProgramTable,
              limits: EngineLimits) -> list[KvRow]:
    """A program's waiting requests: their uncached input (the shared prompt on the first) and growth."""
    members = [r for r in waiting if r.program_id == program_id]
    prefix = max(0, max(r.prefix_tokens - cache.cached(r.segments) for r in members))
    return [KvRow(r.own_tokens + r.generated + (prefix if i == 0 else 0), growth(r, table, limits))
            for i, r in enumerate(members)]


def private_capacity(cache: PrefixCache, limits: EngineLimits, chunked: SimRequest | None) -> float:
    """Pool tokens requests can hold of their own: all but the locked cached prefixes and the
    chunked request's KV."""
    locked = cache.tokens - cache.evictable_tokens
    return limits.kv_tokens - locked - (chunked.private_kv if chunked else 0)


def retraction_groups(running: Sequence[SimRequest], table: ProgramTable, priority: PriorityScheduling | None,
                      by_program: bool) -> list[list[SimRequest]]:
    """Running requests in the order they give way, grouped by program: SGLang's order, one request
    a group (fewest output tokens, then longest input; least important first with priority
    scheduling), or program by program, most remaining work first (``by_program``)."""
    if not by_program:
        key = priority.retraction_key if priority else lambda r: (0.0, r.generated, -r.input_tokens)
        # ties: the later of equal requests first (as popping a descending stable sort from its end)
        return [[r] for r in sorted(running, key=key, reverse=True)[::-1]]
    members: dict[str, list[SimRequest]] = {}
    for req in running:
        members.setdefault(req.program_id or req.rid, []).append(req)
    rows = [RunningGroup(key, _remaining(reqs, table), tuple(r.rid for r in reqs)) for key, reqs in members.items()]
    by_rid = {r.rid: r for r in running}
    return [[by_rid[rid] for rid in group] for group in program_retraction_order(rows)]


def _remaining(reqs: Sequence[SimRequest], table: ProgramTable) -> float:
    prog = table.get(reqs[0].program_id) if reqs[0].program_id is not None else None
    if prog is None:
        return float(sum(r.max_new_tokens - r.generated for r in reqs))
    return table.remaining_work(prog)
