"""Waiting-queue order over programs: gang, approximate shortest-job-first, starvation guard.

Pure Python over plain data; the engine wiring (``dynasor.srt.queue_orderer``) turns SGLang's waiting
queue into ``WaitingRequest`` rows and applies the permutation returned by ``order_waiting``.

A *group* is a program, or a single untagged request (which behaves as a one-request program, so
untagged traffic keeps first-come-first-served order among itself). Policies, from the key of a
group (smaller first):

- ``program-fifo`` (Parrot's application FIFO): program arrival time.
- ``gang``: programs in service (a request running) first, then whole programs by arrival; a
  program's waiting requests stay contiguous, so its branches are admitted together.
- ``gang-sjf``: programs in service first (their gang completes), then escalated programs (longest
  wait first), then the rest by estimated remaining work (shortest first), arrival time breaking ties.
  Estimates are compared by ``work_class``: geometric classes ``WORK_TIE_RATIO`` wide, because a
  remaining-work estimate (a hint counted down, a learned mean length) is no finer than that, and
  programs that look alike must keep first-come-first-served order instead of being shuffled by noise.
- ``sjf``: ``gang-sjf`` without the gang: a program in service has no precedence, so a shorter
  program that arrives can take the place of its waiting branches (the simulator's ablation of gang).

Starvation guard (``gang-sjf``, ``sjf``): a group not in service whose oldest waiting request has waited
longer than ``StarvationGuard.bound(estimated service time)`` = clamp(factor × service time,
floor, cap) seconds is escalated ahead of every program not in service. With the defaults a program
waits at most 60 s behind an adversarial stream of shorter programs, plus the time to drain what is
running and the waiting branches of programs already in service. Escalation does not jump programs
in service: in a burst (``benchmark/scheduler/bench_burst.py``) that split the gangs of 9 of 12
programs and raised the mean program latency 15%.

Deferred requests (tag ``deferred``: a program's optional work, such as the self-consistency
branches beyond the detection round) form a group of their own per program. While their program
still has a request that is not deferred waiting or running, that group ranks after every other
group (it uses idle capacity only, and is never escalated); after that it ranks as the program
itself would, so a program that goes on finds its remaining branches queued, their prompt cached.

Inside a group: requests the engine marked for in-batch prefix sharing last, then longest cached
prefix, then queue arrival, then request id. SGLang's in-batch prefix deduplication keeps its
meaning: requests it deprioritised (they share a still uncached prefix with an earlier waiting
request) go after every other request, and come first on the next step because their program is
then in service and their prefix is cached. Every key ends in a unique id, so the order is
deterministic. The keys live here; ``group_order.py`` keeps groups in key order between steps
(and its ``order_waiting`` ranks a queue from scratch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

# Remaining-work estimates within this ratio of each other are ties (same class, arrival order).
WORK_TIE_RATIO = 1.25
_LOG_TIE_RATIO = math.log(WORK_TIE_RATIO)


def work_class(tokens: float) -> int:
    """Geometric class of a remaining-work estimate: 0 for none, then one class per factor of
    ``WORK_TIE_RATIO`` (monotone, so a shorter class always ranks first)."""
    return math.floor(math.log1p(max(tokens, 0.0)) / _LOG_TIE_RATIO)


class QueuePolicy(str, Enum):
    FCFS = "fcfs"
    LPM = "lpm"
    PROGRAM_FIFO = "program-fifo"
    GANG = "gang"
    GANG_SJF = "gang-sjf"
    SJF = "sjf"

    @property
    def by_remaining_work(self) -> bool:
        """Ranks programs by estimated remaining work (and so guards against starvation)."""
        return self in (QueuePolicy.GANG_SJF, QueuePolicy.SJF)

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
    deferred: bool = False  # the tag's ``deferred``: optional work of its program


class ProgramView(NamedTuple):
    """What ordering needs to know of a program (from the program table)."""

    first_arrival: float
    in_service: bool
    remaining_work: float  # tokens; service time = remaining_work / decode rate
    deferring: bool = False  # a request that is not deferred waits or runs: deferred ones wait behind all


UNTAGGED_GROUP = "\x00"  # group id prefix of an untagged request (program ids are printable)
DEFERRED_GROUP = "\x01"  # group id prefix of a program's deferred requests


def group_of(r: WaitingRequest) -> str:
    """A program's requests form one group, its deferred requests another; an untagged request is a
    group of its own."""
    if r.program_id is None:
        return UNTAGGED_GROUP + r.rid
    return DEFERRED_GROUP + r.program_id if r.deferred else r.program_id


def deferred_group(program_id: str) -> str:
    return DEFERRED_GROUP + program_id


def program_of_group(group: str) -> str | None:
    """The program a group belongs to (None for an untagged request)."""
    if group.startswith(UNTAGGED_GROUP):
        return None
    return group[1:] if group.startswith(DEFERRED_GROUP) else group


def held_back(group: str, view: ProgramView) -> bool:
    """A deferred group whose program still has work that is not deferred: it ranks last."""
    return view.deferring and group.startswith(DEFERRED_GROUP)


def in_group_key(r: WaitingRequest) -> tuple:
    """Inside a group: longest cached prefix, then queue arrival, then request id (unique)."""
    return (-r.cached_tokens, r.queued_at, r.rid)


def untagged_view(r: WaitingRequest) -> ProgramView:
    """An untagged request behaves as a one-request program that arrived when it did."""
    return ProgramView(r.queued_at, False, r.expected_tokens)


def group_key(policy: QueuePolicy, view: ProgramView, oldest_queued_at: float, escalate: bool, group: str) -> tuple:
    """Rank of a group under ``policy`` (smaller first). Every key ends in the group id, so the order
    is total and deterministic; an escalated group's rank (longest wait first) does not move with time."""
    if held_back(group, view):
        return (3, view.first_arrival, group)
    if policy is QueuePolicy.PROGRAM_FIFO:
        return (1, view.first_arrival, group)
    if policy is QueuePolicy.GANG:
        return (1, 0 if view.in_service else 1, view.first_arrival, group)
    if view.in_service and policy is QueuePolicy.GANG_SJF:
        return (0, work_class(view.remaining_work), view.first_arrival, group)
    if escalate:
        return (1, oldest_queued_at, view.first_arrival, group)
    return (2, work_class(view.remaining_work), view.first_arrival, group)
