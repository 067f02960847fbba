"""A small HTTP client for Dynasor servers, sync and async, that tags requests with programs.

    from dynasor.client import DynasorClient
    client = DynasorClient("http://127.0.0.1:30000")
    pid = client.new_program()
    out = client.generate("1, 2, 3,", {"max_new_tokens": 8}, program=pid)
    client.program(pid)          # counts and times of the program
    client.abort_program(pid)    # abort everything it still has waiting or running

Both clients speak SGLang's native ``/generate`` plus the ``/dynasor/...`` endpoints. Untagged
calls (``program=None``) work against a stock SGLang server too. A tagged request carries its
program's routing key for SGLang's router; ``router=True`` says ``base_url`` is that router, and
program status, listings, load and aborts go to every worker it lists (``dynasor.core.routing``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dynasor.core import routing
from dynasor.core.tag import ProgramTag, new_program_id, program_id_of, tag_sampling_params

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)


class DynasorHTTPError(RuntimeError):
    """A non-2xx answer; ``status`` and ``body`` hold what the server said."""

    def __init__(self, status: int, body: Any, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class EngineLoad:
    """Running and waiting requests and KV tokens in use in a Dynasor server's engine, taken when
    asked (``GET /dynasor/load``), summed over data-parallel ranks."""

    running: int
    waiting: int
    used_tokens: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> EngineLoad:
        return cls(int(body["running"]), int(body["waiting"]), int(body["used_tokens"]))


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


def _generate_call(
    prompt: str | list[int],
    sampling_params: Mapping[str, Any] | None,
    program: str | ProgramTag | Mapping[str, Any] | None,
    rid: str | None,
    extra: Mapping[str, Any],
) -> _Call:
    tagged = tag_sampling_params(sampling_params, program)
    body: dict[str, Any] = {"sampling_params": tagged, **extra}
    body["input_ids" if isinstance(prompt, list) else "text"] = prompt
    if rid is not None:
        body["rid"] = rid
    return _Call("POST", "/generate", body, routing.routing_headers(program_id_of(tagged)))


def _answer(response: httpx.Response) -> tuple[int, Any]:
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def _decode(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        raise DynasorHTTPError(response.status_code, body, str(response.request.url))
    return body


class _Calls:
    """The calls both clients share; subclasses only differ in how they send one."""

    router = False
    _WORKERS = _Call("GET", "/workers")

    @staticmethod
    def _merged(call: _Call, replies: list[tuple[int, Any]], url: str) -> Any:
        """The answer of a ``/dynasor`` call sent to every worker behind a router."""
        for status, body in replies:
            if status >= 400 and status != 404:
                raise DynasorHTTPError(status, body, url + call.path)
        found = [body for status, body in replies if status == 200]
        try:
            if call.path == "/dynasor/programs":
                return routing.merge_listings(found)
            if call.path == "/dynasor/load":
                return routing.merge_loads(found)
            if call.method == "POST":
                return routing.merge_abort(replies)
            return routing.merge_program(replies)
        except routing.NotOnAnyWorker as e:
            raise DynasorHTTPError(404, {"error": {"message": str(e), "code": 404}}, url + call.path) from None

    def _fans_out(self, call: _Call) -> bool:
        return self.router and call.path.startswith("/dynasor/")

    @staticmethod
    def new_program() -> str:
        return new_program_id()

    @staticmethod
    def _programs() -> _Call:
        return _Call("GET", "/dynasor/programs")

    @staticmethod
    def _program(program_id: str) -> _Call:
        return _Call("GET", f"/dynasor/programs/{program_id}")

    @staticmethod
    def _abort_program(program_id: str) -> _Call:
        return _Call("POST", f"/dynasor/programs/{program_id}/abort")

    @staticmethod
    def _load() -> _Call:
        return _Call("GET", "/dynasor/load")

    @staticmethod
    def _abort_request(rid: str) -> _Call:
        return _Call("POST", "/abort_request", {"rid": rid})

    @staticmethod
    def _tokenize(text: str, add_special_tokens: bool) -> _Call:
        return _Call("POST", "/tokenize", {"prompt": text, "add_special_tokens": add_special_tokens})


class DynasorClient(_Calls):
    """Blocking client (``httpx.Client``)."""

    def __init__(self, base_url: str, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, api_key: str | None = None,
                 router: bool = False):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self.router = router

    def _send(self, call: _Call) -> Any:
        if self._fans_out(call):
            urls = routing.worker_urls(self._send(self._WORKERS))
            replies = [_answer(self._http.request(call.method, url + call.path, json=call.body)) for url in urls]
            return self._merged(call, replies, str(self._http.base_url))
        return _decode(self._http.request(call.method, call.path, json=call.body, headers=call.headers))

    def generate(self, prompt: str | list[int], sampling_params: Mapping[str, Any] | None = None,
                 program: str | ProgramTag | Mapping[str, Any] | None = None, rid: str | None = None,
                 **extra: Any) -> dict[str, Any]:
        return self._send(_generate_call(prompt, sampling_params, program, rid, extra))

    def programs(self) -> list[dict[str, Any]]:
        return self._send(self._programs())["programs"]

    def program(self, program_id: str) -> dict[str, Any]:
        return self._send(self._program(program_id))

    def abort_program(self, program_id: str) -> dict[str, Any]:
        return self._send(self._abort_program(program_id))

    def abort_request(self, rid: str) -> Any:
        """SGLang's own abort of one request (works on stock servers too)."""
        return self._send(self._abort_request(rid))

    def load(self) -> EngineLoad:
        return EngineLoad.from_json(self._send(self._load()))

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The server's token ids of ``text`` (SGLang's ``/tokenize``; what ``/generate`` makes of it)."""
        return list(self._send(self._tokenize(text, add_special_tokens))["tokens"])

    def get(self, path: str) -> Any:
        return self._send(_Call("GET", path))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DynasorClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncDynasorClient(_Calls):
    """Asyncio client (``httpx.AsyncClient``)."""

    def __init__(self, base_url: str, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, api_key: str | None = None,
                 max_connections: int = 256, router: bool = False):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers, limits=limits)
        self.router = router

    async def _send(self, call: _Call) -> Any:
        if self._fans_out(call):
            urls = routing.worker_urls(await self._send(self._WORKERS))
            replies = await asyncio.gather(*(self._http.request(call.method, url + call.path, json=call.body)
                                             for url in urls))
            return self._merged(call, [_answer(r) for r in replies], str(self._http.base_url))
        return _decode(await self._http.request(call.method, call.path, json=call.body, headers=call.headers))

    async def generate(self, prompt: str | list[int], sampling_params: Mapping[str, Any] | None = None,
                       program: str | ProgramTag | Mapping[str, Any] | None = None, rid: str | None = None,
                       **extra: Any) -> dict[str, Any]:
        return await self._send(_generate_call(prompt, sampling_params, program, rid, extra))

    async def programs(self) -> list[dict[str, Any]]:
        return (await self._send(self._programs()))["programs"]

    async def program(self, program_id: str) -> dict[str, Any]:
        return await self._send(self._program(program_id))

    async def abort_program(self, program_id: str) -> dict[str, Any]:
        return await self._send(self._abort_program(program_id))

    async def abort_request(self, rid: str) -> Any:
        """SGLang's own abort of one request (works on stock servers too)."""
        return await self._send(self._abort_request(rid))

    async def load(self) -> EngineLoad:
        return EngineLoad.from_json(await self._send(self._load()))

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The server's token ids of ``text`` (SGLang's ``/tokenize``; what ``/generate`` makes of it)."""
        return list((await self._send(self._tokenize(text, add_special_tokens)))["tokens"])

    async def get(self, path: str) -> Any:
        return await self._send(_Call("GET", path))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncDynasorClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
