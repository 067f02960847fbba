"""Stock SGLang's ``routing-key`` schedule policy, as the simulated engine plays it (sglang==0.5.23;
read from its scheduler and written here as a rule, not code).

Before each admission pass SGLang counts the routing keys of the running requests. If any running
request has a key, the waiting queue is sorted in place (stably): first the requests whose key is
running, most running first, then by key string; then everyone else by key string. Otherwise the
queue is left as it is (fcfs). It co-schedules requests that share a key softly: there is no gang
admission and no reservation.

The client sends its program id as the key. Dynasor's program ids are random hex, so ordering by key
string is an arbitrary order among programs that are not running; the simulator keys a program by a
hash of its id for the same effect. Untagged background requests carry no key.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from dynasor.sim.background import BACKGROUND
from dynasor.sim.request import SimRequest


def routing_key(req: SimRequest) -> str:
    if req.source is None or req.source == BACKGROUND:
        return ""
    return hashlib.blake2s(req.source.encode(), digest_size=8).hexdigest()


def sort_by_routing_key(waiting: list[SimRequest], running: Sequence[SimRequest]) -> None:
    counts = Counter(key for key in map(routing_key, running) if key)
    if not counts:
        return

    def rank(req: SimRequest) -> tuple[int, int, str]:
        key = routing_key(req)
        return (0, -counts[key], key) if key in counts else (1, 0, key)

    waiting.sort(key=rank)
