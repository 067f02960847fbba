"""One real Dynasor server (default model, CPU) shared by the whole integration session."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from dynasor.evaluation.ports import free_port
from dynasor.evaluation.server_process import ServerProcess

LOG_DIR = Path(__file__).resolve().parents[1] / ".logs"
PROGRAM_TTL = 10.0
MAX_RUNNING = 16  # small, so tests can have requests waiting behind a full batch
# KV pool of the servers a test module starts for itself: enough for what they run, and allocated in
# a fraction of the default pool's time (SGLang fills the pool at start: ~6 s for the default 32,768 tokens)
SMALL_KV_TOKENS = 16384


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


@pytest.fixture
def url(dynasor_server: ServerProcess) -> str:
    return dynasor_server.url
