"""Where programs send their LLM requests.

``DynasorBackend`` tags every request with the program (and, once known, its remaining work) and
stops a program with one ``/dynasor/programs/{id}/abort`` call. ``StockSGLangBackend`` talks to a
stock SGLang server: untagged requests, and stopping aborts each outstanding rid (the baseline).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from dynasor.client import AsyncDynasorClient


@dataclass(frozen=True)
class Generation:
    text: str
    completion_tokens: int
    finish_reason: str
    meta_info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def aborted(self) -> bool:
        return self.finish_reason == "abort"


class Backend(Protocol):
    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> Generation: ...

    async def stop_program(self, program_id: str) -> None: ...


def _generation(out: Mapping[str, Any]) -> Generation:
    meta = out["meta_info"]
    return Generation(out["text"], meta["completion_tokens"], meta["finish_reason"]["type"], meta)


class DynasorBackend:
    def __init__(self, client: AsyncDynasorClient) -> None:
        self.client = client

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> Generation:
        tag: dict[str, Any] = {"program_id": program_id}
        if remaining_work is not None:
            tag["remaining_work"] = remaining_work
        return _generation(await self.client.generate(prompt, params, program=tag))

    async def stop_program(self, program_id: str) -> None:
        await self.client.abort_program(program_id)


class StockSGLangBackend:
    """Untagged requests to a stock SGLang server; stopping aborts each outstanding rid."""

    def __init__(self, client: AsyncDynasorClient) -> None:
        self.client = client
        self._live: dict[str, set[str]] = {}

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> Generation:
        rid = uuid.uuid4().hex
        self._live.setdefault(program_id, set()).add(rid)
        try:
            return _generation(await self.client.generate(prompt, params, rid=rid))
        finally:
            self._live[program_id].discard(rid)

    async def stop_program(self, program_id: str) -> None:
        rids = list(self._live.get(program_id, ()))
        await asyncio.gather(*[self.client._http.post("/abort_request", json={"rid": rid}) for rid in rids])
