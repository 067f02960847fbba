"""N simulated engines behind one dispatch: what a program run sends to and aborts on.

Each engine keeps its own clock, queue, program table and prefix cache (per-rank ordering, as on a
live ``--dp-size`` server or behind a router). ``now`` is the clients' clock: a client-side event
(a program starting, a request's end heard) runs at its own time, and what it aborts is ended at
that time on the engine holding the request (one still in transit on the first engine: it
holds nothing of it).
"""

from __future__ import annotations

from collections.abc import Sequence

from dynasor.sim.dispatch import Dispatch
from dynasor.sim.engine import SimEngine
from dynasor.sim.request import SimRequest


class SimCluster:
    def __init__(self, engines: Sequence[SimEngine], dispatch: Dispatch) -> None:
        if not engines:
            raise ValueError("a cluster needs at least one engine")
        self.engines = list(engines)
        self.dispatch = dispatch
        self.now = 0.0
        self.served_by: dict[str, int] = {}  # request id -> the engine it was placed on

    def submit(self, req: SimRequest) -> None:
        """``req`` reaches the server at ``now``: placed, then queued on its engine (an idle engine's
        clock moves up to ``now``; a busy one takes it between iterations, at its own clock)."""
        rank = self.dispatch.rank(req, self.engines, self.now) if len(self.engines) > 1 else 0
        engine = self.engines[rank]
        self.served_by[req.rid] = rank
        if engine.idle:
            engine.now = max(engine.now, self.now)
        engine.submit(req)

    def abort(self, req: SimRequest) -> None:
        engine = self.engines[self.served_by.get(req.rid, 0)]
        own, engine.now = engine.now, self.now
        engine.abort(req)
        engine.now = own

    @property
    def busy(self) -> list[SimEngine]:
        return [e for e in self.engines if not e.idle]
