"""Two Dynasor servers behind SGLang's router (``smg``, ``manual`` policy on Dynasor's routing key).

Through the router: tags survive ``/generate`` and the OpenAI routes, every request of a program
reaches one worker (all of it, so its later branches hit that worker's prefix cache), and program
status and abort reach the worker that holds the program (the client fans ``/dynasor`` calls out
to the router's workers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from dynasor.client import AsyncDynasorClient, DynasorHTTPError
from dynasor.core.routing import routing_headers
from dynasor.evaluation.ports import free_port
from dynasor.evaluation.server_process import ServerProcess
from dynasor.frontend import DynasorEndpoint, program_id

from .conftest import LOG_DIR
from .test_abort import wait_program
from .test_data_parallel import BRANCHES, run_program
from .test_frontend import DONE_4, reason_then_branch


@pytest.fixture(scope="module")
def routed(policy_servers: dict[str, ServerProcess]) -> Iterator[tuple[str, list[str]]]:
    """SGLang's router in front of the session's two policy servers (the queue policy does not
    matter here: where requests go does)."""
    worker_urls = [server.url for server in policy_servers.values()]
    with ServerProcess.smg_router(free_port(), LOG_DIR / "smg-router.log", worker_urls) as router:
        yield router.url, worker_urls


async def holders(pid: str, worker_urls: list[str]) -> list[tuple[int, dict]]:
    """(worker index, summary) of every worker that knows the program, asked directly."""
    found = []
    for i, url in enumerate(worker_urls):
        async with AsyncDynasorClient(url) as direct:
            try:
                found.append((i, await direct.program(pid)))
            except DynasorHTTPError as err:
                assert err.status == 404
    return found


async def test_programs_reach_one_worker_whole_and_hit_its_cache(routed):
    router_url, worker_urls = routed
    async with AsyncDynasorClient(router_url, router=True) as client:
        results = await asyncio.gather(*(run_program(client, i) for i in range(4)))
        used = set()
        for pid, outs in results:
            found = await holders(pid, worker_urls)
            assert len(found) == 1, found  # the tag survived the router, and one worker has the program
            worker, summary = found[0]
            assert summary["requests"]["total"] == BRANCHES and summary["requests"]["finished"] == BRANCHES
            used.add(worker)
            cached = [out["meta_info"]["cached_tokens"] for out in outs]
            print(f"\n[router] program on worker {worker}: cached tokens per branch {cached}")
            assert all(c > 0 for c in cached[1:]), cached
            assert (await client.program(pid))["requests"]["total"] == BRANCHES  # status through the router
        assert used == {0, 1}  # new programs go to the less loaded worker


async def test_openai_route_keeps_the_tag_through_the_router(routed):
    router_url, worker_urls = routed
    async with AsyncDynasorClient(router_url, router=True) as client:
        pid = client.new_program()
    tag = {"custom_params": {"dynasor": {"program_id": pid, "return_entropy": True}}}
    async with httpx.AsyncClient(base_url=router_url, timeout=120) as http:
        model = (await http.get("/v1/models")).json()["data"][0]["id"]  # the router routes by model id
        for prompt in ("1, 2, 3,", "4, 5, 6,"):
            reply = await http.post("/v1/completions", headers=routing_headers(pid),
                                    json={"model": model, "prompt": prompt, "max_tokens": 4, **tag})
            assert reply.status_code == 200, reply.text
            assert "token_stats" in reply.json()["choices"][0]  # a tagged request gets its token stats
    found = await holders(pid, worker_urls)
    assert len(found) == 1 and found[0][1]["requests"]["total"] == 2


async def test_abort_through_the_router_ends_the_program_on_its_worker(routed):
    router_url, _ = routed
    async with AsyncDynasorClient(router_url, router=True) as client:
        victim = client.new_program()
        long = {"max_new_tokens": 3000, "temperature": 0.8, "ignore_eos": True}
        tasks = [asyncio.create_task(client.generate(f"Tell story {i} about a dragon.", long, program=victim))
                 for i in range(BRANCHES)]
        await wait_program(client, victim, lambda s: s["requests"]["running"] == BRANCHES)
        reply = await client.abort_program(victim)
        assert reply["aborted_requests"] == BRANCHES and reply["workers"] == 1
        for out in await asyncio.wait_for(asyncio.gather(*tasks), timeout=60):
            assert out["meta_info"]["finish_reason"]["type"] == "abort"
        for _ in range(40):
            load = await client.load()
            if load.running == 0:
                break
            await asyncio.sleep(0.25)
        assert load.running == 0


def test_sgl_function_runs_reach_one_worker_whole_through_the_router(routed):
    """``DynasorEndpoint`` sends each run's routing key with every request (gen, fork prefix, branches,
    select): without it the router would spread a run's requests over the workers. ``select`` scores
    its choices as a batch, which the router's ``/generate`` refuses: ``router=True`` splits it."""
    router_url, worker_urls = routed
    questions = [f"Q: What is {a} + {b}?\nA:" for a, b in ((3, 3), (5, 1), (2, 6), (4, 4))]
    states = reason_then_branch.run_batch([{"question": q} for q in questions],
                                          backend=DynasorEndpoint(router_url, router=True), temperature=0.5,
                                          num_threads=4)
    for state in states:
        state.sync()
        assert state.error() is None, state.error()
        assert state["verdict"] in (" yes", " no") and len(state["check"]) == 3
    used = set()
    for state in states:
        found = asyncio.run(holders(program_id(state), worker_urls))
        assert len(found) == 1, found
        worker, summary = found[0]
        assert summary["requests"] == DONE_4, summary
        used.add(worker)
    print(f"\n[router] sgl.function runs on workers {sorted(used)}")
