"""Start an SGLang or Dynasor server as a child process, wait until it answers, stop it by pid.

Tests and benchmarks use this for every server they run, so no server outlives its user:

- ``start()`` refuses a port that is already taken (before anything is spawned) and starts one
  process, however the object is used (``start()`` then ``with`` does not start a second);
- readiness is ``/health`` answering *and*, for a Dynasor server, ``GET /dynasor/instance`` naming
  the launch id this object gave it (``DYNASOR_INSTANCE_ID``): another server cannot pass for it;
- ``stop()`` ends exactly the process group it started (SIGTERM, then SIGKILL after a grace period)
  and returns once no process of that group is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from dynasor.core.instance import ENV_INSTANCE_ID, instance_of
from dynasor.evaluation.ports import free_port, port_in_use

# Log lines after which a starting server can never become ready (uvicorn's and smg's failed binds,
# SGLang's failed app start-up): readiness waits stop at once instead of running out their clock.
FATAL_LOG_LINES = ("error while attempting to bind", "Application startup failed", "Failed to bind the HTTP listener")
STALL_S = 180.0  # a starting server that writes no log line for this long is stuck
START_TIMEOUT_S = 300.0  # below pytest's per-test limit (pytest.ini), so a fixture never outwaits it


class ServerStartError(RuntimeError):
    """The server exited, reported a fatal error or stopped making progress before it was ready."""


def stop_servers_on_sigterm() -> None:
    """Make SIGTERM (``timeout``, a CI runner) interrupt this process as Ctrl-C does instead of
    killing it at once, so the ``with``/``finally`` blocks (and pytest's fixture teardown) that
    stop its servers run: by default a terminated benchmark left its server running, busy with the
    requests still queued. ``KeyboardInterrupt``, not ``SystemExit``: pytest would count the
    latter as one test's failure and go on. Only from the main thread, and only where nobody
    installed a handler of their own."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        def interrupt_on_sigterm(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt_on_sigterm)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ServerProcess:
    """One server process (with its own process group) and its log file."""

    def __init__(self, argv: list[str], env: dict[str, str], url: str, log_path: Path,
                 instance_id: str | None = None, workers: Sequence[str] = (), stall_s: float = STALL_S) -> None:
        self.argv = argv
        self.env = env
        self.url = url
        self.log_path = log_path
        self.instance_id = instance_id  # the launch id a Dynasor server must report (None: not checked)
        self.workers = [w.rstrip("/") for w in workers]  # a router: ready once it serves all of them
        self.stall_s = stall_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._terminated: int | None = None  # the pid SIGTERM was sent to (its group), once

    @classmethod
    def dynasor(cls, port: int, log_path: Path, extra_args: Sequence[str] = (),
                python: str = sys.executable) -> ServerProcess:
        """``python -m dynasor.launch_server`` on 127.0.0.1:port (default model unless given)."""
        argv = [python, "-m", "dynasor.launch_server", "--host", "127.0.0.1", "--port", str(port), *extra_args]
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
        instance_id = secrets.token_hex(8)
        env[ENV_INSTANCE_ID] = instance_id
        return cls(argv, env, f"http://127.0.0.1:{port}", log_path, instance_id)

    @classmethod
    def stock_sglang(cls, model_path: str, port: int, log_path: Path, extra_args: Sequence[str] = (),
                     python: str = sys.executable) -> ServerProcess:
        """Stock ``python -m sglang.launch_server`` with the same engine settings, Dynasor not armed."""
        from dynasor.srt.cpu_defaults import stock_sglang_command

        argv, env = stock_sglang_command(model_path, ["--host", "127.0.0.1", "--port", str(port), *extra_args], python)
        return cls(argv, env, f"http://127.0.0.1:{port}", log_path)

    @classmethod
    def smg_router(cls, port: int, log_path: Path, worker_urls: Sequence[str], extra_args: Sequence[str] = (),
                   python: str = sys.executable, policy: str = "manual") -> ServerProcess:
        """SGLang's router (``smg``) on 127.0.0.1:port in front of ``worker_urls``. By default it routes
        by program (``manual`` policy on Dynasor's routing key, new keys to the least loaded worker;
        see ``dynasor.core.routing``). Its metrics listener stays on loopback too."""
        assignment = ["--assignment-mode", "min_load"] if policy == "manual" else []
        argv = [python, "-m", "smg.launch_router", "--host", "127.0.0.1", "--port", str(port),
                "--worker-urls", *worker_urls, "--policy", policy, *assignment,
                "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port()), "--log-level", "warn",
                *extra_args]
        return cls(argv, dict(os.environ), f"http://127.0.0.1:{port}", log_path, workers=worker_urls)

    @property
    def worker_urls(self) -> list[str]:
        """The engines behind this URL: the workers of a router, else the server itself."""
        return list(self.workers) or [self.url]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> ServerProcess:
        """Start the server and wait until it is ready; a no-op if this object's server runs."""
        if self.running:
            return self
        silent = self.silent_workers()
        if silent:
            raise ServerStartError(f"not starting the router at {self.url}: its workers {', '.join(silent)} "
                                   "do not answer /health")
        address = urlsplit(self.url)
        if address.hostname and address.port and port_in_use(address.hostname, address.port):
            raise RuntimeError(f"port {address.port} on {address.hostname} is already in use: not starting "
                               f"another server there ({' '.join(self.argv[:3])} ...)")
        stop_servers_on_sigterm()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes it until stop() closes it
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.wait_ready(timeout)
        except BaseException:  # not ready, or interrupted (Ctrl-C) while waiting: leave nothing behind
            self.stop()
            raise
        return self

    def is_ours(self) -> bool:
        """The server answering at ``url`` is the one this object started."""
        return self.instance_id is None or instance_of(self.url) == self.instance_id

    def serves_its_workers(self) -> bool:
        """A router answers /health before it has registered its workers: ready once it lists every
        one of them as ready (``GET /workers``)."""
        if not self.workers:
            return True
        listed = httpx.get(self.url + "/workers", timeout=5).json().get("workers", [])
        ready = {str(w.get("url", "")).rstrip("/") for w in listed if w.get("status") == "ready"}
        return set(self.workers) <= ready

    def silent_workers(self) -> list[str]:
        """This router's workers that do not answer ``/health`` themselves: a router waits for them
        without end, so its start fails instead."""
        silent = []
        for worker in self.workers:
            try:
                if httpx.get(worker + "/health", timeout=5).status_code != 200:
                    silent.append(worker)
            except httpx.HTTPError:
                silent.append(worker)
        return silent

    def wait_ready(self, timeout: float) -> None:
        """Wait until the server is ready. Fail fast, stopping it, when its process exits, its log
        reports a failure it cannot recover from (``FATAL_LOG_LINES``), or the log has not grown for
        ``stall_s`` while it is not ready (a start-up that hangs writes nothing)."""
        started = time.monotonic()
        deadline = started + timeout
        last_size, last_growth = -1, started
        while True:
            now = time.monotonic()
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc and self.proc.returncode
                self.stop()  # its children (scheduler, detokenizer) may still be alive
                raise ServerStartError(f"server exited early (code {code}); log tail:\n{self.log_tail()}")
            fatal = self.fatal_log_line()
            if fatal:
                self.stop()
                raise ServerStartError(f"server at {self.url} cannot start ({fatal.strip()}); "
                                       f"log tail:\n{self.log_tail()}")
            size = self.log_path.stat().st_size if self.log_path.exists() else 0
            if size != last_size:
                last_size, last_growth = size, now
            elif now - last_growth > self.stall_s:
                self.stop()
                raise ServerStartError(f"server at {self.url} stopped making progress: not ready and no log "
                                       f"output for {self.stall_s:.0f}s; log tail:\n{self.log_tail()}")
            silent = self.silent_workers()
            if silent:
                self.stop()
                raise ServerStartError(f"router at {self.url}: its workers {', '.join(silent)} stopped answering "
                                       f"/health; log tail:\n{self.log_tail()}")
            if now >= deadline:
                break
            try:
                if (httpx.get(self.url + "/health", timeout=5).status_code == 200 and self.is_ours()
                        and self.serves_its_workers()):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"server at {self.url} not healthy after {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def fatal_log_line(self) -> str | None:
        for line in self.log_text().splitlines():
            if any(marker in line for marker in FATAL_LOG_LINES):
                return line
        return None

    def log_text(self) -> str:
        """What this object's server wrote; empty before ``start()`` launched it, so a watcher never
        reads the file an earlier run left at the same path."""
        return self.log_path.read_text(errors="replace") if self.proc is not None and self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def terminate(self) -> None:
        """Ask the whole process group to end (SIGTERM, once) without waiting: servers stopped together
        shut down side by side (``stop_together``; each takes seconds to reap its engine processes)."""
        if self.proc is None or self._terminated == self.proc.pid:
            return
        self._terminated = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            # the whole group (the leader may already be gone, its children not)
            os.killpg(self.proc.pid, signal.SIGTERM)  # start_new_session: the server leads its own group

    def stop(self, grace: float = 20.0) -> None:
        """End the process group this object started, and nothing else; return when it is gone."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # stragglers of the same group (scheduler, detokenizer)
        self.proc.wait(timeout=grace)
        deadline = time.monotonic() + grace
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
