"""The rules the server's queue orderer and the simulated engine's queue share, in one place.

Both keep a ``GroupOrder`` of the waiting requests between steps. A waiting request becomes a
``WaitingRequest`` row by ``waiting_row`` (a tagged request from its program table record, an
untagged one as a one-request program expected to make the server-wide mean output length, capped
by its ``max_new_tokens``), and a step brings the order up to date by ``advance``: the programs the
table touched are re-ranked, the starvation guard escalates whoever waited too long, and the
requests held back for in-batch prefix sharing go last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from dynasor.scheduler.group_order import GroupOrder, deprioritized_last
from dynasor.scheduler.ordering import WaitingRequest
from dynasor.scheduler.program_table import ProgramTable

T = TypeVar("T")


def waiting_row(table: ProgramTable, rid: str, queued_at: float, cached_tokens: int,
                max_new_tokens: int | None) -> WaitingRequest:
    """The queue row of one waiting request (``queued_at`` is used for untagged requests only: a
    tagged one keeps its table record's)."""
    rec = table.requests.get(rid)
    if rec is not None:
        return WaitingRequest(rid, rec.program_id, rec.queued_at, cached_tokens, deferred=rec.deferred)
    prior = table.expected_output_tokens_prior()
    expected = prior if max_new_tokens is None else min(prior, max_new_tokens)
    return WaitingRequest(rid, None, queued_at, cached_tokens, False, expected)


def advance(groups: GroupOrder[T], table: ProgramTable, now: float, decode_rate: float,
            touched: Sequence[str] = ()) -> list[str]:
    """Re-rank the programs in ``touched`` and apply the starvation guard; the programs newly
    escalated (counted in the table), in order."""
    for pid in touched:
        groups.touch(pid)
    return [pid for pid in groups.refresh(now, table.view, decode_rate) if table.on_escalated(pid)]


def held_last(order: list[T], rid_of: Callable[[T], str], held: set[str]) -> list[T]:
    """``order`` with the requests SGLang held back for in-batch prefix sharing moved last."""
    return deprioritized_last(order, [rid_of(item) in held for item in order]) if held else order
