"""Program retraction inside SGLang's decode retraction (written against sglang==0.5.23).

When a decode step's KV does not fit, SGLang's ``ScheduleBatch.retract_decode`` retracts running
requests one at a time, popping from the end of ``_get_decode_retraction_order`` (fewest output
tokens first: a little of every program's work is thrown away and recomputed), until the rest
fits. With ``--dynasor-retraction program`` that order is ``dynasor.scheduler.kv_gang``'s instead:
program by program, the one with the most remaining work first; untagged requests keep their
place among themselves and count their unused token budget as remaining work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dynasor.scheduler.kv_gang import RunningGroup, program_retraction_order
from dynasor.srt.context import current_context


def order_retraction_by_program(original: Callable[..., list[int]], reqs: Sequence[Any]) -> list[int]:
    """AROUND ``ScheduleBatch._get_decode_retraction_order``: indices, most preferred to keep first."""
    keep_order = original(reqs)
    context = current_context()
    if context is None or not context.program_retraction:
        return keep_order
    table = context.table
    members: dict[str, list[int]] = {}
    remaining: dict[str, float] = {}
    for index in reversed(keep_order):  # SGLang's give-way order within a program
        req = reqs[index]
        program_id = table.program_of(req.rid)
        program = table.get(program_id) if program_id is not None else None
        key = f"program:{program_id}" if program is not None else f"request:{req.rid}"
        members.setdefault(key, []).append(index)
        if key not in remaining:
            remaining[key] = table.remaining_work(program) if program is not None else float(
                max(req.sampling_params.max_new_tokens - len(req.output_ids), 0))
    groups = [RunningGroup(key, remaining[key], tuple(str(i) for i in indices)) for key, indices in members.items()]
    give_way = [int(i) for group in program_retraction_order(groups) for i in group]
    return give_way[::-1]
