"""SGLang's scheduler with Dynasor's per-process context (written against sglang==0.5.23).

``DynasorScheduler`` replaces ``sglang.srt.managers.scheduler.Scheduler`` through SGLang's plugin
hook registry (``hooks.py``). It keeps SGLang's whole event loop; it builds and activates the
process's ``SchedulerContext`` and reports request lifecycle events to its ``ProgramTracker``:

- arrival: ``_create_generation_req`` (SGLang's documented extension point) and
  ``_add_request_to_queue`` (requeue after retraction);
- admission: every request of the batch returned by ``_get_new_batch_prefill_raw``;
- the queue orderer hears of every request put into and admitted from the waiting queue (it keeps
  the queue in order between steps: ``queue_orderer.py``);
- progress and normal finish: ``stream_output`` of the output streamer, called every step;
- ends outside the stream (aborted while queued, rejected): ``send_abort_output``.

With ``--dynasor-step-log`` it also times every step (``step_log.py``).

A request that the main process marked as belonging to an already aborted program
(``dynasor.core.tag.ABORTED_MARKER``) is ended at once with finish reason ``abort``, the way SGLang
ends a rejected request (its prompt cut to one token, so the step it passes through costs nothing).

The table reaches the main process inside ``get_internal_state`` (``/server_info`` shows it too),
one dict per data-parallel rank.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from sglang.srt.managers import scheduler as sgl_scheduler
from sglang.srt.managers.schedule_batch import FINISH_ABORT, Req
from sglang.srt.managers.scheduler_components.output_streamer import SchedulerOutputStreamer
from sglang.srt.runtime_context import get_parallel

from dynasor.core.scheduler_state import STATE_KEY, SchedulerLoad, SchedulerState
from dynasor.core.tag import ABORTED_MARKER
from dynasor.srt.config import process_config
from dynasor.srt.context import SchedulerContext, activate_context, run_startup_checks
from dynasor.srt.metrics import ProgramMetrics
from dynasor.srt.program_tracker import ProgramTracker
from dynasor.srt.sglang_version import SUPPORTED_SGLANG_VERSION
from dynasor.srt.step_log import TREE_METHODS, StepLog

logger = logging.getLogger(__name__)

PROGRAM_ABORTED = "program aborted"


def end_if_program_aborted(req: Req) -> bool:
    """End a request of an aborted program at once, as an abort (not an error)."""
    custom = req.sampling_params.custom_params
    if not isinstance(custom, dict) or not custom.get(ABORTED_MARKER):
        return False
    req.set_finish_with_abort(PROGRAM_ABORTED)
    req.to_finish = FINISH_ABORT(PROGRAM_ABORTED)  # an abort like any other, not an HTTP error
    return True


class ProgramAwareOutputStreamer(SchedulerOutputStreamer):
    """SGLang's output streamer that also reports progress to the program tracker."""

    program_tracker: ProgramTracker | None = None

    def stream_output(self, reqs: list[Req], return_logprob: bool, skip_req: Req | None = None) -> None:
        super().stream_output(reqs, return_logprob, skip_req)
        if self.program_tracker is not None:
            self.program_tracker.on_stream(reqs)


class DynasorScheduler(sgl_scheduler.Scheduler):
    """SGLang's scheduler plus the program table and the rest of the process's context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = process_config()
        run_startup_checks()  # the hook self-check: refuse to run half-Dynasor
        self.dynasor = SchedulerContext(config)
        activate_context(self.dynasor)
        super().__init__(*args, **kwargs)
        # One exporting scheduler per engine (SGLang's own rule), or TP ranks would multiply the counts.
        collector = getattr(self, "metrics_collector", None)
        if collector is not None and self.metrics_reporter.current_scheduler_metrics_enabled:
            self.dynasor.set_metrics(ProgramMetrics(dict(collector.labels)))
        if not self.spec_algorithm.is_none():
            self.dynasor.token_stats_enabled = False  # speculative verify bypasses Sampler.forward
            logger.warning("Dynasor: per-token entropy is off with speculative decoding (%s)", self.spec_algorithm)
        self.step_log: StepLog | None = None
        if config.step_log:
            self._arm_step_log(StepLog(config.step_log))
        logger.info(
            "Dynasor active in scheduler pid=%d (sglang %s): program table on, program ttl %.0fs, "
            "schedule policy %s, eviction %s",
            os.getpid(), SUPPORTED_SGLANG_VERSION, config.program_ttl, config.schedule_policy, config.eviction,
        )

    def _arm_step_log(self, log: StepLog) -> None:
        """Time this scheduler's steps (instance-level wrappers: nothing runs per step when off)."""
        self.step_log = log
        log.instrument(self.tree_cache, TREE_METHODS, "tree_s")
        log.instrument(self.dynasor.queue, ("reorder",), "order_s")
        log.instrument(self.dynasor.tracker, ("on_stream", "on_prefill_batch"), "track_s")
        log.instrument(self, ("get_next_batch_to_run",), "schedule_s")
        log.instrument(self, ("run_batch",), "run_s")
        process = log.timed(super().process_batch_result, "result_s")

        def process_and_log(batch: Any, *args: Any, **kwargs: Any) -> Any:
            result = process(batch, *args, **kwargs)
            log.end_step(batch, len(self.waiting_queue), len(self.running_batch.reqs), self._program_key_of)
            return result

        setattr(self, "process_batch_result", process_and_log)  # noqa: B010 - an instance-level wrapper
        logger.info("Dynasor: step log to %s", self.dynasor.config.step_log)

    def _program_key_of(self, rid: str) -> str | None:
        program_id = self.dynasor.table.program_of(rid)
        program = self.dynasor.table.get(program_id) if program_id else None
        return program.key if program else None

    @property
    def program_tracker(self) -> ProgramTracker:
        return self.dynasor.tracker

    def get_output_streamer_class(self) -> type[SchedulerOutputStreamer]:
        return ProgramAwareOutputStreamer

    def init_output_streamer(self) -> None:
        super().init_output_streamer()
        self.output_streamer.program_tracker = self.program_tracker

    def _create_generation_req(self, recv_req: Any, *args: Any, **kwargs: Any) -> Req:
        req = super()._create_generation_req(recv_req, *args, **kwargs)
        self.program_tracker.on_new_req(req)
        end_if_program_aborted(req)
        return req

    def _add_request_to_queue(self, req: Req, is_retracted: bool = False) -> None:
        self.program_tracker.on_queued(req)
        super()._add_request_to_queue(req, is_retracted)
        if self.waiting_queue and self.waiting_queue[-1] is req:
            self.dynasor.queue.note_queued(req)

    def _get_new_batch_prefill_raw(self, *args: Any, **kwargs: Any) -> Any:
        batch, running_batch = super()._get_new_batch_prefill_raw(*args, **kwargs)
        if batch is not None:
            self.program_tracker.on_prefill_batch(batch.reqs)
            self.dynasor.queue.note_admitted(batch.reqs)
        return batch, running_batch

    def send_abort_output(self, abort_req: Any, req: Req) -> None:
        super().send_abort_output(abort_req, req)
        self.program_tracker.on_ended_outside_stream(req)

    def get_internal_state(self, recv_req: Any) -> Any:
        out = super().get_internal_state(recv_req)
        now = time.time()
        self.program_tracker.maybe_expire(now)
        load = self.load_inquirer.get_loads()  # taken now (SGLang's /v1/loads may be a snapshot of minutes ago)
        out.internal_state[STATE_KEY] = SchedulerState(
            sglang_version=SUPPORTED_SGLANG_VERSION,
            dp_rank=get_parallel().dp_rank or 0,
            load=SchedulerLoad(running=load.num_running_reqs, waiting=load.num_waiting_reqs,
                               used_tokens=load.num_used_tokens, cached_tokens=self.tree_cache.evictable_size(),
                               capacity_tokens=self.max_total_num_tokens,
                               queue_reorders=self.dynasor.queue.reorders,
                               queue_full_reranks=self.dynasor.queue.full_reranks),
            schedule_policy=self.dynasor.queue.policy.value,
            full_rerank_reasons=dict(self.dynasor.queue.full_rerank_reasons),
            decode_rate=self.dynasor.rate.rate(default=0.0),
            programs=self.dynasor.table.snapshot(now),
        ).to_json()
        return out
