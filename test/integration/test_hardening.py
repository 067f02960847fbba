"""Lose nothing: an abort is final; a client that leaves takes its program's requests with it.
(How a server that cannot start fails: ``test_startup.py``.)"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from dynasor.client import AsyncDynasorClient

LONG = {"max_new_tokens": 400, "temperature": 0.8, "ignore_eos": True}


async def delayed(coro, seconds: float):
    await asyncio.sleep(seconds)
    return await coro


async def test_an_abort_is_final_for_requests_sent_around_and_after_it(url):
    async with AsyncDynasorClient(url) as client:
        pid = client.new_program()
        early = [asyncio.create_task(client.generate(f"Story {i}:", LONG, program=pid)) for i in range(2)]
        await asyncio.sleep(1.0)
        around = [asyncio.create_task(delayed(client.generate(f"Tale {i}:", LONG, program=pid), d))
                  for i, d in enumerate((0.0, 0.02, 0.1, 0.3))]
        reply = await client.abort_program(pid)
        started = time.monotonic()
        late = await client.generate("Once more:", LONG, program=pid)
        late_seconds = time.monotonic() - started
        outs = await asyncio.wait_for(asyncio.gather(*early, *around), timeout=60)
    assert reply["aborted_requests"] >= 2
    for out in [*outs, late]:
        assert out["meta_info"]["finish_reason"]["type"] == "abort", out["meta_info"]["finish_reason"]
    assert late["meta_info"]["finish_reason"]["message"] == "program aborted"
    assert late["meta_info"]["completion_tokens"] <= 1 and late_seconds < 5
    print(f"\n[abort final] a request sent after the abort ended in {late_seconds:.2f}s "
          f"({late['meta_info']['completion_tokens']} tokens)")


async def test_an_abort_is_final_for_tagged_openai_requests(url):
    api = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none")
    async with AsyncDynasorClient(url) as client:
        pid = client.new_program()
        tag = {"custom_params": {"dynasor": {"program_id": pid}}, "ignore_eos": True}
        messages = [{"role": "user", "content": "Tell a long story."}]
        in_flight = asyncio.create_task(api.chat.completions.create(model="default", messages=messages,
                                                                    max_tokens=400, extra_body=tag))
        await asyncio.sleep(1.0)
        await client.abort_program(pid)
        interrupted = await asyncio.wait_for(in_flight, timeout=60)
    chat = await api.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hi"}],
                                             max_tokens=200, extra_body=tag)
    completion = await api.completions.create(model="default", prompt="Hi", max_tokens=200, extra_body=tag)
    assert interrupted.choices[0].finish_reason == "abort" and interrupted.usage.completion_tokens < 400
    assert chat.choices[0].finish_reason == "abort" and completion.choices[0].finish_reason == "abort"
    assert chat.usage.completion_tokens <= 1 and completion.usage.completion_tokens <= 1


async def seconds_until_idle(client: AsyncDynasorClient, idle_tokens: int, since: float, limit: float = 30) -> float:
    """Seconds from ``since`` (monotonic) until the engine has nothing running or waiting and the KV in
    use is back to ``idle_tokens``."""
    while time.monotonic() - since < limit:
        load = await client.load()
        if load.running == 0 and load.waiting == 0 and load.used_tokens == idle_tokens:
            return time.monotonic() - since
        await asyncio.sleep(0.05)
    raise TimeoutError(f"engine not idle {limit}s after the client left: {load}")


async def busy(client: AsyncDynasorClient) -> None:
    for _ in range(200):
        if (await client.load()).running:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the request never started running")


@pytest.mark.parametrize("mode", ["sc", "cot"])
async def test_a_dropped_openai_mode_request_ends_its_program(url, mode):
    body = {"model": "default", "messages": [{"role": "user", "content": "Count to one thousand."}],
            "max_tokens": 400, "temperature": 0.8, "ignore_eos": True,  # long enough to still run when the client leaves
            "dynasor": {"mode": "sc", "n": 4, "detect_at": 4} if mode == "sc" else
            {"mode": "cot", "probe_interval": 64, "window": 64}}
    async with AsyncDynasorClient(url) as client, httpx.AsyncClient(base_url=url, timeout=60) as http:
        idle = (await client.load()).used_tokens
        if mode == "sc":  # non-streaming: the client gives up (read timeout) while the samples decode
            task = asyncio.create_task(http.post("/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=3)))
            await busy(client)
            with pytest.raises(httpx.ReadTimeout):
                await task
        else:  # streaming: the client reads the first chunk of reasoning and closes the stream (the role
            # chunk comes before any generation: leaving on it can abort the program before it runs)
            async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                        break  # reasoning text: the program is running, its next chunk already asked for
        left = time.monotonic()
        seconds = await seconds_until_idle(client, idle, left)
    print(f"\n[disconnect] {mode}: engine idle {seconds:.2f}s after the client left")
    assert seconds <= 2.5


async def test_a_dropped_streaming_generate_ends_every_request_of_its_program(url):
    async with AsyncDynasorClient(url) as client, httpx.AsyncClient(base_url=url, timeout=60) as http:
        idle = (await client.load()).used_tokens
        pid = client.new_program()
        siblings = [asyncio.create_task(client.generate(f"Sibling {i}:", LONG, program=pid)) for i in range(2)]
        body = {"text": "Streamed story:", "stream": True,
                "sampling_params": {**LONG, "custom_params": {"dynasor": {"program_id": pid}}}}
        async with http.stream("POST", "/generate", json=body) as response:
            async for _ in response.aiter_lines():
                break
            await busy(client)
        left = time.monotonic()
        outs = await asyncio.wait_for(asyncio.gather(*siblings), timeout=30)
        ended = time.monotonic() - left
        seconds = await seconds_until_idle(client, idle, left)
    assert all(o["meta_info"]["finish_reason"]["type"] == "abort" for o in outs)
    print(f"\n[disconnect] streaming /generate: siblings ended {ended:.2f}s, engine idle {seconds:.2f}s after")
    assert ended <= 2.0 and seconds <= 2.5
