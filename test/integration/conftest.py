"""Real servers (default model, CPU) shared by the whole integration session: the Dynasor server
most tests use, and a pair of small ones, one per queue policy, for the tests that compare policies
or need two workers (started on first use, side by side)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from dynasor.evaluation.ports import free_port
from dynasor.evaluation.server_group import start_together, stop_together
from dynasor.evaluation.server_process import ServerProcess

LOG_DIR = Path(__file__).resolve().parents[1] / ".logs"
PROGRAM_TTL = 10.0
MAX_RUNNING = 16  # small, so tests can have requests waiting behind a full batch
# KV pool of the servers started for a few tests: enough for what they run, and allocated in a
# fraction of the default pool's time (SGLang fills the pool at start: ~6 s for the default 32,768 tokens)
SMALL_KV_TOKENS = 16384
SMALL_KV = ["--max-total-tokens", str(SMALL_KV_TOKENS)]
POLICY_SERVER_SLOTS = 8  # running requests of each policy server


@pytest.fixture(scope="session")
def dynasor_server() -> Iterator[ServerProcess]:
    server = ServerProcess.dynasor(
        free_port(), LOG_DIR / "dynasor-server.log", ["--dynasor-program-ttl", str(PROGRAM_TTL), "--max-running-requests", str(MAX_RUNNING),
         "--enable-metrics"]
    )
    started = time.monotonic()
    server.start()
    print(f"\n[dynasor server] {server.url} healthy after {time.monotonic() - started:.1f}s (pid {server.pid})")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def policy_servers() -> Iterator[dict[str, ServerProcess]]:
    """Two more Dynasor servers with a small batch: Dynasor's ``gang`` policy and SGLang's own ``fcfs``
    (the scheduling tests compare their completion orders; the router tests put SGLang's router in
    front of them as its two workers)."""
    servers = {policy: ServerProcess.dynasor(free_port(), LOG_DIR / f"dynasor-{policy}.log", [
        "--dynasor-schedule-policy", policy, "--max-running-requests", str(POLICY_SERVER_SLOTS),
        "--dynasor-program-ttl", str(PROGRAM_TTL), *SMALL_KV])
        for policy in ("gang", "fcfs")}
    start_together(list(servers.values()))
    try:
        yield servers
    finally:
        stop_together(list(servers.values()))


@pytest.fixture
def url(dynasor_server: ServerProcess) -> str:
    return dynasor_server.url
