"""Several servers started and stopped as one: side by side (``start_together``, ``stop_together``),
or as workers behind a front (``ServerGroup``, SGLang's router). Whatever fails or is interrupted,
none of them is left running."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dynasor.evaluation.server_process import START_TIMEOUT_S, ServerProcess, stop_servers_on_sigterm


def start_together(servers: Sequence[ServerProcess], timeout: float = START_TIMEOUT_S) -> None:
    """Start several servers at once and wait until all are ready. Their start-ups overlap well:
    much of one is spent waiting (processes spawning, readiness polls), not computing. If any fails,
    or the wait is interrupted, every one of them is stopped and the first error is raised."""
    stop_servers_on_sigterm()  # from this (main) thread; start() in a helper thread cannot install it
    errors: list[BaseException] = []

    def start_one(server: ServerProcess) -> None:
        try:
            server.start(timeout)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=start_one, args=(server,), daemon=True) for server in servers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:
        stop_all_started(servers, threads)
        raise
    if errors:
        stop_all_started(servers, threads)
        raise errors[0]


def stop_together(servers: Sequence[ServerProcess], grace: float = 20.0) -> None:
    """Stop several servers side by side: all are asked to end first, then each is waited for."""
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop(grace)


def stop_all_started(servers: Sequence[ServerProcess], threads: Sequence[threading.Thread]) -> None:
    """Stop every server, wait for the threads starting them (a stopped server fails its readiness wait
    within a second), then stop again any a thread spawned after the first pass."""
    stop_together(servers)
    for thread in threads:
        thread.join(timeout=30)
    stop_together(servers)


class ServerGroup:
    """Servers behind a front (SGLang's router), started and stopped as one: the members first (all at
    once), the front once they answer; stopped front first. Used like one ``ServerProcess``."""

    def __init__(self, members: Sequence[ServerProcess], front: ServerProcess) -> None:
        self.members, self.front = list(members), front

    @property
    def url(self) -> str:
        return self.front.url

    @property
    def argv(self) -> list[str]:
        return self.front.argv

    @property
    def worker_urls(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self, timeout: float = START_TIMEOUT_S) -> ServerGroup:
        try:
            start_together(self.members, timeout)
            self.front.start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 20.0) -> None:
        self.front.stop(grace)
        stop_together(self.members, grace)

    def __enter__(self) -> ServerGroup:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
