"""Aborting a program ends all its requests in the engine, frees their KV, spares other programs."""

import asyncio
import time

from dynasor.client import AsyncDynasorClient, DynasorHTTPError

from .conftest import MAX_RUNNING


async def kv_used_after(client: AsyncDynasorClient, after: float) -> int:
    """``num_used_tokens`` from an engine load snapshot taken after ``after`` (unix time)."""
    for _ in range(60):
        load = (await client.get("/v1/loads"))["loads"][0]
        if load["timestamp"] > after:
            return load["num_used_tokens"]
        await asyncio.sleep(0.5)
    raise TimeoutError("no fresh load snapshot")


async def program_or_none(client: AsyncDynasorClient, pid: str) -> dict | None:
    """The program's summary, or None while none of its requests has reached the scheduler."""
    try:
        return await client.program(pid)
    except DynasorHTTPError as err:
        if err.status == 404:
            return None
        raise


async def wait_program(client: AsyncDynasorClient, pid: str, ready) -> dict:
    for _ in range(480):
        summary = await program_or_none(client, pid)
        if summary is not None and ready(summary):
            return summary
        await asyncio.sleep(0.25)
    raise TimeoutError(f"program never reached the expected state: {summary}")


async def test_abort_program_ends_its_requests_and_frees_kv(url):
    async with AsyncDynasorClient(url) as client:
        idle_kv = await kv_used_after(client, time.time())
        victim, bystander = client.new_program(), client.new_program()
        long = {"max_new_tokens": 3000, "temperature": 0.8, "ignore_eos": True}
        short = {"max_new_tokens": 24, "temperature": 0.8, "ignore_eos": True}
        victims = [asyncio.create_task(client.generate(f"Tell story number {i} about a dragon.", long, program=victim))
                   for i in range(4)]
        await wait_program(client, victim, lambda s: s["requests"]["running"] == 4 and s["generated_tokens"] >= 4)
        others = [asyncio.create_task(client.generate(f"List {i} fruits:", short, program=bystander)) for i in range(2)]

        t0 = time.monotonic()
        reply = await client.abort_program(victim)
        assert reply["aborted_requests"] == 4
        ended = await asyncio.wait_for(asyncio.gather(*victims), timeout=60)
        elapsed = time.monotonic() - t0
        print(f"\n[abort] 4 running requests ended {elapsed:.2f}s after the abort call")
        for out in ended:
            assert out["meta_info"]["finish_reason"]["type"] == "abort"
            assert out["meta_info"]["completion_tokens"] < long["max_new_tokens"]

        for out in await asyncio.gather(*others):
            assert out["meta_info"]["finish_reason"]["type"] == "length"
            assert out["meta_info"]["completion_tokens"] == short["max_new_tokens"]

        summary = await client.program(victim)
        assert summary["requests"]["aborted"] == 4 and summary["state"] == "done"
        assert (await client.program(bystander))["requests"]["finished"] == 2
        assert await kv_used_after(client, time.time()) == idle_kv


async def test_abort_of_waiting_requests(url):
    """Requests still queued behind a full batch are popped from the queue and answered."""
    async with AsyncDynasorClient(url) as client:
        pid = client.new_program()
        n = MAX_RUNNING + 8
        tasks = [asyncio.create_task(client.generate("Write a poem.", {"max_new_tokens": 2000, "ignore_eos": True},
                                                     program=pid)) for _ in range(n)]
        summary = await wait_program(client, pid, lambda s: s["requests"]["total"] == n and s["generated_tokens"] > 0)
        assert summary["requests"]["waiting"] == n - MAX_RUNNING
        assert (await client.abort_program(pid))["aborted_requests"] == n
        outs = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        assert all(o["meta_info"]["finish_reason"]["type"] == "abort" for o in outs)
        summary = await client.program(pid)
        assert summary["requests"]["aborted"] == n and summary["requests"]["waiting"] == 0
