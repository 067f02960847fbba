"""The soak's mixed load: one coroutine per request kind, each recording its latency and outcome.

Kinds (as a user mixes them on one server):

- ``openai_sc``: a dynasor-mode self-consistency chat completion (non-streaming);
- ``openai_cot``: a dynasor-mode CoT chat completion, streamed to the end;
- ``program``: a tagged program of three ``/generate`` requests sharing a prompt;
- ``program_abort``: a tagged program of three long requests, aborted mid-way (one call);
- ``disconnect``: a streaming tagged ``/generate`` and a streaming ``cot`` request dropped after the
  first chunk (the server must end their programs);
- ``malformed``: a request with a malformed tag (the server must answer 400, nothing else);
- ``untagged``: a plain ``/generate``.

An outcome is ``ok``, ``client_error`` (an expected 4xx), ``server_error`` (5xx: counted against the
server), or ``failed`` (anything else unexpected, e.g. a connection error).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from dynasor.core.tag import new_program_id

KINDS = ("openai_sc", "openai_cot", "program", "program_abort", "disconnect", "malformed", "untagged")
WEIGHTS = (2, 2, 3, 2, 1, 1, 3)


@dataclass(frozen=True)
class Outcome:
    kind: str
    started: float  # seconds since the soak began
    latency: float
    status: str  # ok | client_error | server_error | failed
    detail: str = ""


class ServerError(Exception):
    pass


def _check(response: httpx.Response, expect_4xx: bool = False) -> None:
    if response.status_code >= 500:
        raise ServerError(f"HTTP {response.status_code}: {response.text[:200]}")
    if expect_4xx != (400 <= response.status_code < 500):
        raise RuntimeError(f"unexpected HTTP {response.status_code}: {response.text[:200]}")


def _tagged(params: dict, program_id: str) -> dict:
    return {**params, "custom_params": {"dynasor": {"program_id": program_id}}}


async def openai_sc(http: httpx.AsyncClient, rng: random.Random) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": f"What is {rng.randint(1, 9)} + "
                                              f"{rng.randint(1, 9)}? Answer with the number."}],
            "max_tokens": 16, "temperature": 0.7, "dynasor": {"mode": "sc", "n": 4, "detect_at": 2}}
    _check(await http.post("/v1/chat/completions", json=body))


async def openai_cot(http: httpx.AsyncClient, rng: random.Random) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": f"Compute {rng.randint(10, 99)} * 3."}],
            "max_tokens": 48, "stream": True, "dynasor": {"mode": "cot", "probe_interval": 16, "window": 2}}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        _check(response)
        async for _ in response.aiter_lines():
            pass


async def program(http: httpx.AsyncClient, rng: random.Random) -> None:
    pid = new_program_id()
    params = _tagged({"max_new_tokens": 24, "temperature": 0.8}, pid)
    prompt = f"Q: {rng.randint(1, 50)} + {rng.randint(1, 50)} =\nA:"
    responses = await asyncio.gather(*[http.post("/generate", json={"text": prompt, "sampling_params": params})
                                       for _ in range(3)])
    for response in responses:
        _check(response)


async def program_abort(http: httpx.AsyncClient, rng: random.Random) -> None:
    pid = new_program_id()
    params = _tagged({"max_new_tokens": 400, "temperature": 0.8, "ignore_eos": True}, pid)
    requests = [asyncio.create_task(http.post("/generate", json={"text": f"Story {i}:", "sampling_params": params}))
                for i in range(3)]
    await asyncio.sleep(rng.uniform(0.2, 1.5))
    _check(await http.post(f"/dynasor/programs/{pid}/abort"))
    for response in await asyncio.gather(*requests):
        _check(response)
        reason = response.json()["meta_info"]["finish_reason"]["type"]
        if reason != "abort":
            raise RuntimeError(f"a request of an aborted program ended with {reason!r}")


async def disconnect(http: httpx.AsyncClient, rng: random.Random) -> None:
    if rng.random() < 0.5:
        params = _tagged({"max_new_tokens": 400, "temperature": 0.8, "ignore_eos": True}, new_program_id())
        request = ("POST", "/generate", {"text": "A long tale:", "stream": True, "sampling_params": params})
    else:
        request = ("POST", "/v1/chat/completions", {
            "model": "default", "messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 400,
            "stream": True, "ignore_eos": True, "dynasor": {"mode": "cot", "probe_interval": 32, "window": 64}})
    method, path, body = request
    async with http.stream(method, path, json=body) as response:
        _check(response)
        async for _ in response.aiter_lines():
            break  # the client goes away


async def malformed(http: httpx.AsyncClient, rng: random.Random) -> None:
    bad = rng.choice([{"program_id": "short"}, {"program_id": new_program_id(), "return_entropy": "yes"},
                      {"remaining_work": 5}, "not-an-object"])
    body = {"text": "Hi", "sampling_params": {"max_new_tokens": 4, "custom_params": {"dynasor": bad}}}
    _check(await http.post("/generate", json=body), expect_4xx=True)


async def untagged(http: httpx.AsyncClient, rng: random.Random) -> None:
    body = {"text": f"List {rng.randint(2, 6)} colors:", "sampling_params": {"max_new_tokens": 24, "temperature": 0.8}}
    _check(await http.post("/generate", json=body))


ACTIONS: dict[str, Callable[[httpx.AsyncClient, random.Random], Awaitable[None]]] = {
    "openai_sc": openai_sc, "openai_cot": openai_cot, "program": program, "program_abort": program_abort,
    "disconnect": disconnect, "malformed": malformed, "untagged": untagged,
}


async def worker(http: httpx.AsyncClient, rng: random.Random, began: float, until: float,
                 outcomes: list[Outcome]) -> None:
    """Run randomly drawn kinds back to back until ``until`` (monotonic)."""
    while time.monotonic() < until:
        kind = rng.choices(KINDS, WEIGHTS)[0]
        started = time.monotonic()
        status, detail = "ok", ""
        try:
            await ACTIONS[kind](http, rng)
            if kind == "malformed":
                status = "client_error"
        except ServerError as e:
            status, detail = "server_error", str(e)
        except Exception as e:
            status, detail = "failed", f"{type(e).__name__}: {e}"[:300]
        outcomes.append(Outcome(kind, started - began, time.monotonic() - started, status, detail))
