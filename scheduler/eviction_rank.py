"""Which cached prefixes go first when the KV pool needs room: the class of their holders.

A cached prefix is held by the programs whose requests used it. Classes (smaller is evicted first;
the eviction strategy orders within a class, LRU by default):

  0. ``DONE``: only programs that are done (finished or aborted, or expired from the table),
  1. ``UNTAGGED``: no program (untagged traffic),
  2. ``LIVE``: at least one live program (a request of it waits or runs),

so the prefix a live program's next branches will hit outlives the leftovers of finished ones.
Used by the server's radix-cache hook (``dynasor.srt.eviction_hooks``) and by the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

DONE, UNTAGGED, LIVE = 0, 1, 2


def holder_class(holders: Iterable[str] | None, is_live: Callable[[str], bool]) -> int:
    """``holders`` None: the prefix was never used by a tagged request."""
    if holders is None:
        return UNTAGGED
    return LIVE if any(is_live(pid) for pid in holders) else DONE
