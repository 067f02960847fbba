"""Gang scheduling in the live engine: with as many running slots as a program has branches, two
programs that arrive interleaved complete as gangs under `gang`, and interleaved under SGLang's `fcfs`.

Every slot is first taken by a blocker program, so all branches are waiting together when the
scheduler chooses (otherwise the first ones could be admitted before the rest arrive)."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dynasor.client import DynasorClient, DynasorHTTPError
from dynasor.core.tag import new_program_id

from .conftest import POLICY_SERVER_SLOTS


def completion_order(url: str, slots: int) -> list[str]:
    """``slots`` blocker requests take every running slot; then A1 B1 A2 B2 ... (``slots`` branches
    each) arrive in one batch and all wait together until the blockers finish. Labels by finish time."""
    programs = {"A": new_program_id(), "B": new_program_id()}
    blocker = new_program_id()
    blocker_body = {
        "text": ["Blocker: count to one hundred."] * slots,
        "sampling_params": {"max_new_tokens": 48, "temperature": 0.0, "ignore_eos": True,
                            "custom_params": {"dynasor": {"program_id": blocker, "return_entropy": False}}},
    }
    labels = [label for _ in range(slots) for label in "AB"]
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
                    if client.program(blocker)["requests"]["running"] == slots:
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


@pytest.mark.parametrize("policy, grouped", [("gang", True), ("fcfs", False)])
def test_completion_order_under_policy(policy_servers, policy, grouped):
    url = policy_servers[policy].url
    order = completion_order(url, POLICY_SERVER_SLOTS)
    with DynasorClient(url) as client:
        load = client.get("/dynasor/load")
        reasons = client.get("/server_info")["internal_states"][0]["dynasor"]["full_rerank_reasons"]
    print(f"\n[{policy}] completion order {''.join(order)}; queue orders {load['queue_reorders']}, "
          f"from scratch {load['queue_full_reranks']} {reasons}")
    if grouped:
        assert switches(order) == 1  # AAAAAAAABBBBBBBB or BBBBBBBBAAAAAAAA
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
