"""``--dp-size 2`` on CPU (one core per rank): every request of a program is served by one rank.

Four self-consistency programs of four branches: each program's first branch, then its other three
at once. With program affinity all four land on the program's rank, so the three later branches
reuse the prompt the first one left in that rank's radix cache; SGLang's round-robin dispatch would
send some of them to the other rank, where nothing is cached. Aborting a program ends its requests
on its rank and frees their KV. A request that names its rank (SGLang's ``routed_dp_rank``) keeps it,
and its program follows it there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from dynasor.client import AsyncDynasorClient
from dynasor.core.tag import tag_sampling_params
from dynasor.evaluation.ports import free_port
from dynasor.evaluation.server_process import ServerProcess

from .conftest import LOG_DIR, PROGRAM_TTL, SMALL_KV
from .test_abort import wait_program

BRANCHES = 4
SHORT = {"max_new_tokens": 8, "temperature": 0.8}


@pytest.fixture(scope="module")
def dp_url() -> Iterator[str]:
    server = ServerProcess.dynasor(free_port(), LOG_DIR / "dynasor-dp2-server.log",
                                   ["--dp-size", "2", "--max-running-requests", "8",
                                    "--dynasor-program-ttl", str(PROGRAM_TTL), *SMALL_KV])
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def run_program(client: AsyncDynasorClient, index: int) -> tuple[str, list[dict]]:
    pid = client.new_program()
    prompt = f"Question {index}: a farmer has {index + 3} cows and buys {index + 5} more. How many cows now? Answer:"
    first = await client.generate(prompt, SHORT, program=pid)
    rest = await asyncio.gather(*(client.generate(prompt, SHORT, program=pid) for _ in range(BRANCHES - 1)))
    return pid, [first, *rest]


async def test_programs_stay_on_one_rank_and_later_branches_hit_its_cache(dp_url):
    async with AsyncDynasorClient(dp_url) as client:
        results = await asyncio.gather(*(run_program(client, i) for i in range(4)))
        ranks = {}
        for pid, outs in results:
            summary = await client.program(pid)
            assert summary["requests"]["total"] == BRANCHES and summary["requests"]["finished"] == BRANCHES
            assert len(summary["dp_ranks"]) == 1, summary["dp_ranks"]
            ranks[pid] = summary["dp_ranks"][0]
            cached = [out["meta_info"]["cached_tokens"] for out in outs]
            prompt_tokens = outs[0]["meta_info"]["prompt_tokens"]
            print(f"\n[dp] program on rank {ranks[pid]}: cached tokens per branch {cached} of {prompt_tokens}")
            assert all(c > 0 for c in cached[1:]), cached
        assert set(ranks.values()) == {0, 1}  # concurrent new programs go to the less loaded rank
        listed = {p["program_key"]: p["dp_ranks"] for p in await client.programs()}
        assert all(len(r) == 1 for r in listed.values())


async def test_abort_ends_a_programs_requests_on_its_rank_and_frees_kv(dp_url):
    async with AsyncDynasorClient(dp_url) as client:
        idle = await client.get("/dynasor/load")
        assert idle["ranks"] == 2
        victim = client.new_program()
        long = {"max_new_tokens": 3000, "temperature": 0.8, "ignore_eos": True}
        tasks = [asyncio.create_task(client.generate(f"Tell story {i} about a dragon.", long, program=victim))
                 for i in range(BRANCHES)]
        summary = await wait_program(client, victim, lambda s: s["requests"]["running"] == BRANCHES
                                     and s["generated_tokens"] >= BRANCHES)
        assert len(summary["dp_ranks"]) == 1
        assert (await client.abort_program(victim))["aborted_requests"] == BRANCHES
        for out in await asyncio.wait_for(asyncio.gather(*tasks), timeout=60):
            assert out["meta_info"]["finish_reason"]["type"] == "abort"
        for _ in range(40):
            load = await client.get("/dynasor/load")
            if load["running"] == 0 and load["used_tokens"] == idle["used_tokens"]:
                break
            await asyncio.sleep(0.25)
        assert (load["running"], load["used_tokens"]) == (0, idle["used_tokens"]), (idle, load)


async def test_a_named_rank_pins_the_program_and_a_batch_across_ranks_is_refused(dp_url):
    async with AsyncDynasorClient(dp_url) as client:
        on_rank = {}
        for rank in (1, 0):
            pid = client.new_program()
            await client.generate("Count to three:", SHORT, program=pid, routed_dp_rank=rank)
            await client.generate("Count to four:", SHORT, program=pid)  # follows the named rank
            assert (await client.program(pid))["dp_ranks"] == [rank]
            on_rank[rank] = pid
        body = {"text": ["Name a color:", "Name a fruit:"],
                "sampling_params": [tag_sampling_params(SHORT, on_rank[0]), tag_sampling_params(SHORT, on_rank[1])]}
        async with httpx.AsyncClient(base_url=dp_url, timeout=60) as http:
            reply = await http.post("/generate", json=body)
        assert reply.status_code == 400, reply.text
        assert "different data-parallel ranks [0, 1]" in reply.text
