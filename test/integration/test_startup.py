"""A server that cannot serve says so at once and leaves nothing behind.

Before any model loads, the launcher refuses a taken port, an unsupported SGLang and hooks that
did not apply. While the model loads, nothing can take the server's port (it is held from launch).
After the model has loaded, a start-up failure ends the server at once, non-zero, with one line on
stderr and no engine process left; so does a scheduler that dies while loading.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from dynasor.evaluation.ports import free_port
from dynasor.evaluation.server_process import ServerProcess, group_alive
from dynasor.model import default_model_path

from .conftest import LOG_DIR, SMALL_KV

LOST_TARGET = "sglang.srt.managers.schedule_policy.SchedulePolicy._sort_by_longest_prefix"
# Faults injected into the launched interpreter (PYTHONPATH=tmp_path); each only when its variable is set.
SITECUSTOMIZE = '''
import os
if os.environ.get("FAKE_SGLANG_VERSION"):
    import sglang
    sglang.__version__ = os.environ["FAKE_SGLANG_VERSION"]
if os.environ.get("RENAME_SORT_BY_LONGEST_PREFIX"):  # as if another SGLang release renamed it
    from sglang.srt.managers.schedule_policy import SchedulePolicy
    SchedulePolicy._sort_by_longest_prefix_v2 = SchedulePolicy._sort_by_longest_prefix
    del SchedulePolicy._sort_by_longest_prefix
if os.environ.get("FAIL_APP_STARTUP"):  # the HTTP app's start-up fails, as uvicorn reports it
    import uvicorn.lifespan.on as on

    async def failed_startup(self):
        self.logger.error("Application startup failed. Exiting.")
        self.should_exit = True

    on.LifespanOn.startup = failed_startup
'''


def launch_env(tmp_path: Path, **env: str) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {**{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(tmp_path), **env}


def launch(args: list[str], tmp_path: Path, timeout: float = 120, **env: str) -> tuple[int, str, float]:
    """Run ``dynasor serve`` to its exit; (exit code, output, seconds)."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dynasor.launch_server", "--host", "127.0.0.1", *args],
                          env=launch_env(tmp_path, **env), capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def run_to_exit(args: list[str], tmp_path: Path, log: Path, timeout: float = 240,
                **env: str) -> tuple[int, str, str, float, bool]:
    """Run ``dynasor serve`` in its own process group until it exits: (exit code, stderr, whole
    output, seconds, whether any process of its group was left 2 s after it exited)."""
    started = time.monotonic()
    with open(log, "wb") as out, open(log.with_suffix(".stderr"), "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dynasor.launch_server", "--host", "127.0.0.1", *args],
                                env=launch_env(tmp_path, **env), stdout=out, stderr=err, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"dynasor serve still running after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")
    seconds = time.monotonic() - started
    deadline = time.monotonic() + 2
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = group_alive(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    stderr = log.with_suffix(".stderr").read_text(errors="replace")
    return code, stderr, log.read_text(errors="replace") + stderr, seconds, left


def test_a_taken_port_exits_at_once_with_a_clear_message(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        code, out, seconds = launch(["--port", str(port)], tmp_path)
    print(f"\n[readiness] taken port {port}: exit {code} after {seconds:.1f}s: {out.strip().splitlines()[-1]}")
    assert code != 0 and f"port {port} on 127.0.0.1 is already in use" in out
    assert "ready at" not in out and seconds < 30


def test_a_hook_target_missing_from_sglang_refuses_to_start(tmp_path):
    code, out, seconds = launch(["--port", str(free_port())], tmp_path, RENAME_SORT_BY_LONGEST_PREFIX="1")
    print(f"\n[self-check] exit {code} after {seconds:.1f}s")
    assert code != 0 and "hook self-check failed" in out and LOST_TARGET in out
    assert "ready at" not in out and "Load weight" not in out


def test_an_unsupported_sglang_is_refused_unless_allowed(tmp_path):
    code, out, _ = launch(["--port", str(free_port())], tmp_path, FAKE_SGLANG_VERSION="0.0.1")
    assert code != 0 and "Dynasor supports sglang==0.5.23, but sglang 0.0.1 is installed" in out
    code, out, _ = launch(["--port", str(free_port()), "--dynasor-allow-unsupported-sglang"], tmp_path,
                          FAKE_SGLANG_VERSION="0.0.1", RENAME_SORT_BY_LONGEST_PREFIX="1")
    assert "starting anyway" in out  # passed the version guard, logged ...
    assert code != 0 and "hook self-check failed" in out  # ... and the self-check still stops it


def bind_as(port: int, reuse_address: bool) -> int:
    """Try to take the port as the engine's own sockets do (gloo, ZMQ: plain bind and listen) or as
    another HTTP server does (uvicorn: SO_REUSEADDR first); 0 if it worked, else the errno."""
    with socket.socket() as s:
        if reuse_address:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError as e:
            return e.errno or -1
    return 0


def test_nothing_can_take_the_http_port_while_the_model_loads():
    """The race CI met: the port was free at launch, an engine process bound it while the model
    loaded, and uvicorn's bind then failed and hung. Here a helper tries to take the port once the
    model starts loading; the server holds it and becomes ready on it."""
    port = free_port()
    server = ServerProcess.dynasor(port, LOG_DIR / "dynasor-port-held.log", SMALL_KV)
    errors: list[BaseException] = []
    starter = threading.Thread(target=lambda: errors.extend(attempt(server.start)), daemon=True)
    starter.start()
    try:
        deadline = time.monotonic() + 240
        while "Load weight begin" not in server.log_text():
            assert starter.is_alive() and time.monotonic() < deadline, f"no model load seen: {errors}"
            time.sleep(0.05)
        taken = {"plain bind (gloo, ZMQ)": bind_as(port, False), "SO_REUSEADDR bind (uvicorn)": bind_as(port, True)}
        print(f"\n[port held] while the model loads, binding {port}: "
              + ", ".join(f"{how}: {errno.errorcode.get(code, 'bound')}" for how, code in taken.items()))
        assert all(code == errno.EADDRINUSE for code in taken.values()), taken
        starter.join(timeout=300)
        assert not starter.is_alive() and not errors, errors
        assert server.is_ours()
        reply = httpx.post(server.url + "/generate", json={"text": "1, 2, 3,", "sampling_params": {
            "max_new_tokens": 4, "temperature": 0}}, timeout=60)
        assert reply.status_code == 200 and reply.json()["meta_info"]["completion_tokens"] == 4
    finally:  # a failed check may come before the starting thread has spawned the server: stop it again after
        server.stop()
        starter.join(timeout=300)
        server.stop()


def attempt(start) -> list[BaseException]:
    try:
        start()
    except BaseException as e:  # noqa: BLE001 - handed to the test thread
        return [e]
    return []


def test_a_start_up_failure_after_the_model_loaded_ends_the_server_at_once(tmp_path):
    code, stderr, out, seconds, left = run_to_exit(["--port", str(free_port()), *SMALL_KV], tmp_path,
                                                   LOG_DIR / "dynasor-app-startup-fails.log", FAIL_APP_STARTUP="1")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    print(f"\n[start-up failure after load] exit {code} after {seconds:.1f}s: {last}")
    assert "Load weight end" in out and "ready at" not in out  # it failed after the model had loaded
    assert code != 0 and last.startswith("dynasor serve: the server stopped before it was ready")
    assert not left, "an engine process outlived the launcher"


def test_a_scheduler_that_dies_while_loading_ends_the_server_at_once(tmp_path):
    model = tmp_path / "broken-model"
    shutil.copytree(default_model_path(), model, ignore=shutil.ignore_patterns("model.safetensors"))
    with open(default_model_path() / "model.safetensors", "rb") as whole:
        (model / "model.safetensors").write_bytes(whole.read(1 << 20))  # truncated weights
    code, stderr, out, seconds, left = run_to_exit(["--port", str(free_port()), "--model-path", str(model)],
                                                   tmp_path, LOG_DIR / "dynasor-scheduler-dies.log")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    print(f"\n[scheduler dies while loading] exit {code} after {seconds:.1f}s: {last}")
    assert "Load weight begin" in out and "ready at" not in out
    assert "SafetensorError" in out and "It usually means the child failed" in stderr  # SGLang says why
    assert code != 0 and not left, "an engine process outlived the launcher"
