"""Where programs send their LLM requests.

``DynasorBackend`` tags every request with the program (and, once known, its remaining work) and
stops a program with one ``/dynasor/programs/{id}/abort`` call. ``StockSGLangBackend`` talks to a
stock SGLang server: untagged requests, and stopping aborts each outstanding rid (the baseline).
``EngineBackend`` drives an in-process ``sglang.Engine`` (offline batch runs, no HTTP).

``params`` are SGLang sampling params passed through as given (``temperature``, ``top_p``,
``stop``, ...); the backends only add the program tag.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from dynasor.client import AsyncDynasorClient, tag_sampling_params


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


def _tag(program_id: str, remaining_work: float | None) -> dict[str, Any]:
    tag: dict[str, Any] = {"program_id": program_id}
    if remaining_work is not None:
        tag["remaining_work"] = remaining_work
    return tag


class _LiveRids:
    """Rids in flight per program; a program's entry goes when its last rid ends (bounded memory)."""

    def __init__(self) -> None:
        self.by_program: dict[str, set[str]] = {}

    def add(self, program_id: str) -> str:
        rid = uuid.uuid4().hex  # 32 lowercase hex: required of tagged rids (dynasor.tags)
        self.by_program.setdefault(program_id, set()).add(rid)
        return rid

    def discard(self, program_id: str, rid: str) -> None:
        rids = self.by_program.get(program_id)
        if rids is not None:
            rids.discard(rid)
            if not rids:
                del self.by_program[program_id]

    def of(self, program_id: str) -> set[str]:
        return set(self.by_program.get(program_id, ()))


class DynasorBackend:
    def __init__(self, client: AsyncDynasorClient) -> None:
        self.client = client

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> Generation:
        return _generation(await self.client.generate(prompt, params, program=_tag(program_id, remaining_work)))

    async def stop_program(self, program_id: str) -> None:
        await self.client.abort_program(program_id)


class StockSGLangBackend:
    """Untagged requests to a stock SGLang server; stopping aborts each outstanding rid."""

    def __init__(self, client: AsyncDynasorClient) -> None:
        self.client = client
        self._live = _LiveRids()

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> Generation:
        rid = self._live.add(program_id)
        try:
            return _generation(await self.client.generate(prompt, params, rid=rid))
        finally:
            self._live.discard(program_id, rid)

    async def stop_program(self, program_id: str) -> None:
        rids = self._live.of(program_id)
        await asyncio.gather(*[self.client._http.post("/abort_request", json={"rid": rid}) for rid in rids])


class EngineBackend:
    """Offline runs on an in-process ``sglang.Engine``, or anything with ``async_generate(prompt=,
    sampling_params=, rid=)`` and ``tokenizer_manager.abort_request(rid=)`` (sglang is not imported).

    Requests carry the same ``custom_params["dynasor"]`` tag as DynasorBackend's (an Engine running
    the Dynasor plugin schedules them as programs; a stock one passes the field through unused) and
    a uuid4 rid tracked per program; ``stop_program`` aborts the program's live rids. The tokenizer
    manager drops an abort for a rid it has not dispatched yet (the scheduler would get the abort
    before the request), so such rids are retried every ``abort_poll_s`` until dispatched or done,
    for at most ``abort_timeout_s``. A stopped program's later requests return "abort" unsent.
    """

    MAX_STOPPED = 4096  # remembered stopped programs (oldest forgotten first)

    def __init__(self, engine: Any, tag: bool = True, abort_poll_s: float = 0.005,
                 abort_timeout_s: float = 5.0) -> None:
        self.engine = engine
        self.tag = tag
        self.abort_poll_s, self.abort_timeout_s = abort_poll_s, abort_timeout_s
        self._live = _LiveRids()
        self._stopped: OrderedDict[str, None] = OrderedDict()

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None) -> Generation:
        if program_id in self._stopped:
            return Generation("", 0, "abort")
        sampling = tag_sampling_params(params, _tag(program_id, remaining_work)) if self.tag else dict(params)
        rid = self._live.add(program_id)
        try:
            out = await self.engine.async_generate(prompt=prompt, sampling_params=sampling, rid=rid)
        finally:
            self._live.discard(program_id, rid)
        return _generation(out)

    def _dispatched(self, rid: str) -> bool:
        states = getattr(self.engine.tokenizer_manager, "rid_to_state", None)
        if states is None:
            return True
        state = states.get(rid)
        return state is not None and getattr(state, "dispatched", True)

    async def stop_program(self, program_id: str) -> None:
        self._stopped[program_id] = None
        self._stopped.move_to_end(program_id)
        while len(self._stopped) > self.MAX_STOPPED:
            self._stopped.popitem(last=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.abort_timeout_s
        sent: set[str] = set()
        while True:
            for rid in self._live.of(program_id) - sent:
                if self._dispatched(rid):
                    self.engine.tokenizer_manager.abort_request(rid=rid)
                    sent.add(rid)
            if not self._live.of(program_id) - sent or loop.time() >= deadline:
                return
            await asyncio.sleep(self.abort_poll_s)
