"""Per-token entropy computed in SGLang's sampling step reaches meta_info and the program table,
for the requests that ask for it (``return_entropy``), and only for them."""

import asyncio
import json
import math

import httpx
import pytest

from dynasor.client import AsyncDynasorClient

GREEDY = {"temperature": 0.0}
KEYS = ("entropy", "sampling_entropy", "topk_confidence")


def asking(pid: str) -> dict:
    """The tag of a request of program ``pid`` that asks for its token statistics."""
    return {"program_id": pid, "return_entropy": True}


async def test_one_finite_value_per_output_token(url):
    async with AsyncDynasorClient(url) as client:
        pid = client.new_program()
        params = {"max_new_tokens": 12, "temperature": 0.9, "ignore_eos": True}
        out, tagged, plain = await asyncio.gather(  # one batch: asking, tagged without asking, untagged
            client.generate("Write about the sea.", params, program=asking(pid)),
            client.generate("Write about the sky.", params, program=pid),
            client.generate("Write about the land.", params))
        meta = out["meta_info"]
        for key in KEYS:
            assert len(meta[key]) == meta["completion_tokens"] == 12
            assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in meta[key])
        assert not any(key in plain["meta_info"] or key in tagged["meta_info"] for key in KEYS)
        off = await client.generate("Write about the sea.", {"max_new_tokens": 4},
                                    program={"program_id": pid, "return_entropy": False})
        assert not any(key in off["meta_info"] for key in KEYS)
        summary = await client.program(pid)
        assert [s["tokens"] for s in summary["finished_request_token_stats"]] == [12]  # only the one that asked


async def test_sure_continuation_has_lower_entropy_than_free_form(url):
    async with AsyncDynasorClient(url) as client:
        pid = client.new_program()
        params = {**GREEDY, "max_new_tokens": 10}
        sure = await client.generate("1, 2, 3, 4, 5, 6, 7, 8,", params, program=asking(pid))
        free = await client.generate("Here is a poem about my favourite colour:", params, program=asking(pid))
        mean = lambda out: sum(out["meta_info"]["entropy"]) / len(out["meta_info"]["entropy"])  # noqa: E731
        print(f"\n[entropy] sure {mean(sure):.3f} nats ({sure['text']!r}), free {mean(free):.3f} nats ({free['text']!r})")
        assert mean(sure) < mean(free)
        assert all(v == 0.0 for v in sure["meta_info"]["sampling_entropy"])  # greedy: one argmax, T -> 0


@pytest.mark.parametrize("temperature", [0.0, 0.7])
async def test_values_match_a_recomputation_from_full_top_logprobs(url, temperature):
    """With top_logprobs_num = vocab size the returned logprobs are the whole distribution."""
    async with AsyncDynasorClient(url) as client:
        info = await client.get("/server_info")
        vocab = info.get("vocab_size") or 49152
        out = await client.generate(
            "The capital of France is", {"temperature": temperature, "max_new_tokens": 3},
            program=asking(client.new_program()), return_logprob=True, top_logprobs_num=vocab,
        )
        meta = out["meta_info"]
        for step, top in enumerate(meta["output_top_logprobs"]):
            logprobs = [lp for lp, _, _ in top if lp is not None and lp > -1e30]
            recomputed = -sum(math.exp(lp) * lp for lp in logprobs)
            if temperature == 0.0:  # SGLang's greedy logprobs are at T = 1
                assert meta["entropy"][step] == pytest.approx(recomputed, abs=2e-3)
                top20 = sorted(logprobs, reverse=True)[:20]
                assert meta["topk_confidence"][step] == pytest.approx(-sum(top20) / 20, abs=2e-3)
            else:  # sampled rows: logprobs are at the request temperature
                assert meta["sampling_entropy"][step] == pytest.approx(recomputed, abs=2e-3)


async def test_streamed_chunks_carry_entropy(url):
    async with AsyncDynasorClient(url) as client:
        body = {"text": "Tell me a story.", "stream": True,
                "sampling_params": {"max_new_tokens": 8, "temperature": 0.8, "ignore_eos": True,
                                    "custom_params": {"dynasor": asking(client.new_program())}}}
    lengths, last = [], None
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        async with http.stream("POST", "/generate", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    last = json.loads(line[6:])
                    lengths.append(len(last["meta_info"]["entropy"]))
    assert len(lengths) >= 2 and lengths == sorted(lengths)
    assert lengths[-1] == last["meta_info"]["completion_tokens"] == 8


async def test_program_table_aggregates_token_stats(url):
    async with AsyncDynasorClient(url) as client:
        pid = client.new_program()
        outs = [await client.generate(p, {"max_new_tokens": 6, "temperature": 0.8, "ignore_eos": True},
                                  program=asking(pid))
                for p in ("Alpha beta", "Gamma delta")]
        summary = await client.program(pid)
        values = [v for o in outs for v in o["meta_info"]["entropy"]]
        assert summary["mean_entropy"] == pytest.approx(sum(values) / len(values), rel=1e-6)
        stats = summary["finished_request_token_stats"]
        assert sorted(s["tokens"] for s in stats) == [6, 6]
        confidences = {round(sum(o["meta_info"]["topk_confidence"]) / 6, 6) for o in outs}
        assert {round(s["lowest_window_confidence"], 6) for s in stats} == confidences  # one window < 2048


def test_openai_endpoints_return_token_stats_when_tagged(url):
    from openai import OpenAI

    from dynasor.core.tag import new_program_id

    client = OpenAI(base_url=url + "/v1", api_key="unused")
    model = client.models.list().data[0].id
    tag = {"custom_params": {"dynasor": asking(new_program_id())}}
    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=6, extra_body=tag
    )
    stats = chat.choices[0].model_extra["token_stats"]
    assert set(stats) == set(KEYS)
    assert all(len(stats[k]) == chat.usage.completion_tokens for k in KEYS)

    completion = client.completions.create(model=model, prompt="1, 2, 3,", max_tokens=5, n=2, temperature=0.8,
                                           extra_body=tag)
    assert len(completion.choices) == 2
    for choice in completion.choices:
        assert len(choice.model_extra["token_stats"]["entropy"]) >= 1
    plain = client.completions.create(model=model, prompt="1, 2, 3,", max_tokens=5)
    assert "token_stats" not in (plain.choices[0].model_extra or {})
    quiet = client.completions.create(model=model, prompt="1, 2, 3,", max_tokens=5,
                                      extra_body={"custom_params": {"dynasor": {"program_id": new_program_id()}}})
    assert "token_stats" not in (quiet.choices[0].model_extra or {})  # tagged, not asking


async def test_a_confidence_stop_ends_the_request_early_and_frees_its_kv(url):
    """stop_below_confidence above anything the model reaches ends the request one token after its
    first full window (finish reason abort "low_confidence", KV back to idle); one below everything
    runs to max_new_tokens."""
    async with AsyncDynasorClient(url) as client:
        idle = (await client.load()).used_tokens
        pid = client.new_program()
        params = {"max_new_tokens": 48, "temperature": 0.0, "ignore_eos": True}
        high, low = await asyncio.gather(*[
            client.generate(f"Story {i}: once upon a time", params,
                            program={"program_id": pid, "confidence_window": 4, "stop_below_confidence": threshold})
            for i, threshold in enumerate((1e9, 1e-9))])
        summary = await client.program(pid)
        used = [(await client.load()).used_tokens]
        while used[-1] != idle and len(used) < 100:
            await asyncio.sleep(0.05)
            used.append((await client.load()).used_tokens)
    meta = high["meta_info"]
    print(f"\n[confidence stop] {meta['finish_reason']} after {meta['completion_tokens']} tokens; "
          f"the other: {low['meta_info']['finish_reason']} after {low['meta_info']['completion_tokens']}")
    assert meta["finish_reason"]["type"] == "abort" and meta["finish_reason"]["message"] == "low_confidence"
    assert 4 <= meta["completion_tokens"] <= 6 and len(meta["topk_confidence"]) == meta["completion_tokens"]
    assert low["meta_info"]["finish_reason"]["type"] == "length" and low["meta_info"]["completion_tokens"] == 48
    assert summary["low_confidence_stops"] == 1 and summary["requests"]["aborted"] == 1
    assert used[-1] == idle, f"KV in use {used[-1]} tokens, idle was {idle}"
