"""Waiting groups kept in order between scheduling steps, re-keyed only when their inputs change.

A full re-rank of 10,000 waiting requests costs tens of milliseconds in Python, longer than a GPU
decode step, yet between two steps only a few groups change: requests arrive or are admitted, the
programs in service make progress, a starvation bound falls due. ``GroupOrder`` keeps, per group,
its members sorted by the in-group key, and all groups in a list sorted by their group key
(``ordering.group_key``). ``refresh`` re-keys only the groups marked dirty (members added or
removed, ``touch`` by the caller when a program's view changed, or a starvation bound passed) and
``items`` concatenates the members in group order: a step costs O(changed groups × log groups)
plus one pass over the groups, not a sort of every request.

Used from scratch (every group dirty) it is also the full re-rank: ``ordering.order_waiting`` builds
one, so the incremental and the full order come from the same code.

The starvation bound of a group is computed with the decode rate of the moment it is (re-)keyed;
the group is re-keyed when its bound passes (a heap of due times).
"""

from __future__ import annotations

import heapq
import operator
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Generic, TypeVar

from dynasor.scheduler.ordering import (
    ProgramView,
    QueuePolicy,
    StarvationGuard,
    WaitingRequest,
    deferred_group,
    group_key,
    group_of,
    held_back,
    in_group_key,
    program_of_group,
    untagged_view,
)

T = TypeVar("T")
# Tolerated share of superseded entries in the due-time heap before it is rebuilt.
_HEAP_SLACK = 4


class GroupOrder(Generic[T]):
    """Items (requests) in groups (programs, or one untagged request each), ranked by group key."""

    def __init__(self, policy: QueuePolicy, guard: StarvationGuard) -> None:
        self.policy, self.guard = policy, guard
        self._watch = policy.by_remaining_work
        self._member_keys: dict[str, list[tuple]] = {}  # in-group keys, sorted
        self._member_items: dict[str, list[T]] = {}  # the items, in the same order
        self._entry: dict[str, tuple[str, tuple]] = {}  # rid -> (group, in-group key)
        self._untagged: dict[str, ProgramView] = {}  # views of untagged groups
        self._oldest: dict[str, float] = {}  # queue arrival of each group's oldest member
        self._oldest_stale: set[str] = set()  # groups whose oldest member left since the last refresh
        self._key: dict[str, tuple] = {}  # current group key of every ranked group
        self._ranked: list[tuple] = []  # group keys, sorted; each ends in its group id
        self._dirty: set[str] = set()
        self._due: dict[str, float] = {}  # starvation due time of every watched group
        self._dues: list[tuple[float, str]] = []  # heap over _due (superseded entries skipped)

    @property
    def size(self) -> int:
        return len(self._entry)

    @property
    def next_escalation_at(self) -> float:
        """Earliest time a group may cross its starvation bound (maybe earlier: never later)."""
        return self._dues[0][0] if self._dues else float("inf")

    @property
    def pending(self) -> bool:
        """Some group waits to be re-keyed (members moved since the last refresh)."""
        return bool(self._dirty)

    @property
    def entry(self) -> Mapping[str, tuple[str, tuple]]:
        """Every member: rid -> (group, in-group key)."""
        return self._entry

    def __contains__(self, rid: str) -> bool:
        return rid in self._entry

    def has_program(self, program_id: str) -> bool:
        """A request of the program waits here (deferred or not)."""
        return program_id in self._member_keys or deferred_group(program_id) in self._member_keys

    # --- membership -------------------------------------------------------------------------
    def add(self, row: WaitingRequest, item: T) -> None:
        group, key = group_of(row), in_group_key(row)
        if row.program_id is None:
            self._untagged[group] = untagged_view(row)
        keys = self._member_keys.get(group)
        if keys is None:
            self._member_keys[group], self._member_items[group] = [key], [item]
            self._oldest[group] = row.queued_at
        else:
            at = bisect_left(keys, key)
            keys.insert(at, key)
            self._member_items[group].insert(at, item)
            if row.queued_at < self._oldest[group]:
                self._oldest[group] = row.queued_at
        self._entry[row.rid] = (group, key)
        self._dirty.add(group)

    def extend(self, rows: Iterable[tuple[WaitingRequest, T]]) -> None:
        """Add many at once: members are bucketed, then each bucket sorted once."""
        buckets: dict[str, list[tuple[tuple, T]]] = {}
        for row, item in rows:
            group, key = group_of(row), in_group_key(row)
            if row.program_id is None:
                self._untagged[group] = untagged_view(row)
            bucket = buckets.get(group)
            if bucket is None:
                buckets[group] = [(key, item)]
            else:
                bucket.append((key, item))
            self._entry[row.rid] = (group, key)
        for group, bucket in buckets.items():
            oldest = min(key[1] for key, _ in bucket)
            if group in self._member_keys:
                for key, item in bucket:
                    at = bisect_left(self._member_keys[group], key)
                    self._member_keys[group].insert(at, key)
                    self._member_items[group].insert(at, item)
                self._oldest[group] = min(self._oldest[group], oldest)
            else:
                self._oldest[group] = oldest
                if len(bucket) > 1:
                    bucket.sort(key=_first)  # in-group keys are unique: items are never compared
                self._member_keys[group] = [key for key, _ in bucket]
                self._member_items[group] = [item for _, item in bucket]
        self._dirty.update(buckets)

    def remove(self, rid: str) -> T | None:
        """Drop a member (admitted, aborted); None if it was not here."""
        entry = self._entry.pop(rid, None)
        if entry is None:
            return None
        group, key = entry
        keys = self._member_keys[group]
        at = bisect_left(keys, key)
        del keys[at]
        if key[1] == self._oldest[group]:
            self._oldest_stale.add(group)  # recomputed once at the next refresh, not per removal
        self._dirty.add(group)
        return self._member_items[group].pop(at)

    def touch(self, program_id: str) -> None:
        """The program's view changed (a program event): re-key its groups at the next refresh."""
        for group in (program_id, deferred_group(program_id)):
            if group in self._member_keys:
                self._dirty.add(group)

    # --- order ------------------------------------------------------------------------------
    def refresh(self, now: float, view_of: Callable[[str], ProgramView | None], decode_rate: float) -> list[str]:
        """Re-key the dirty groups and those whose starvation bound passed; return the program
        groups escalated by this refresh."""
        dues, due_of, dirty = self._dues, self._due, self._dirty
        while dues and dues[0][0] < now:
            due, group = heapq.heappop(dues)
            if due_of.get(group) == due:
                dirty.add(group)
        if not dirty:
            return []
        rate = max(decode_rate, 1e-6)
        ranked, current = self._ranked, self._key
        resort = len(dirty) * 4 > len(ranked)  # many changed: one sort beats many inserts
        escalated: list[str] = []
        for group in dirty:
            old = current.pop(group, None)
            if old is not None and not resort:
                del ranked[bisect_left(ranked, old)]
            due_of.pop(group, None)
            keys = self._member_keys.get(group)
            if not keys:
                self._member_keys.pop(group, None)
                self._member_items.pop(group, None)
                self._untagged.pop(group, None)
                self._oldest.pop(group, None)
                continue
            if group in self._oldest_stale:
                self._oldest[group] = min(key[1] for key in keys)
            oldest = self._oldest[group]
            view = self._untagged.get(group) or view_of(program_of_group(group) or group) \
                or ProgramView(oldest, False, 0.0)
            escalate = False
            if self._watch and not view.in_service and not held_back(group, view):
                due = oldest + self.guard.bound(view.remaining_work / rate)
                if now > due:
                    escalate = True
                    if group not in self._untagged:
                        escalated.append(program_of_group(group) or group)
                else:
                    due_of[group] = due
                    heapq.heappush(dues, (due, group))
            key = group_key(self.policy, view, oldest, escalate, group)
            current[group] = key
            if not resort:
                insort(ranked, key)
        dirty.clear()
        self._oldest_stale.clear()
        if resort:
            ranked[:] = sorted(current.values())
        if len(dues) > _HEAP_SLACK * (len(due_of) + 16):
            self._dues = [(due, group) for group, due in due_of.items()]
            heapq.heapify(self._dues)
        return escalated

    def items(self) -> list[T]:
        """Every item, groups in rank order, members in in-group order (call after ``refresh``)."""
        out: list[T] = []
        extend, members = out.extend, self._member_items
        for key in self._ranked:
            extend(members[key[-1]])
        return out


@dataclass(frozen=True)
class Ordering:
    order: list[int]  # permutation of the waiting requests
    escalated: frozenset[str]  # program ids escalated in this step
    next_escalation_at: float = float("inf")  # earliest time a waiting group crosses its bound


def order_waiting(
    waiting: Sequence[WaitingRequest],
    programs: Mapping[str, ProgramView],
    policy: QueuePolicy,
    now: float,
    guard: StarvationGuard = StarvationGuard(),
    decode_rate: float = 100.0,
) -> Ordering:
    """Permutation of ``waiting`` under ``policy``, ranked from scratch; stock policies keep the given
    order. Requests the engine deprioritised for in-batch prefix sharing go after all others."""
    if policy.is_stock or not waiting:
        return Ordering(list(range(len(waiting))), frozenset())
    groups: GroupOrder[int] = GroupOrder(policy, guard)
    groups.extend((r, i) for i, r in enumerate(waiting))
    escalated = groups.refresh(now, programs.get, decode_rate)
    order = groups.items()
    if any(r.deprioritized for r in waiting):
        order = deprioritized_last(order, [waiting[i].deprioritized for i in order])
    return Ordering(order, frozenset(escalated), groups.next_escalation_at)


def deprioritized_last(order: list[T], held: list[bool]) -> list[T]:
    """SGLang's in-batch prefix sharing keeps its meaning: the requests it held back (``held``, one
    flag per item of ``order``) go last."""
    return list(compress(order, map(operator.not_, held))) + list(compress(order, held))


def _first(pair: tuple) -> tuple:
    return pair[0]
