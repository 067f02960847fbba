"""The program policy's AROUND hook on SGLang's ``calc_priority`` (srt/queue_order_hooks.py), on the
real hook function with a real program table and stand-ins for SGLang's policy and requests: which
of SGLang's policies runs for a queue, and that the queue leaves in program order either way. That
the target exists in the installed SGLang is the hook self-check's (test_hooks.py)."""

import time
from types import SimpleNamespace

import pytest
from sglang.srt.managers.schedule_policy import CacheAgnosticPolicy, CacheAwarePolicy

from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.context import SchedulerContext, activate_context
from dynasor.srt.queue_order_hooks import order_with_programs
from dynasor.srt.queue_orderer import PREFIX_MATCH_MAX_WAITING


def req(rid: str, max_new_tokens: int = 16):
    return SimpleNamespace(rid=rid, num_matched_prefix_tokens=0,
                           sampling_params=SimpleNamespace(max_new_tokens=max_new_tokens),
                           time_stats=SimpleNamespace(wait_queue_entry_time=time.perf_counter()))


class RecordingCalcPriority:
    """SGLang's ``calc_priority`` as the hook sees it: records the policy it ran under and reverses
    the queue (so a test sees that the program order is written after it)."""

    def __init__(self) -> None:
        self.ran_as: list[object] = []

    def __call__(self, schedule_policy, waiting_queue):
        self.ran_as.append(schedule_policy.policy)
        waiting_queue.reverse()


@pytest.fixture
def context():
    context = SchedulerContext(DynasorServerConfig())  # gang-sjf
    activate_context(context)
    yield context
    activate_context(None)


def test_a_queue_without_programs_runs_sglang_as_fcfs_and_the_lpm_setting_comes_back(context):
    policy, original = SimpleNamespace(policy=CacheAwarePolicy.LPM), RecordingCalcPriority()
    queue = [req("u0"), req("u1"), req("u2")]
    order_with_programs(original, policy, queue)
    assert original.ran_as == [CacheAgnosticPolicy.FCFS] and policy.policy == CacheAwarePolicy.LPM
    assert [r.rid for r in queue] == ["u0", "u1", "u2"]  # untagged, equal work: arrival order


def test_a_queue_holding_a_program_runs_sglang_as_lpm_then_goes_in_program_order(context):
    now = time.time()
    for i in range(2):
        context.table.on_arrival(f"p{i}", "program-P-0000000001", 4, now=now - 1.0 + 0.1 * i, max_new_tokens=16)
    policy, original = SimpleNamespace(policy=CacheAwarePolicy.LPM), RecordingCalcPriority()
    queue = [req("p0"), req("u0"), req("p1")]
    order_with_programs(original, policy, queue)
    assert original.ran_as == [CacheAwarePolicy.LPM]
    # SJF: the untagged request (16 tokens at most) before the program's 2 x 16, whose branches stay together
    assert [r.rid for r in queue] == ["u0", "p0", "p1"]


def test_above_sglangs_prefix_match_limit_the_queue_is_not_scanned_and_sglang_decides(context):
    policy, original = SimpleNamespace(policy=CacheAwarePolicy.LPM), RecordingCalcPriority()
    queue = [req(f"u{i}") for i in range(PREFIX_MATCH_MAX_WAITING + 1)]
    order_with_programs(original, policy, queue)
    assert original.ran_as == [CacheAwarePolicy.LPM]  # SGLang itself falls back to fcfs past the limit


def test_a_stock_policy_is_left_to_sglang():
    policy, original = SimpleNamespace(policy=CacheAwarePolicy.LPM), RecordingCalcPriority()
    queue = [req("u0"), req("u1")]
    order_with_programs(original, policy, queue)  # no Dynasor context: a stock scheduler
    activate_context(SchedulerContext(DynasorServerConfig(schedule_policy="lpm")))
    try:
        order_with_programs(original, policy, queue)
    finally:
        activate_context(None)
    assert original.ran_as == [CacheAwarePolicy.LPM] * 2 and [r.rid for r in queue] == ["u0", "u1"]
