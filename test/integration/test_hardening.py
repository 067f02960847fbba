"""Fail loudly, lose nothing: the launcher refuses a taken port, an unsupported SGLang and hooks that
did not apply (each before any model loads); an abort is final; a client that leaves takes its
program's requests with it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from dynasor.client import AsyncDynasorClient
from dynasor.server_process import free_port

LONG = {"max_new_tokens": 400, "temperature": 0.8, "ignore_eos": True}
LOST_TARGET = "sglang.srt.managers.schedule_policy.SchedulePolicy._sort_by_longest_prefix"
SITECUSTOMIZE = '''
import os
if os.environ.get("FAKE_SGLANG_VERSION"):
    import sglang
    sglang.__version__ = os.environ["FAKE_SGLANG_VERSION"]
if os.environ.get("RENAME_SORT_BY_LONGEST_PREFIX"):  # as if another SGLang release renamed it
    from sglang.srt.managers.schedule_policy import SchedulePolicy
    SchedulePolicy._sort_by_longest_prefix_v2 = SchedulePolicy._sort_by_longest_prefix
    del SchedulePolicy._sort_by_longest_prefix
'''


def launch(args: list[str], tmp_path: Path, timeout: float = 120, **env: str) -> tuple[int, str, float]:
    """Run ``dynasor serve`` to its exit; (exit code, output, seconds)."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    full_env = {**{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}, "OMP_NUM_THREADS": "1",
                "PYTHONPATH": str(tmp_path), **env}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dynasor.launch_server", "--host", "127.0.0.1", *args],
                          env=full_env, capture_output=True, text=True, timeout=timeout, start_new_session=True)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def test_a_taken_port_exits_at_once_with_a_clear_message(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        code, out, seconds = launch(["--port", str(port)], tmp_path)
    print(f"\n[readiness] taken port {port}: exit {code} after {seconds:.1f}s: {out.strip().splitlines()[-1]}")
    assert code != 0 and f"port {port} on 127.0.0.1 is already in use" in out
    assert "ready at" not in out and seconds < 30


def test_a_hook_target_missing_from_sglang_refuses_to_start(tmp_path):
    code, out, seconds = launch(["--port", str(free_port())], tmp_path, RENAME_SORT_BY_LONGEST_PREFIX="1")
    print(f"\n[self-check] exit {code} after {seconds:.1f}s")
    assert code != 0 and "hook self-check failed" in out and LOST_TARGET in out
    assert "ready at" not in out and "Load weight" not in out


def test_an_unsupported_sglang_is_refused_unless_allowed(tmp_path):
    code, out, _ = launch(["--port", str(free_port())], tmp_path, FAKE_SGLANG_VERSION="0.0.1")
    assert code != 0 and "Dynasor supports sglang==0.5.23, but sglang 0.0.1 is installed" in out
    code, out, _ = launch(["--port", str(free_port()), "--dynasor-allow-unsupported-sglang"], tmp_path,
                          FAKE_SGLANG_VERSION="0.0.1", RENAME_SORT_BY_LONGEST_PREFIX="1")
    assert "starting anyway" in out  # passed the version guard, logged ...
    assert code != 0 and "hook self-check failed" in out  # ... and the self-check still stops it


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
