"""Waiting-queue order over programs: gang, approximate shortest-job-first, starvation guard.

Pure Python over plain data; the engine wiring (``dynasor.srt.queue_orderer``) turns SGLang's waiting
queue into ``WaitingRequest`` rows and applies the permutation returned by ``order_waiting``.

A *group* is a program, or a single untagged request (which behaves as a one-request program, so
untagged traffic keeps first-come-first-served order among itself). Policies, from the key of a
group (smaller first):

- ``program-fifo`` (Parrot's application FIFO): program arrival time.
- ``gang``: programs in service (a request running) first, then whole programs by arrival; a
  program's waiting requests stay contiguous, so its branches are admitted together.
- ``gang-sjf``: escalated programs first (longest wait first), then programs in service, then the
  rest by estimated remaining work (shortest first), arrival time breaking ties.

Starvation guard (``gang-sjf``): a group not in service whose oldest waiting request has waited
longer than ``StarvationGuard.bound(estimated service time)`` = clamp(factor × service time,
floor, cap) seconds is escalated to the front. With the defaults a program waits at most 60 s
behind an adversarial stream of shorter programs, plus the time to drain what is running.

Inside a group: requests the engine marked for in-batch prefix sharing last, then longest cached
prefix, then queue arrival, then request id. SGLang's in-batch prefix deduplication keeps its
meaning: requests it deprioritised (they share a still uncached prefix with an earlier waiting
request) go after every other request, and come first on the next step because their program is
then in service and their prefix is cached. Every key ends in a unique id, so the order is
deterministic. Cost: one pass buckets requests by group, the groups are sorted once (one key per
group), and only groups holding several requests sort their own members: O(n log n) at worst.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple


class QueuePolicy(str, Enum):
    FCFS = "fcfs"
    LPM = "lpm"
    PROGRAM_FIFO = "program-fifo"
    GANG = "gang"
    GANG_SJF = "gang-sjf"

    @property
    def is_stock(self) -> bool:
        """Stock SGLang policies run SGLang's own code path, untouched."""
        return self in (QueuePolicy.FCFS, QueuePolicy.LPM)


@dataclass(frozen=True)
class StarvationGuard:
    factor: float = 4.0
    floor_s: float = 5.0
    cap_s: float = 60.0

    def bound(self, service_time_s: float) -> float:
        return min(self.cap_s, max(self.floor_s, self.factor * service_time_s))


class WaitingRequest(NamedTuple):
    """One waiting request (a named tuple: built for every request at every scheduling step)."""

    rid: str
    program_id: str | None
    queued_at: float
    cached_tokens: int = 0
    deprioritized: bool = False
    expected_tokens: float = 0.0  # estimated work of an untagged request (a group of its own)


class ProgramView(NamedTuple):
    """What ordering needs to know of a program (from the program table)."""

    first_arrival: float
    in_service: bool
    remaining_work: float  # tokens; service time = remaining_work / decode rate


@dataclass(frozen=True)
class Ordering:
    order: list[int]  # permutation of the waiting requests
    escalated: frozenset[str]  # program ids escalated in this step
    next_escalation_at: float = float("inf")  # earliest time a waiting group crosses its bound


def _in_group_key(r: WaitingRequest) -> tuple:
    return (-r.cached_tokens, r.queued_at, r.rid)


def order_waiting(
    waiting: Sequence[WaitingRequest],
    programs: Mapping[str, ProgramView],
    policy: QueuePolicy,
    now: float,
    guard: StarvationGuard = StarvationGuard(),
    decode_rate: float = 100.0,
) -> Ordering:
    """Permutation of ``waiting`` under ``policy``; stock policies keep the given order."""
    if policy.is_stock or not waiting:
        return Ordering(list(range(len(waiting))), frozenset())
    watch = policy is QueuePolicy.GANG_SJF

    # One pass buckets the requests by group (a program id, or the index of an untagged request).
    members: dict[str | int, list[int]] = {}
    oldest: dict[str | int, float] = {}
    deprioritized: set[int] = set()
    for i, r in enumerate(waiting):
        group: str | int = i if r.program_id is None else r.program_id
        bucket = members.get(group)
        if bucket is None:
            members[group] = [i]
            oldest[group] = r.queued_at
        else:
            bucket.append(i)
            if r.queued_at < oldest[group]:
                oldest[group] = r.queued_at
        if r.deprioritized:
            deprioritized.add(i)

    rate = max(decode_rate, 1e-6)
    next_escalation_at = float("inf")
    escalated: set[str] = set()
    ranked: list[tuple[tuple, str | int]] = []
    for group, queued_at in oldest.items():
        if isinstance(group, int):
            r = waiting[group]
            first_arrival, in_service, work, group_id = r.queued_at, False, r.expected_tokens, r.rid
        else:
            view = programs.get(group) or ProgramView(queued_at, False, 0.0)
            first_arrival, in_service, work, group_id = view.first_arrival, view.in_service, view.remaining_work, group
        escalate = False
        if watch and not in_service:
            due = queued_at + guard.bound(work / rate)
            if now > due:
                escalate = True
                if not isinstance(group, int):
                    escalated.add(group)
            elif due < next_escalation_at:
                next_escalation_at = due
        ranked.append((_group_key(policy, first_arrival, in_service, work, now - queued_at, escalate, group_id),
                       group))
    ranked.sort(key=_first)  # keys end in a unique id: a total, deterministic order

    order: list[int] = []
    for _, group in ranked:
        bucket = members[group]
        if len(bucket) > 1:
            bucket.sort(key=lambda i: _in_group_key(waiting[i]))
        order.extend(bucket)
    if deprioritized:
        order = [i for i in order if i not in deprioritized] + [i for i in order if i in deprioritized]
    return Ordering(order, frozenset(escalated), next_escalation_at)


def _first(item: tuple) -> Any:
    return item[0]


def _group_key(policy: QueuePolicy, first_arrival: float, in_service: bool, remaining_work: float,
               waited_s: float, escalate: bool, group_id: str) -> tuple:
    if policy is QueuePolicy.PROGRAM_FIFO:
        return (1, first_arrival, group_id)
    if policy is QueuePolicy.GANG:
        return (1, 0 if in_service else 1, first_arrival, group_id)
    if escalate:
        return (0, -waited_s, 0, 0.0, first_arrival, group_id)
    return (1, 0.0, 0 if in_service else 1, remaining_work, first_arrival, group_id)
