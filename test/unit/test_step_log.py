"""The scheduler's step log: timed buckets per step, one JSON line per step, and what the burst
benchmark reads from it."""

import time
from types import SimpleNamespace

from benchmark.scheduler.bench_burst import step_summary
from dynasor.srt.step_log import StepLog, read_step_log


def batch(prefill: bool, size: int):
    return SimpleNamespace(forward_mode=SimpleNamespace(is_extend=lambda: prefill),
                           reqs=[SimpleNamespace(rid=f"r{i}", origin_input_ids=[1, 2], output_ids=[3])
                                 for i in range(size)],
                           extend_lens=[5] * size, prefix_lens=[3] * size)


def test_each_step_writes_its_buckets_and_starts_the_next_from_zero(tmp_path):
    log = StepLog(str(tmp_path / "steps.jsonl"))
    holder = SimpleNamespace(reorder=lambda: time.sleep(0.01), untouched=1)
    log.instrument(holder, ("reorder", "untouched", "absent"), "order_s")
    holder.reorder()
    log.end_step(batch(True, 2), waiting=4, running=2, program_of={"r0": "P"}.get)
    log.end_step(batch(False, 3), waiting=0, running=3, program_of={"r0": "P"}.get)
    first, second = read_step_log(str(tmp_path / "steps.jsonl"))
    assert first["mode"] == "prefill" and first["new_tokens"] == 10 and first["cached_tokens"] == 6
    assert first["admitted"] == ["r0", "r1"] and first["admitted_programs"] == ["P", None]
    assert first["order_s"] >= 0.01
    assert second["mode"] == "decode" and second["batch_size"] == 3 and second["order_s"] == 0.0
    assert second["context_tokens"] == 9
    assert holder.untouched == 1  # only callables are wrapped


def test_burst_summary_counts_the_tail_below_the_running_cap():
    base = {"run_s": 1.0, "schedule_s": 0.1, "result_s": 0.0, "order_s": 0.01, "track_s": 0.0, "tree_s": 0.02}
    steps = [{**base, "mode": "prefill", "batch_size": 8, "waiting": 4, "new_tokens": 80, "cached_tokens": 20},
             {**base, "mode": "decode", "batch_size": 8, "waiting": 4},
             {**base, "mode": "decode", "batch_size": 3, "waiting": 0},
             {**base, "mode": "decode", "batch_size": 1, "waiting": 0}]
    s = step_summary(steps, cap=8)
    assert (s["decode_steps"], s["tail_decode_steps"], s["tail_mean_batch"]) == (3, 2, 2.0)
    assert s["prefill_tokens"] == 80 and s["cached_tokens"] == 20 and s["run_s"] == 4.0
