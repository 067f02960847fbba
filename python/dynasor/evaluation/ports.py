"""Ports for the servers tests and benchmarks start: free now, and safe from the engine's own sockets."""

from __future__ import annotations

import errno
import os
import random
import secrets
import socket
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000  # below: well-known and registered services
# "i/n": this process takes only ports p with p % n == i, so n processes starting servers side by side
# (the test suite's two lanes, test/conftest.py) never pick the same port between one's check and
# its server's bind
PORT_SLICE_ENV = "DYNASOR_PORT_SLICE"
_handed_out: set[int] = set()


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for ports it hands out itself (bind to 0, outgoing connections)."""
    try:
        low, high = (int(v) for v in EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port for a server this process starts: free now, outside the kernel's ephemeral range (a
    starting engine's own sockets, gloo and ZMQ, bind ephemeral ports and could take it before the
    server binds it), and never handed out twice by this process."""
    low, high = ephemeral_port_range()
    index, count = port_slice()
    candidates = [p for p in (*range(LOWEST_PORT, low), *range(high + 1, 65536)) if p % count == index]
    rng = random.Random(secrets.randbits(64))
    for port in rng.sample(candidates, k=min(len(candidates), 200)):
        if port not in _handed_out and not port_in_use(host, port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port on {host} outside the ephemeral range {low}-{high}")


def port_slice() -> tuple[int, int]:
    """(i, n) from DYNASOR_PORT_SLICE; (0, 1), every port, when it is unset."""
    value = os.environ.get(PORT_SLICE_ENV, "0/1")
    try:
        index, count = (int(v) for v in value.split("/"))
        if 0 <= index < count:
            return index, count
    except ValueError:
        pass
    raise ValueError(f"{PORT_SLICE_ENV} must be 'i/n' with 0 <= i < n, not {value!r}")


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on (host, port): a server would fail to bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False
