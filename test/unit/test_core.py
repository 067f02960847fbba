"""dynasor.core: the helpers with one home (abort of dispatched requests, lowest window mean,
quantile) and the TokenStats field order the responses rely on."""

import asyncio
from types import SimpleNamespace

import pytest

from dynasor.core.abort import abort_when_dispatched, dispatched_by
from dynasor.core.generation import Generation
from dynasor.core.stats import quantile
from dynasor.core.token_stats import TOKEN_STATS_KEYS, TokenStats
from dynasor.core.window import LowestWindowMean, lowest_window_mean


async def test_abort_waits_for_dispatch_and_sends_each_abort_once():
    live = {"a", "b"}
    dispatched = {"a"}
    sent: list[str] = []

    async def dispatch_b_later():
        await asyncio.sleep(0.02)
        dispatched.add("b")

    task = asyncio.create_task(dispatch_b_later())
    count = await abort_when_dispatched(lambda: live, dispatched.__contains__, sent.append, timeout_s=1.0, poll_s=0.001)
    await task
    assert count == 2 and sorted(sent) == ["a", "b"] and sent[0] == "a"  # b only once it was dispatched


async def test_abort_gives_up_at_the_deadline():
    sent: list[str] = []
    count = await abort_when_dispatched(lambda: {"never"}, lambda rid: False, sent.append, timeout_s=0.02, poll_s=0.005)
    assert count == 0 and sent == []


def test_dispatched_by_reads_the_tokenizer_managers_flag():
    manager = SimpleNamespace(rid_to_state={"a": SimpleNamespace(dispatched=True), "b": SimpleNamespace(dispatched=False)})
    assert dispatched_by(manager, "a") and not dispatched_by(manager, "b") and not dispatched_by(manager, "gone")
    assert dispatched_by(SimpleNamespace(), "anything")  # no bookkeeping: every rid counts as dispatched


def test_lowest_window_mean_streaming_equals_whole_sequence():
    values = [5, 4, 3, 1, 8, 0.5, 9]
    stream = LowestWindowMean(3)
    for v in values:
        stream.add(v)
    assert stream.value == pytest.approx(lowest_window_mean(values, 3)) == pytest.approx(8 / 3)
    assert lowest_window_mean([2, 4], 10) == 3 and lowest_window_mean([], 3) is None
    with pytest.raises(ValueError):
        LowestWindowMean(0)


def test_quantile_interpolates_linearly():
    assert quantile([1, 2, 3, 4], 0.5) == 2.5 and quantile([7], 0.9) == 7 and quantile([3, 1, 2], 1.0) == 3
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_token_stats_fields_are_the_response_keys_in_kernel_row_order():
    assert TOKEN_STATS_KEYS == ("entropy", "sampling_entropy", "topk_confidence")
    assert TokenStats(1.0, 2.0, 3.0).values() == (1.0, 2.0, 3.0)


def test_generation_from_a_generate_response():
    out = {"text": "hi", "meta_info": {"completion_tokens": 2, "finish_reason": {"type": "abort"}}}
    generation = Generation.from_response(out)
    assert generation.aborted and generation.completion_tokens == 2 and generation.meta_info is out["meta_info"]
