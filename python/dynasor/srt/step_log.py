"""One JSON line per scheduling step, to find where a scheduler's time goes (sglang==0.5.23).

Armed by ``--dynasor-step-log PATH`` (off by default: it times every step). Each step that ran a
batch writes: wall time, prefill or decode, batch size, new and cached prompt tokens of a prefill,
the tokens in the batch's contexts (prompt + output so far, what attention reads), waiting and
running requests, the requests admitted (prefill) and their programs, and seconds spent in SGLang's
``get_next_batch_to_run`` (scheduling, admission), ``run_batch`` (the forward pass) and
``process_batch_result``, and inside those in Dynasor's queue ordering, Dynasor's progress
tracking, the radix cache's methods (whichever tree core serves them) and Python's garbage
collector. Nothing here changes
what the scheduler does; ``benchmark/scheduler/bench_burst.py`` reads the lines.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

# Radix-cache methods a scheduling step calls (matching, inserting, locking, evicting).
TREE_METHODS = ("match_prefix", "checkpoint", "finish", "evict", "evict_for_alloc", "inc_lock_ref",
                "dec_lock_ref", "lock", "unlock", "cache_finished_req", "cache_unfinished_req", "insert")
PHASES = ("schedule_s", "run_s", "result_s")
INNER = ("order_s", "track_s", "tree_s", "gc_s")


class StepLog:
    """Times one scheduler process's steps and appends them to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
        self.current: dict[str, float] = dict.fromkeys(PHASES + INNER, 0.0)
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """Python's garbage collector pauses whatever step is running: counted apart."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.current["gc_s"] += time.perf_counter() - self._gc_started

    def timed(self, fn: Callable[..., Any], bucket: str) -> Callable[..., Any]:
        """``fn`` with its time added to ``bucket`` of the current step."""
        current = self.current

        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                current[bucket] += time.perf_counter() - start

        return run

    def instrument(self, owner: Any, names: tuple[str, ...], bucket: str) -> None:
        """Time the methods ``names`` of the object ``owner`` (those it has) into ``bucket``."""
        for name in names:
            method = getattr(owner, name, None)
            if callable(method):
                setattr(owner, name, self.timed(method, bucket))

    def end_step(self, batch: Any, waiting: int, running: int, program_of: Callable[[str], str | None]) -> None:
        """Write the step; ``program_of`` names the program (its public key) of an admitted request."""
        is_prefill = batch.forward_mode.is_extend()
        record: dict[str, Any] = {"t": time.time(), "mode": "prefill" if is_prefill else "decode",
                                  "batch_size": len(batch.reqs), "waiting": waiting, "running": running,
                                  "context_tokens": sum(len(req.origin_input_ids) + len(req.output_ids)
                                                        for req in batch.reqs)}
        if is_prefill:
            record["new_tokens"] = int(sum(batch.extend_lens or []))
            record["cached_tokens"] = int(sum(batch.prefix_lens or []))
            record["admitted"] = [req.rid for req in batch.reqs]
            record["admitted_programs"] = [program_of(req.rid) for req in batch.reqs]
        record.update({key: round(value, 6) for key, value in self.current.items()})
        self._file.write(json.dumps(record) + "\n")
        for key in self.current:
            self.current[key] = 0.0


def read_step_log(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
