"""ServerProcess: one process however it is used, no process of its group left after stop(),
a taken port refused before anything starts, and readiness that another server cannot fake.
A small stand-in server (helpers/fake_server.py) plays the server; the real one is covered by the
integration tests."""

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from dynasor.server_process import ServerProcess, free_port, group_alive, port_in_use

FAKE = Path(__file__).resolve().parent / "helpers" / "fake_server.py"


def fake(tmp_path: Path, reported_id: str, expected_id: str | None = "launch-1") -> ServerProcess:
    port = free_port()
    env = {**os.environ, "FAKE_INSTANCE_ID": reported_id, "FAKE_CHILD_PID_FILE": str(tmp_path / "child.pid")}
    return ServerProcess([sys.executable, str(FAKE), str(port)], env, f"http://127.0.0.1:{port}",
                         tmp_path / "server.log", instance_id=expected_id)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_then_with_runs_one_server_and_stop_leaves_no_process_of_its_group(tmp_path):
    server = fake(tmp_path, "launch-1").start(timeout=30)
    pid = server.pid
    child = int((tmp_path / "child.pid").read_text())
    assert alive(child) and group_alive(pid)
    with server:
        assert server.pid == pid  # no second server
    assert not group_alive(pid) and not alive(child)
    server.stop()  # idempotent


def test_a_taken_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        server = ServerProcess([sys.executable, str(FAKE), str(port)], dict(os.environ),
                               f"http://127.0.0.1:{port}", tmp_path / "server.log", instance_id="x")
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="already in use"):
            server.start(timeout=30)
        assert server.proc is None and time.monotonic() - started < 2
    assert not port_in_use("127.0.0.1", port)


def test_readiness_needs_the_launch_id_not_just_health(tmp_path):
    imposter = fake(tmp_path, reported_id="someone-else", expected_id="launch-1")
    with pytest.raises(TimeoutError, match="not healthy"):
        imposter.start(timeout=4)
    assert not group_alive(imposter.pid)  # stopped after the failed readiness
    unchecked = fake(tmp_path, reported_id="anything", expected_id=None)  # stock servers: /health only
    with unchecked:
        assert unchecked.is_ours()


def test_an_interrupted_start_leaves_no_process(tmp_path, monkeypatch):
    server = fake(tmp_path, "launch-1")

    def interrupted(timeout):
        time.sleep(1.0)  # the server (and its child) are up by now
        raise KeyboardInterrupt

    monkeypatch.setattr(server, "wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert server.pid is not None and not group_alive(server.pid)
