"""ServerProcess: one process however it is used, no process of its group left after stop(),
a taken port refused before anything starts, and readiness that another server cannot fake.
A small stand-in server (helpers/fake_server.py) plays the server; the real one is covered by the
integration tests."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynasor.evaluation.server_group import start_together, stop_together
from dynasor.evaluation.ports import PORT_SLICE_ENV, ephemeral_port_range, free_port, port_in_use
from dynasor.evaluation.server_process import ServerProcess, ServerStartError, group_alive

FAKE = Path(__file__).resolve().parent / "helpers" / "fake_server.py"


def fake(tmp_path: Path, reported_id: str, expected_id: str | None = "launch-1", mode: str = "serve",
         stall_s: float = 60) -> ServerProcess:
    port = free_port()
    env = {**os.environ, "FAKE_INSTANCE_ID": reported_id, "FAKE_CHILD_PID_FILE": str(tmp_path / "child.pid"),
           "FAKE_MODE": mode}
    return ServerProcess([sys.executable, str(FAKE), str(port)], env, f"http://127.0.0.1:{port}",
                         tmp_path / "server.log", instance_id=expected_id, stall_s=stall_s)


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


def test_servers_started_together_all_answer_stop_together_and_one_failing_stops_every_one(tmp_path):
    first, second = (tmp_path / "a", tmp_path / "b")
    first.mkdir(), second.mkdir()
    good = [fake(first, "launch-1"), fake(second, "launch-1")]
    start_together(good, timeout=30)
    try:
        assert all(server.running and server.is_ours() for server in good)
    finally:
        stop_together(good)
    assert not any(group_alive(server.pid) for server in good)
    third, fourth = (tmp_path / "c", tmp_path / "d")
    third.mkdir(), fourth.mkdir()
    mixed = [fake(third, "launch-1"), fake(fourth, reported_id="someone-else", expected_id="launch-1")]
    with pytest.raises(TimeoutError, match="not healthy"):
        start_together(mixed, timeout=4)
    assert all(server.pid is not None and not group_alive(server.pid) for server in mixed)


def test_the_log_an_earlier_run_left_is_not_read_as_this_servers(tmp_path):
    """A watcher of a starting server (the port-held start-up test) must not see the last run's lines."""
    server = fake(tmp_path, "launch-1")
    server.log_path.write_text("Load weight begin (a line from an earlier run)\n")
    assert server.log_text() == "" and server.fatal_log_line() is None
    with server:
        assert "earlier run" not in server.log_text()


def test_free_ports_lie_outside_the_kernels_ephemeral_range_and_are_not_handed_out_twice():
    low, high = ephemeral_port_range()
    ports = [free_port() for _ in range(50)]
    assert all(not low <= p <= high for p in ports) and len(set(ports)) == 50
    assert not any(port_in_use("127.0.0.1", p) for p in ports)


def test_processes_given_different_port_slices_never_pick_the_same_port(monkeypatch):
    picked = {}
    for index in range(3):
        monkeypatch.setenv(PORT_SLICE_ENV, f"{index}/3")
        picked[index] = {free_port() for _ in range(20)}
        assert all(p % 3 == index for p in picked[index])
    assert not picked[0] & picked[1] and not picked[1] & picked[2]
    monkeypatch.setenv(PORT_SLICE_ENV, "3/3")
    with pytest.raises(ValueError, match=PORT_SLICE_ENV):
        free_port()


def test_a_logged_failed_bind_ends_the_wait_at_once_and_leaves_no_process(tmp_path):
    server = fake(tmp_path, "launch-1", mode="bind-error")
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="error while attempting to bind"):
        server.start(timeout=60)
    assert time.monotonic() - started < 10 and not group_alive(server.pid)
    assert not alive(int((tmp_path / "child.pid").read_text()))


def test_a_start_up_that_writes_nothing_and_never_answers_is_given_up_after_the_stall_bound(tmp_path):
    server = fake(tmp_path, "launch-1", mode="hang", stall_s=3)
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="stopped making progress"):
        server.start(timeout=60)
    assert 3 <= time.monotonic() - started < 15 and not group_alive(server.pid)


def test_a_router_whose_worker_does_not_answer_is_not_started(tmp_path):
    silent = f"http://127.0.0.1:{free_port()}"
    router = ServerProcess.smg_router(free_port(), tmp_path / "router.log", [silent])
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="do not answer /health"):
        router.start(timeout=60)
    assert router.proc is None and time.monotonic() - started < 10


def test_a_terminated_user_still_stops_its_server(tmp_path):
    """SIGTERM to a process that started a server (``timeout``, a CI runner) ends it through its
    ``with`` block: the server goes with it."""
    script = tmp_path / "user.py"
    script.write_text(f"""
import os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from pathlib import Path
from test_server_process import fake
with fake(Path({str(tmp_path)!r}), "launch-1") as server:
    print(server.pid, flush=True)
    time.sleep(120)
""")
    user = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    server_pid = int(user.stdout.readline())
    assert group_alive(server_pid)
    user.terminate()
    assert user.wait(timeout=60) != 0
    deadline = time.monotonic() + 10
    while group_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(server_pid)
