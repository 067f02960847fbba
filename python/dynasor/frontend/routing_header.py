"""The router's routing key on the requests a ``DynasorEndpoint`` sends (``sgl.function`` programs).

Behind SGLang's router every request of a program must carry ``x-smg-routing-key``
(``dynasor.core.routing``), but SGLang's frontend (written against sglang==0.5.23) posts through
``sglang.utils.http_request``, which takes no headers, imported by name into
``sglang.lang.backend.runtime_endpoint``. That name is wrapped once, when the first endpoint is
made: while an endpoint's call runs ``with sending_routing_key(key)`` on this thread, the POST also
carries the header (sent with ``requests``, which SGLang's own streaming path uses; the answer has
the same ``status_code``/``json()``/``iter_lines`` as SGLang's); every other call goes to SGLang's
function unchanged. A release whose ``http_request`` differs fails loudly at that first endpoint.
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests

from dynasor.core.routing import FRONTEND_POST_MODULE, FRONTEND_POST_PARAMETERS, ROUTING_KEY_HEADER

TARGET = FRONTEND_POST_MODULE
_EXPECTED_PARAMETERS = list(FRONTEND_POST_PARAMETERS)
_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("dynasor_routing_key", default=None)
_LOCK = threading.Lock()


@contextmanager
def sending_routing_key(key: str) -> Iterator[None]:
    token = _KEY.set(key)
    try:
        yield
    finally:
        _KEY.reset(token)


def install() -> None:
    """Wrap the frontend's ``http_request`` (idempotent)."""
    with _LOCK:
        module = importlib.import_module(TARGET)
        current = getattr(module, "http_request", None)
        if getattr(current, "dynasor_wrapped", None) is not None:
            return
        if current is None or list(inspect.signature(current).parameters) != _EXPECTED_PARAMETERS:
            raise RuntimeError(f"{TARGET}.http_request is not the one Dynasor was written against (sglang==0.5.23: "
                               f"parameters {_EXPECTED_PARAMETERS}): sgl.function programs cannot send the router's "
                               "routing key")
        module.http_request = _keyed(current)  # type: ignore[attr-defined]


def _keyed(original: Callable[..., Any]) -> Callable[..., Any]:
    def http_request(url: str, json: Any = None, stream: bool = False, api_key: str | None = None,
                     verify: str | None = None, method: str | None = None) -> Any:
        key = _KEY.get()
        if key is None:
            return original(url, json=json, stream=stream, api_key=api_key, verify=verify, method=method)
        headers = {"Content-Type": "application/json; charset=utf-8", ROUTING_KEY_HEADER: key}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        return requests.request(method or ("GET" if json is None else "POST"), url, json=json, stream=stream,
                                headers=headers, verify=verify if isinstance(verify, str) else True)

    http_request.dynasor_wrapped = original  # type: ignore[attr-defined]
    return http_request
