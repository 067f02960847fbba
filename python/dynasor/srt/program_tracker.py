"""Turns SGLang ``Req`` lifecycle events into ``ProgramTable`` events and program metrics
(written against sglang==0.5.23; the call sites are in ``dynasor_scheduler.py``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sglang.srt.managers.schedule_batch import FINISH_ABORT

from dynasor.core.tag import tag_of
from dynasor.scheduler.program_table import ProgramTable
from dynasor.scheduler.rate import RateMeter

if TYPE_CHECKING:
    from dynasor.srt.metrics import ProgramMetrics

EXPIRE_EVERY_S = 1.0


class ProgramTracker:
    def __init__(self, table: ProgramTable, rate: RateMeter) -> None:
        self.table = table
        self.rate = rate
        self.metrics: ProgramMetrics | None = None
        self._next_expire = 0.0

    def on_new_req(self, req: Any) -> None:
        tag = tag_of({"custom_params": req.sampling_params.custom_params})
        # max_new_tokens == 0: prefill-only copies (n > 1 warm-up, frontend prefix commits), not work.
        if tag is not None and req.sampling_params.max_new_tokens != 0:
            started = self.table.on_arrival(
                req.rid, tag.program_id, len(req.origin_input_ids), time.time(), token_stats=tag.return_entropy,
                max_new_tokens=req.sampling_params.max_new_tokens, remaining_work=tag.remaining_work,
                deferred=tag.deferred, confidence_window=tag.confidence_window,
                stop_below_confidence=tag.stop_below_confidence,
            )
            if started and self.metrics is not None:
                self.metrics.on_started()

    def on_queued(self, req: Any) -> None:
        if req.rid in self.table.requests:
            self.table.on_requeued(req.rid, time.time())
        else:
            self.on_new_req(req)

    def on_prefill_batch(self, reqs: list[Any]) -> None:
        now = time.time()
        for req in reqs:
            self.table.on_admitted(req.rid, now)

    def on_stream(self, reqs: list[Any]) -> None:
        """Progress of the step's requests (called by the output streamer every step)."""
        now = time.time()
        requests = self.table.requests
        self.rate.add(len(reqs), now)
        for req in reqs:
            if req.rid not in requests:
                continue
            self.table.on_progress(req.rid, len(req.output_ids), now)
            if req.finished():
                self.on_finished(req.rid, isinstance(req.finished_reason, FINISH_ABORT), now)
        self.maybe_expire(now)

    def on_ended_outside_stream(self, req: Any) -> None:
        self.on_finished(req.rid, aborted=True, now=time.time())

    def on_finished(self, rid: str, aborted: bool, now: float) -> None:
        if rid not in self.table.requests:
            return
        done = self.table.on_finished(rid, aborted, now)
        if self.metrics is not None:
            self.metrics.on_request_ended(aborted, done, self.table.live_programs)

    def maybe_expire(self, now: float) -> None:
        if now >= self._next_expire:
            self.table.expire(now)
            self._next_expire = now + EXPIRE_EVERY_S
