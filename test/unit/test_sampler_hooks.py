"""The sampling-step hooks compute token statistics for the rows whose request asked, and run no
statistics code for a batch where none did (a tagged request without ``return_entropy`` costs
nothing). The real server path is covered by test/integration/test_entropy.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dynasor.srt import sampler_hooks
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.context import SchedulerContext, activate_context

VOCAB = 32


@pytest.fixture
def context():
    ctx = SchedulerContext(DynasorServerConfig())
    activate_context(ctx)
    yield ctx
    activate_context(None)


@pytest.fixture
def computed(monkeypatch):
    """The logits each token_stats call saw."""
    seen: list[torch.Tensor] = []
    real = sampler_hooks.token_stats

    def counting(logits, temperatures, topk):
        seen.append(logits.clone())
        return real(logits, temperatures, topk)

    monkeypatch.setattr(sampler_hooks, "token_stats", counting)
    return seen


def sample_batch(rids: list[str]) -> SimpleNamespace:
    """Run the two hooks around a stand-in sampler on a batch of ``rids``; the logits output."""
    rows = len(rids)
    logits_output = SimpleNamespace(next_token_logits=torch.randn(rows, VOCAB))
    sampling_info = SimpleNamespace(temperatures=torch.full((rows, 1), 0.7), top_ks=torch.full((rows,), 50))
    forward_batch = SimpleNamespace(rids=rids, sampling_info=sampling_info)

    def sampler_forward(sampler, output, info, *args, **kwargs):
        return "sampled"

    def model_runner_sample(runner, output, batch):
        return sampler_hooks.sample_with_token_stats(sampler_forward, None, output, batch.sampling_info)

    assert sampler_hooks.select_token_stats_rows(model_runner_sample, None, logits_output, forward_batch) == "sampled"
    return logits_output


def arrive(ctx: SchedulerContext, rid: str, token_stats: bool) -> None:
    ctx.table.on_arrival(rid, "p" * 32, prompt_tokens=4, now=0.0, token_stats=token_stats)


def test_a_batch_whose_requests_did_not_ask_runs_no_statistics_code(context, computed):
    arrive(context, "a" * 32, token_stats=False)
    arrive(context, "b" * 32, token_stats=False)
    output = sample_batch(["a" * 32, "b" * 32, "untagged"])
    assert computed == [] and not hasattr(output, sampler_hooks.STATS_ATTR)


def test_only_the_rows_that_asked_are_computed_and_filed(context, computed):
    arrive(context, "a" * 32, token_stats=False)
    arrive(context, "b" * 32, token_stats=True)
    output = sample_batch(["a" * 32, "b" * 32, "untagged"])
    assert len(computed) == 1 and computed[0].shape == (1, VOCAB)
    assert torch.equal(computed[0][0], output.next_token_logits[1])
    stats = getattr(output, sampler_hooks.STATS_ATTR)
    assert stats.row(0) is None and stats.row(2) is None and stats.row(1) is not None
    reqs = [SimpleNamespace(rid=rid, customized_info=None, finished=lambda: False, to_finish=None)
            for rid in ("a" * 32, "b" * 32)]
    for i, req in enumerate(reqs):
        sampler_hooks.collect_token_stats(None, None, i, req, output)
    assert reqs[0].customized_info is None
    assert reqs[1].customized_info["entropy"] == [pytest.approx(stats.row(1).entropy)]


def test_the_rows_are_forgotten_after_the_step(context, computed):
    arrive(context, "b" * 32, token_stats=True)
    sample_batch(["b" * 32])
    assert context.token_stats_rows == []
    output = SimpleNamespace(next_token_logits=torch.randn(1, VOCAB))  # a sampler call outside a step
    info = SimpleNamespace(temperatures=torch.ones(1, 1), top_ks=torch.full((1,), 50))
    sampler_hooks.sample_with_token_stats(lambda *a, **k: None, None, output, info)
    assert len(computed) == 1
