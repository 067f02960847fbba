"""Dynasor servers behind SGLang's router (``smg`` >= 1.10, PyPI): one worker per program.

The router picks a worker per request; a program's branches must all reach the one that holds its
prompt in cache and its gang in its queue. Every tagged request therefore carries the router's
routing-key header (``x-smg-routing-key``) with a key derived from its program id, and the router
runs the ``manual`` policy, which sends every request with a key to the worker it chose for that
key (``--assignment-mode min_load``: a new key to the worker with the fewest requests).

The key is a hash, not the id: a program id is the capability that reads and aborts the program,
and the router logs its routing keys.

The router serves only SGLang's own routes (``/generate``, ``/v1/...``); ``/dynasor/...`` stays on the
workers. A client told it talks to a router (``DynasorClient(url, router=True)``) asks the router
for its workers (``GET /workers``) and sends program status, listings, load and aborts to every
worker; the functions below merge the answers.

Why ``smg`` >= 1.10: ``sglang-router`` 0.3.2 (its last release) and ``smg`` before 1.10 re-encode
``/generate`` bodies through a fixed struct whose ``sampling_params`` has no ``custom_params``, so
a tagged request reaches the worker untagged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

ROUTING_KEY_HEADER = "x-smg-routing-key"
_KEY_DOMAIN = b"dynasor-program-routing:"
# The function SGLang's frontend posts through (sglang==0.5.23), which ``dynasor.frontend.routing_header``
# wraps to send the key, and the parameters it was written against (the hook self-check verifies both).
FRONTEND_POST_MODULE = "sglang.lang.backend.runtime_endpoint"
FRONTEND_POST_PARAMETERS = ("url", "json", "stream", "api_key", "verify", "method")


def routing_key(program_id: str) -> str:
    """The router's key of a program: stable, and reveals nothing of the id."""
    return hashlib.sha256(_KEY_DOMAIN + program_id.encode()).hexdigest()[:32]


def routing_headers(program_id: str | None) -> dict[str, str]:
    return {} if program_id is None else {ROUTING_KEY_HEADER: routing_key(program_id)}


def worker_urls(listing: Mapping[str, Any]) -> list[str]:
    """The worker URLs in the router's ``GET /workers`` answer."""
    urls = [w.get("url") for w in listing.get("workers", []) if isinstance(w, Mapping)]
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise ValueError(f"the router's /workers answer lists no worker URLs: {listing}")
    return [str(u).rstrip("/") for u in urls]


class NotOnAnyWorker(LookupError):
    """No worker behind the router knows the program."""


def merge_program(replies: Sequence[tuple[int, Any]]) -> Any:
    """``GET /dynasor/programs/{id}``: the answer of the worker that holds it."""
    found = [body for status, body in replies if status == 200]
    if not found:
        raise NotOnAnyWorker("program not found on any worker")
    return found[0]


def merge_abort(replies: Sequence[tuple[int, Any]]) -> dict[str, Any]:
    """``POST /dynasor/programs/{id}/abort`` on every worker: aborted requests summed over those
    that knew the program (the others answer 404)."""
    known = [body for status, body in replies if status == 200]
    if not known:
        raise NotOnAnyWorker("program not found on any worker")
    return {"program_key": known[0]["program_key"], "workers": len(known),
            "aborted_requests": sum(int(body["aborted_requests"]) for body in known)}


def merge_listings(replies: Sequence[Any]) -> dict[str, Any]:
    programs = [p for body in replies for p in body["programs"]]
    return {"programs": programs, "count": len(programs)}


def merge_loads(replies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {key: sum(int(r.get(key, 0)) for r in replies) for key in replies[0]} if replies else {}
