"""Dynasor modes of the OpenAI endpoints, through the real ``openai`` client against the live server.

cot uses test_cot's two-shot "Let me check again" prompt, greedy with ignore_eos, so the small model
keeps re-verifying 2 + 2 = 4 (a plain run spends its whole budget) while the probes agree early. sc uses
test_self_consistency's three-shot prompt at temperature 0.1, so the detection samples agree; more
samples than the server's running slots, so some are still queued when the program stops.
"""

import asyncio
import json

import httpx
import openai
import pytest

from .conftest import MAX_RUNNING
from .test_cot import SELF_DOUBT_SHOTS
from .test_self_consistency import THREE_SHOT

COT_PROMPT = SELF_DOUBT_SHOTS + "Q: What is 2 + 2?\nA:"
BUDGET = 384  # a probe exit at chunk 6 still costs less: 6×32 reasoning + ≤32 aborted + 6×20 probe tokens


def _clients(url: str) -> tuple[openai.OpenAI, openai.AsyncOpenAI, str]:
    sync = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    model = sync.models.list().data[0].id
    return sync, openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120), model


async def test_cot_mode_returns_a_boxed_answer_with_fewer_tokens_than_a_plain_run(url):
    _, client, model = _clients(url)
    # ignore_eos: a plain run spends the whole budget (greedy output still varies with batch
    # composition on CPU, so without it the plain run sometimes ends after ~70 tokens)
    common = dict(model=model, prompt=COT_PROMPT, max_tokens=BUDGET, temperature=0)
    plain, cot = await asyncio.gather(
        client.completions.create(**common, extra_body={"ignore_eos": True}),
        client.completions.create(**common, extra_body={
            "ignore_eos": True, "dynasor": {"mode": "cot", "probe_interval": 32, "window": 3}}),
    )
    report, usage = cot.model_extra["dynasor"], cot.usage
    print(f"\n[openai cot] exit {report['exit']} after {report['chunks']} chunks, answer {report['answer']!r}, "
          f"completion tokens {usage.completion_tokens} (probes {usage.model_extra['probe_tokens']}) vs plain "
          f"{plain.usage.completion_tokens}; aborted {report['aborted_requests']}")
    assert report["mode"] == "cot" and report["exit"] == "probe" and report["stopped_early"]
    assert report["answer"] and f"\\boxed{{{report['answer']}}}" in cot.choices[0].text
    assert cot.choices[0].finish_reason == "stop"
    assert usage.completion_tokens < plain.usage.completion_tokens
    assert usage.completion_tokens == report["reasoning_tokens"] + report["probe_tokens"]
    assert usage.model_extra["probe_tokens"] == report["probe_tokens"] > 0
    assert usage.model_extra["baseline_tokens"] == BUDGET and usage.prompt_tokens == plain.usage.prompt_tokens
    assert "dynasor" not in (plain.model_extra or {}) and "probe_tokens" not in (plain.usage.model_extra or {})


async def test_sc_mode_stops_early_on_an_easy_problem(url):
    _, client, model = _clients(url)
    n = 2 * MAX_RUNNING
    out = await client.completions.create(
        model=model, prompt=THREE_SHOT + "Q: What is 3 + 4?\nA:", max_tokens=24, temperature=0.1, stop=["\n"],
        extra_body={"dynasor": {"mode": "sc", "n": n, "detect_at": 5, "threshold": 0.7}})
    report, usage = out.model_extra["dynasor"], out.usage
    print(f"\n[openai sc] exit {report['exit']}, answer {report['answer']!r}, certaindex {report['certaindex']:.2f}, "
          f"{len(report['samples'])}/{n} samples, aborted {report['aborted_requests']}, tokens "
          f"{usage.completion_tokens} vs baseline {usage.model_extra['baseline_tokens']}")
    assert report["mode"] == "sc" and report["exit"] == "certaindex" and report["stopped_early"]
    assert report["certaindex_at_detection"] >= 0.7 and report["answer"] is not None
    assert 5 <= len(report["samples"]) < n and report["aborted_requests"] >= 1
    assert len(report["samples"]) + report["aborted_requests"] == n
    assert report["answer"] in out.choices[0].text
    assert usage.completion_tokens < usage.model_extra["baseline_tokens"]
    assert usage.model_extra["probe_tokens"] == 0



async def test_sc_mode_with_deepconf_online_reports_the_threshold_and_the_engine_stops(url):
    """``dynasor.confidence: "online"``: the warm-up samples set the threshold, the engine ends later
    samples below it (detect_at = n, so certaindex never stops the program: every abort is a
    low-confidence stop)."""
    _, client, model = _clients(url)
    n = 12
    out = await client.completions.create(
        model=model, prompt=THREE_SHOT + "Q: What is 4821 + 7759?\nA:", max_tokens=24, temperature=1.5,
        extra_body={"ignore_eos": True,
                    "dynasor": {"mode": "sc", "n": n, "detect_at": n, "confidence": "online", "eta": 0.05,
                                "warmup": 3, "confidence_window": 8}})
    report = out.model_extra["dynasor"]
    print(f"\n[openai sc deepconf] threshold {report['confidence_threshold']}, "
          f"{report['low_confidence_stops']} low-confidence stops, {len(report['samples'])} samples")
    assert (report["confidence"], report["eta"], report["warmup"], report["confidence_window"]) == ("online", 0.05, 3, 8)
    assert isinstance(report["confidence_threshold"], float) and report["exit"] == "cap"
    assert report["low_confidence_stops"] == report["aborted_requests"]
    assert len(report["samples"]) + report["aborted_requests"] == n and len(report["samples"]) >= 3
    assert report["answer"] in [s["answer"] for s in report["samples"]]

def test_cot_streaming_yields_incremental_chunks_then_the_answer_and_usage(url):
    client, _, model = _clients(url)
    stream = client.completions.create(
        model=model, prompt=COT_PROMPT, max_tokens=192, temperature=0, stream=True,
        stream_options={"include_usage": True},
        extra_body={"dynasor": {"mode": "cot", "probe_interval": 16, "window": 2}})
    chunks = list(stream)
    pieces = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    report = final[-1].model_extra["dynasor"]
    print(f"\n[openai stream] {len(pieces)} text chunks, exit {report['exit']}, answer {report['answer']!r}")
    assert len(pieces) >= 3 and len(final) == 1
    assert report["chunks"] >= 2 and len(pieces) >= report["chunks"]
    if report["exit"] == "probe":
        assert f"\\boxed{{{report['answer']}}}" in pieces[-1]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens > 0 and usage.model_extra["probe_tokens"] > 0


def test_chat_streaming_with_an_effort_preset(url):
    client, _, model = _clients(url)
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2 + 2?"}], max_tokens=64, temperature=0,
        stream=True, extra_body={"dynasor": {"effort": "high"}})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    report = final[-1].model_extra["dynasor"]
    assert text and report["mode"] == "cot" and report["effort"] == "high"
    assert (report["probe_interval"], report["window"]) == (64, 2)  # the public "high" saving preset
    assert report["exit"] in ("budget", "finished") and report["reasoning_tokens"] <= 64


@pytest.mark.parametrize("body, field", [
    ({"dynasor": {"mode": "tot"}}, "dynasor.mode"),
    ({"dynasor": {"mode": "sc", "n": 0}}, "dynasor.n"),
    ({"dynasor": {"mode": "sc", "n": 4, "detect_at": 5}}, "dynasor.detect_at"),
    ({"dynasor": {"mode": "sc", "threshold": 1.5}}, "dynasor.threshold"),
    ({"dynasor": {"mode": "sc", "confidence": "high"}}, "dynasor.confidence"),
    ({"dynasor": {"mode": "sc", "confidence": "online", "eta": 0}}, "dynasor.eta"),
    ({"dynasor": {"mode": "sc", "n": 4, "confidence": "online", "warmup": 5}}, "dynasor.warmup"),
    ({"dynasor": {"mode": "sc", "confidence": "online", "confidence_window": 0}}, "dynasor.confidence_window"),
    ({"dynasor": {"effort": "max"}}, "dynasor.effort"),
    ({"dynasor": {"mode": "cot", "window": "3"}}, "dynasor.window"),
    ({"dynasor": {"mode": "cot", "banana": 1}}, "dynasor.banana"),
    ({"dynasor": "cot"}, "dynasor"),
    ({"dynasor": {"mode": "sc"}, "n": 2}, "n"),
])
def test_bad_options_are_rejected_naming_the_field(url, body, field):
    client, _, model = _clients(url)
    extra = {k: v for k, v in body.items() if k != "n"}
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=model, prompt="Q: 1 + 1?\nA:", max_tokens=8, n=body.get("n", 1),
                                  extra_body=extra)
    assert err.value.status_code == 400 and err.value.param == field
    assert err.value.body["message"].startswith(field + " ")
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8,
                                       n=body.get("n", 1), extra_body=extra)
    assert err.value.param == field


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


@pytest.mark.parametrize("path, request_body", [
    ("/v1/completions", {"prompt": "1, 2, 3,", "max_tokens": 6, "temperature": 0}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 6, "temperature": 0}),
])
def test_requests_without_dynasor_are_sglangs(url, path, request_body):
    from sglang.srt.entrypoints.openai.protocol import ChatCompletionResponse, CompletionResponse

    model_cls = CompletionResponse if path == "/v1/completions" else ChatCompletionResponse
    plain = httpx.post(url + path, json=request_body, timeout=120).json()
    null = httpx.post(url + path, json={**request_body, "dynasor": None}, timeout=120).json()
    assert "dynasor" not in plain and "probe_tokens" not in plain["usage"]
    assert _shape(plain) == _shape(null)  # an explicit null is "without dynasor"
    # exactly SGLang's serialisation of its own response model
    assert plain == json.loads(model_cls.model_validate(plain).model_dump_json(by_alias=True))
