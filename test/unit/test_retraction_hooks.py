"""``--dynasor-retraction program`` in SGLang's decode retraction order (srt/retraction_hooks.py), on
the real hook function with a real program table and stand-ins for SGLang's requests; that the
target exists in the installed SGLang is the hook self-check's (test_hooks.py)."""

from types import SimpleNamespace

from dynasor.srt import hooks
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.context import SchedulerContext, activate_context
from dynasor.srt.retraction_hooks import order_retraction_by_program


def req(rid, output, max_new=1000):
    return SimpleNamespace(rid=rid, output_ids=[0] * output, sampling_params=SimpleNamespace(max_new_tokens=max_new))


def sglang_order(reqs):
    """SGLang's length policy: most preferred to keep first (most output), retraction pops the end."""
    return sorted(range(len(reqs)), key=lambda i: len(reqs[i].output_ids), reverse=True)


def test_program_by_program_the_one_with_most_remaining_work_gives_way_first():
    context = SchedulerContext(DynasorServerConfig(retraction="program"))
    table = context.table
    # X: 3 branches, 3000 tokens left by its hint; Y: 1 branch, 100 left; u: untagged, 500 of budget left
    for rid in ("x0", "x1", "x2"):
        table.on_arrival(rid, "X", 100, 0.0, max_new_tokens=1000, remaining_work=3000.0)
    table.on_arrival("y0", "Y", 100, 0.0, max_new_tokens=1000, remaining_work=100.0)
    reqs = [req("x0", 50), req("y0", 5), req("x1", 40), req("u", 500), req("x2", 60)]
    assert sglang_order(reqs)[-1] == 1  # SGLang alone retracts y0 first (fewest output tokens)
    activate_context(context)
    try:
        order = order_retraction_by_program(sglang_order, reqs)
    finally:
        activate_context(None)
    give_way = [reqs[i].rid for i in reversed(order)]
    # X first (fewest output first within it, as SGLang), then the untagged request, then Y
    assert give_way == ["x1", "x0", "x2", "u", "y0"]
    assert sorted(order) == list(range(len(reqs)))


def test_sglang_order_is_kept_without_the_flag_or_outside_a_dynasor_scheduler():
    reqs = [req("a", 5), req("b", 50)]
    assert order_retraction_by_program(sglang_order, reqs) == [1, 0]  # no context: stock SGLang
    activate_context(SchedulerContext(DynasorServerConfig()))
    try:
        assert order_retraction_by_program(sglang_order, reqs) == [1, 0]
    finally:
        activate_context(None)
    on = {h.target for h in hooks.active_hooks(DynasorServerConfig(retraction="program"))}
    off = {h.target for h in hooks.active_hooks(DynasorServerConfig())}
    assert on - off == {"sglang.srt.managers.schedule_batch.ScheduleBatch._get_decode_retraction_order"}
