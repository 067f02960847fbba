"""Which data-parallel rank serves a program: one rank per program, chosen once, kept (sticky).

A program's branches share their prompt; split over ranks, each rank would prefill it and see part
of the gang. So every request of a program goes to one rank: a new program to the rank with the
least outstanding work at its first request, later requests to the same rank. A placement is
forgotten ``ttl_s`` after the program's last request arrived (the program table's TTL), or when
more than ``max_programs`` are remembered (oldest first); a request after that places the program
afresh.

SGLang routes a batched request (a list of prompts) as a whole to one rank, so a batch places all of
its programs together; a batch whose programs are already held by different ranks cannot be
served by one rank and is refused (``PlacementConflict``).

Pure Python over plain data: the engine wiring (``dynasor.srt.dp_placement``) supplies the
outstanding work per rank and writes the rank into SGLang's request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence


class PlacementConflict(ValueError):
    """A batch holds programs served by different ranks."""


class ProgramPlacement:
    """The rank of every recently seen program of one server with ``ranks`` data-parallel ranks."""

    def __init__(self, ranks: int, ttl_s: float, max_programs: int = 100_000) -> None:
        if ranks < 1:
            raise ValueError(f"ranks must be >= 1, got {ranks}")
        self.ranks, self.ttl_s, self.max_programs = ranks, ttl_s, max(1, max_programs)
        self._placed: OrderedDict[str, tuple[int, float]] = OrderedDict()  # program -> (rank, last arrival)
        self._placements = [0] * ranks  # programs placed on each rank so far (tie-break: spread them)

    def __len__(self) -> int:
        return len(self._placed)

    def rank_of(self, program_id: str, now: float | None = None) -> int | None:
        self._expire(time.monotonic() if now is None else now)
        entry = self._placed.get(program_id)
        return None if entry is None else entry[0]

    def place(self, program_ids: Sequence[str], outstanding: Callable[[], Sequence[float]],
              now: float | None = None, pinned: int | None = None) -> int:
        """The rank for a request of ``program_ids`` (one, or several in a batch); records it.

        ``outstanding()`` (work per rank, called only when a new program must be placed) picks
        the least loaded rank, ties to the rank that took fewest programs, then the lowest.
        ``pinned``: the caller chose the rank; programs not yet placed stay on it from now on.
        """
        now = time.monotonic() if now is None else now
        self._expire(now)
        held = {self._placed[p][0] for p in program_ids if p in self._placed}
        if pinned is not None:
            held.add(pinned)
        if len(held) > 1:
            raise PlacementConflict(
                f"this batch holds programs served by different data-parallel ranks {sorted(held)}: a batch goes "
                "to one rank, so send requests of those programs separately")
        if held:
            rank = held.pop()
        else:
            loads = list(outstanding())
            if len(loads) != self.ranks:
                raise ValueError(f"outstanding work given for {len(loads)} ranks, expected {self.ranks}")
            rank = min(range(self.ranks), key=lambda r: (loads[r], self._placements[r], r))
        for program_id in program_ids:
            if program_id not in self._placed:
                self._placements[rank] += 1
            self._placed[program_id] = (rank, now)
            self._placed.move_to_end(program_id)
        while len(self._placed) > self.max_programs:
            self._placed.popitem(last=False)
        return rank

    def _expire(self, now: float) -> None:
        while self._placed:
            _, last = next(iter(self._placed.values()))
            if now - last < self.ttl_s:
                break
            self._placed.popitem(last=False)
