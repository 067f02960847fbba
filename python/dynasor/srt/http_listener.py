"""The server's HTTP port, held from launch until uvicorn serves on it (sglang==0.5.23, uvicorn 0.54).

SGLang binds its HTTP port only after the model has loaded. Meanwhile the engine's own processes
bind ephemeral ports (gloo, ZMQ): a port that was free at launch can be taken in between, and
uvicorn's failed bind then waits on SGLang's warm-up thread for minutes instead of exiting. So the
launcher binds and listens on the port before anything else starts (``reserve_http_port``), and
the ``uvicorn.Server.serve`` hook hands that socket to uvicorn. Connections that arrive while the
model loads wait in the listen backlog and are answered once the server is up.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class PortTakenError(RuntimeError):
    """The server's port is already bound by another process."""


class HttpListener:
    """A listening socket on (host, port), made before the engine starts, served by uvicorn later."""

    def __init__(self, host: str, port: int, backlog: int = 2048) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is not "in use"
        try:
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError as e:
            sock.close()
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortTakenError(f"port {port} on {host} is already in use (another server?); "
                                     "stop it or choose another --port") from None
            raise
        self.host, self.port = host, int(sock.getsockname()[1])
        self._socket: socket.socket | None = sock

    def serves(self, host: str, port: int) -> bool:
        """Whether a uvicorn server configured for (host, port) should serve on this socket."""
        return self._socket is not None and (host, int(port)) == (self.host, self.port)

    def take(self) -> socket.socket:
        """The socket, handed over once: its new owner (uvicorn) closes it."""
        if self._socket is None:
            raise RuntimeError(f"the listener on {self.host}:{self.port} was already handed over")
        sock, self._socket = self._socket, None
        return sock

    @property
    def handed_over(self) -> bool:
        return self._socket is None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


_reserved: HttpListener | None = None


def reserve_http_port(host: str, port: int) -> HttpListener:
    """Bind and listen on the server's port now; raises ``PortTakenError`` if it is taken."""
    global _reserved
    if _reserved is not None:
        _reserved.close()
    _reserved = HttpListener(host, port)
    return _reserved


def reserved_listener() -> HttpListener | None:
    return _reserved


def serve_on_reserved_port(original: Callable[..., Any], server: Any,
                           sockets: list[socket.socket] | None = None) -> Any:
    """AROUND ``uvicorn.Server.serve``: serve on the socket the launcher reserved for this host and
    port instead of binding it again (which could fail after the model has loaded)."""
    listener = _reserved
    if sockets is None and listener is not None and listener.serves(server.config.host, server.config.port):
        sockets = [listener.take()]
        logger.info("Uvicorn serving on http://%s:%d (port held since launch)", listener.host, listener.port)
    return original(server, sockets=sockets)
