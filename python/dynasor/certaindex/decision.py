"""When a self-consistency program reads its certaindex: the one stop rule of every self-consistency
loop (the runtime's ``SelfConsistency``, the frontend's ``fork_until_certain``, the offline replays
and the simulator's programs)."""

from __future__ import annotations


def at_detection(answered: int, detect_at: int, cap: int) -> bool:
    """The decision point of self-consistency: the ``detect_at``-th answer just came in and the
    cap is not reached (at the cap there is nothing left to save)."""
    return answered == detect_at < cap
