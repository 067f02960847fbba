"""Start an SGLang or Dynasor server as a child process, wait until it answers, stop it by pid.

Tests and benchmarks use this for every server they run, so no server outlives its user:
``stop()`` ends exactly the process group it started (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server process (with its own process group) and its log file."""

    def __init__(self, argv: list[str], env: dict[str, str], url: str, log_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.url = url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def dynasor(cls, port: int, log_path: Path, extra_args: Sequence[str] = (),
                python: str = sys.executable) -> ServerProcess:
        """``python -m dynasor.launch_server`` on 127.0.0.1:port (default model unless given)."""
        argv = [python, "-m", "dynasor.launch_server", "--host", "127.0.0.1", "--port", str(port), *extra_args]
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
        return cls(argv, env, f"http://127.0.0.1:{port}", log_path)

    @classmethod
    def stock_sglang(cls, model_path: str, port: int, log_path: Path, extra_args: Sequence[str] = (),
                     python: str = sys.executable) -> ServerProcess:
        """Stock ``python -m sglang.launch_server`` with the same engine settings, Dynasor not armed."""
        from dynasor.srt.server_defaults import stock_sglang_command

        argv, env = stock_sglang_command(model_path, ["--host", "127.0.0.1", "--port", str(port), *extra_args], python)
        return cls(argv, env, f"http://127.0.0.1:{port}", log_path)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 600.0) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes it until stop() closes it
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc and self.proc.returncode
                self.stop()  # its children (scheduler, detokenizer) may still be alive
                raise RuntimeError(f"server exited early (code {code}); log tail:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"server at {self.url} not healthy after {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        """End the process group this object started, and nothing else."""
        if self.proc is None:
            return
        try:
            # SIGTERM the whole group first (the leader may already be gone, its children not).
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the same group (scheduler, detokenizer)
        self.proc.wait(timeout=grace)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
