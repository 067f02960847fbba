"""SGLang scheduler with a program table (written against sglang==0.5.23).

``DynasorScheduler`` replaces ``sglang.srt.managers.scheduler.Scheduler`` through SGLang's plugin
hook registry. It keeps SGLang's whole event loop and only reports request lifecycle events to
the pure-Python ``ProgramTable``:

- arrival: ``_create_generation_req`` (SGLang's documented extension point) and
  ``_add_request_to_queue`` (requeue after retraction);
- admission: every request of the batch returned by ``_get_new_batch_prefill_raw``;
- progress and normal finish: ``stream_output`` of the output streamer, called every step;
- ends outside the stream (aborted while queued, rejected): ``send_abort_output``.

The table reaches the main process inside ``get_internal_state`` (``/server_info`` shows it too),
one dict per data-parallel rank.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Optional

from sglang.srt.managers import scheduler as sgl_scheduler
from sglang.srt.managers.schedule_batch import FINISH_ABORT, Req
from sglang.srt.managers.scheduler_components.output_streamer import SchedulerOutputStreamer

from dynasor.scheduler.ordering import Policy, StarvationGuard
from dynasor.scheduler.program_table import ProgramTable
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.eviction import EvictionHooks
from dynasor.srt.metrics import ProgramMetrics
from dynasor.srt.sampler_hooks import TokenStatsHooks
from dynasor.srt.scheduling import ProgramScheduling
from dynasor.tags import tag_of

logger = logging.getLogger(__name__)

SGLANG_VERSION = "0.5.23"
STATE_KEY = "dynasor"
_EXPIRE_EVERY_S = 1.0


class ProgramTracker:
    """Turns SGLang ``Req`` objects into ``ProgramTable`` events (and program metrics)."""

    def __init__(self, table: ProgramTable) -> None:
        self.table = table
        self.metrics: Optional[ProgramMetrics] = None
        self._next_expire = 0.0

    def on_new_req(self, req: Req) -> None:
        tag = tag_of({"custom_params": req.sampling_params.custom_params})
        # max_new_tokens == 0: prefill-only copies (n > 1 warm-up, frontend prefix commits), not work.
        if tag is not None and req.sampling_params.max_new_tokens != 0:
            started = self.table.on_arrival(
                req.rid, tag.program_id, len(req.origin_input_ids), time.time(), token_stats=tag.return_entropy,
                max_new_tokens=req.sampling_params.max_new_tokens, remaining_work=tag.remaining_work,
            )
            if started and self.metrics is not None:
                self.metrics.on_started()

    def on_queued(self, req: Req) -> None:
        if req.rid in self.table.requests:
            self.table.on_requeued(req.rid, time.time())
        else:
            self.on_new_req(req)

    def on_prefill_batch(self, reqs: list[Req]) -> None:
        now = time.time()
        for req in reqs:
            self.table.on_admitted(req.rid, now)

    def on_stream(self, reqs: list[Req]) -> None:
        now = time.time()
        requests = self.table.requests
        ProgramScheduling.rate.add(len(reqs), now)
        for req in reqs:
            if req.rid not in requests:
                continue
            self.table.on_progress(req.rid, len(req.output_ids), now)
            if req.finished():
                self.on_finished(req.rid, isinstance(req.finished_reason, FINISH_ABORT), now)
        self.maybe_expire(now)

    def on_ended_outside_stream(self, req: Req) -> None:
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
            self._next_expire = now + _EXPIRE_EVERY_S


class ProgramAwareOutputStreamer(SchedulerOutputStreamer):
    """SGLang's output streamer that also reports progress to the program tracker."""

    program_tracker: Optional[ProgramTracker] = None

    def stream_output(self, reqs: list[Req], return_logprob: bool, skip_req: Optional[Req] = None):
        super().stream_output(reqs, return_logprob, skip_req)
        if self.program_tracker is not None:
            self.program_tracker.on_stream(reqs)


class DynasorScheduler(sgl_scheduler.Scheduler):
    """SGLang's scheduler plus the program table."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = DynasorServerConfig.from_env()
        self.program_table = ProgramTable(
            ttl=config.program_ttl, max_done_programs=config.max_done_programs,
            confidence_window=config.confidence_window, key_secret=config.key_secret_bytes,
        )
        self.program_tracker = ProgramTracker(self.program_table)
        TokenStatsHooks.install(self.program_table, config.entropy_topk)
        ProgramScheduling.install(
            self.program_table, Policy(config.schedule_policy),
            StarvationGuard(config.starvation_factor, config.starvation_floor_s, config.starvation_cap_s),
        )
        if config.eviction == "program":
            EvictionHooks.install(self.program_table.is_live)
        super().__init__(*args, **kwargs)
        # One exporting scheduler per engine (SGLang's own rule), or TP ranks would multiply the counts.
        collector = getattr(self, "metrics_collector", None)
        if collector is not None and self.metrics_reporter.current_scheduler_metrics_enabled:
            self.program_tracker.metrics = ProgramScheduling.metrics = ProgramMetrics(dict(collector.labels))
        if not self.spec_algorithm.is_none():
            TokenStatsHooks.table = None  # speculative verify bypasses Sampler.forward: no per-token stats
            logger.warning("Dynasor: per-token entropy is off with speculative decoding (%s)", self.spec_algorithm)
        logger.info(
            "Dynasor active in scheduler pid=%d (sglang %s): program table on, program ttl %.0fs, "
            "schedule policy %s, eviction %s",
            os.getpid(), SGLANG_VERSION, config.program_ttl, config.schedule_policy, config.eviction,
        )

    def get_output_streamer_class(self) -> type[SchedulerOutputStreamer]:
        return ProgramAwareOutputStreamer

    def init_output_streamer(self) -> None:
        super().init_output_streamer()
        self.output_streamer.program_tracker = self.program_tracker

    def _create_generation_req(self, recv_req: Any, *args: Any, **kwargs: Any) -> Req:
        req = super()._create_generation_req(recv_req, *args, **kwargs)
        self.program_tracker.on_new_req(req)
        return req

    def _add_request_to_queue(self, req: Req, is_retracted: bool = False) -> None:
        self.program_tracker.on_queued(req)
        super()._add_request_to_queue(req, is_retracted)

    def _get_new_batch_prefill_raw(self, *args: Any, **kwargs: Any):
        batch, running_batch = super()._get_new_batch_prefill_raw(*args, **kwargs)
        if batch is not None:
            self.program_tracker.on_prefill_batch(batch.reqs)
        return batch, running_batch

    def send_abort_output(self, abort_req: Any, req: Req) -> None:
        super().send_abort_output(abort_req, req)
        self.program_tracker.on_ended_outside_stream(req)

    def get_internal_state(self, recv_req: Any):
        out = super().get_internal_state(recv_req)
        now = time.time()
        self.program_tracker.maybe_expire(now)
        out.internal_state[STATE_KEY] = {
            "sglang_version": SGLANG_VERSION,
            "schedule_policy": ProgramScheduling.policy.value,
            "decode_rate": ProgramScheduling.rate.rate(default=0.0),
            "programs": self.program_table.snapshot(now),
        }
        return out
