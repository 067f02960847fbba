"""Gang scheduling in the live engine: with two running slots, two programs of four branches that
arrive interleaved complete as gangs under `gang`, and interleaved under SGLang's `fcfs`.

Both slots are first taken by a blocker program, so all eight branches are waiting together when
the scheduler chooses (otherwise the first two could be admitted before the rest arrive)."""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dynasor.client import DynasorClient, DynasorHTTPError
from dynasor.core.tag import new_program_id
from dynasor.evaluation.server_group import start_together, stop_together
from dynasor.evaluation.ports import free_port
from dynasor.evaluation.server_process import ServerProcess

from .conftest import LOG_DIR, SMALL_KV_TOKENS


def completion_order(url: str) -> list[str]:
    """Two blocker requests take both running slots; then A1 B1 A2 B2 A3 B3 A4 B4 arrive in one
    batch and all wait together until the blockers finish. Labels by finish time."""
    programs = {"A": new_program_id(), "B": new_program_id()}
    blocker = new_program_id()
    blocker_body = {
        "text": ["Blocker: count to one hundred."] * 2,
        "sampling_params": {"max_new_tokens": 48, "temperature": 0.0, "ignore_eos": True,
                            "custom_params": {"dynasor": {"program_id": blocker, "return_entropy": False}}},
    }
    labels = [label for _ in range(4) for label in "AB"]
    body = {
        "text": [f"Branch {i} of program {label}: count to twenty." for i, label in enumerate(labels)],
        "sampling_params": [
            {"max_new_tokens": 12, "temperature": 0.0, "ignore_eos": True,
             "custom_params": {"dynasor": {"program_id": programs[label], "return_entropy": False}}}
            for label in labels
        ],
    }
    with ThreadPoolExecutor(1) as pool:
        blocking = pool.submit(httpx.post, url + "/generate", json=blocker_body, timeout=300)
        with DynasorClient(url) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.program(blocker)["requests"]["running"] == 2:
                        break
                except DynasorHTTPError:
                    pass  # not arrived yet
                time.sleep(0.05)
            else:
                raise AssertionError("the blockers never ran")
        outs = httpx.post(url + "/generate", json=body, timeout=300).json()
        blocking.result()
    finished = sorted(zip((o["meta_info"]["e2e_latency"] for o in outs), labels))
    return [label for _, label in finished]


def switches(order: list[str]) -> int:
    return sum(a != b for a, b in zip(order, order[1:]))


@pytest.fixture(scope="module")
def policy_servers() -> Iterator[dict[str, ServerProcess]]:
    """A server per policy with two running slots, started together."""
    servers = {policy: ServerProcess.dynasor(free_port(), LOG_DIR / f"dynasor-{policy}.log", [
        "--max-running-requests", "2", "--dynasor-schedule-policy", policy,
        "--max-total-tokens", str(SMALL_KV_TOKENS)]) for policy in ("gang", "fcfs")}
    start_together(list(servers.values()))
    try:
        yield servers
    finally:
        stop_together(list(servers.values()))


@pytest.mark.parametrize("policy, grouped", [("gang", True), ("fcfs", False)])
def test_completion_order_under_policy(policy_servers, policy, grouped):
    url = policy_servers[policy].url
    order = completion_order(url)
    with DynasorClient(url) as client:
        load = client.get("/dynasor/load")
        reasons = client.get("/server_info")["internal_states"][0]["dynasor"]["full_rerank_reasons"]
    print(f"\n[{policy}] completion order {''.join(order)}; queue orders {load['queue_reorders']}, "
          f"from scratch {load['queue_full_reranks']} {reasons}")
    if grouped:
        assert switches(order) == 1  # AAAABBBB or BBBBAAAA
        # the live scheduler's events keep the order between steps: not every step ranks from scratch
        assert 1 <= load["queue_full_reranks"] < load["queue_reorders"]
    else:
        assert switches(order) >= 3


def test_deferred_requests_wait_behind_all_other_work_while_their_program_has_some(url):
    """On the shared server (gang-sjf, 16 running slots): 16 blockers fill the batch; then 18 requests
    arrive in one batch, the two deferred requests of program A first, then A's own request, 14
    branches of B and one untagged request. 16 are admitted when the blockers end: the deferred two
    must be the two left waiting (arrival order would have admitted them first), so they finish last."""
    from .conftest import MAX_RUNNING

    a, b, blocker = new_program_id(), new_program_id(), new_program_id()

    def params(program: str | None, tokens: int, deferred: bool = False) -> dict:
        tag = {"dynasor": {"program_id": program, "return_entropy": False, "deferred": deferred}} if program else None
        return {"max_new_tokens": tokens, "temperature": 0.0, "ignore_eos": True,
                **({"custom_params": tag} if tag else {})}

    labels = ["A-deferred"] * 2 + ["A"] + ["B"] * (MAX_RUNNING - 2) + ["untagged"]
    programs = {"A-deferred": a, "A": a, "B": b, "untagged": None}
    body = {"text": [f"Request {i} ({label}): count to twenty." for i, label in enumerate(labels)],
            "sampling_params": [params(programs[label], 12, label == "A-deferred") for label in labels]}
    blockers = {"text": [f"Blocker {i}: count to one hundred." for i in range(MAX_RUNNING)],
                "sampling_params": [params(blocker, 48)] * MAX_RUNNING}
    with ThreadPoolExecutor(1) as pool, DynasorClient(url) as client:
        blocking = pool.submit(httpx.post, url + "/generate", json=blockers, timeout=300)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.program(blocker)["requests"]["running"] == MAX_RUNNING:
                    break
            except DynasorHTTPError:
                pass  # not arrived yet
            assert time.monotonic() < deadline, "the blockers never filled the batch"
            time.sleep(0.05)
        outs = httpx.post(url + "/generate", json=body, timeout=300).json()
        blocking.result()
    finished = [label for _, label in sorted(zip((o["meta_info"]["e2e_latency"] for o in outs), labels))]
    print(f"\n[deferred] completion order {finished}")
    assert finished[-2:] == ["A-deferred", "A-deferred"]
    assert all(o["meta_info"]["finish_reason"]["type"] == "length" for o in outs)
