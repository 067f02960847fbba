"""Where programs send their LLM requests (implementations of ``dynasor.core.generation.Backend``).

``DynasorBackend`` tags every request with the program (and, once known, its remaining work) and
stops a program with one ``/dynasor/programs/{id}/abort`` call. ``StockSGLangBackend`` talks to a
stock SGLang server: untagged requests, and stopping aborts each outstanding rid (the baseline).
``EngineBackend`` drives an in-process engine (``sglang.Engine``, or the server's own
TokenizerManager for the OpenAI modes). ``RecordingBackend`` wraps any of them and keeps every
request's prompt and generation per program (calibration, the batch benchmark's traces, usage).

``params`` are SGLang sampling params passed through as given (``temperature``, ``top_p``,
``stop``, ...); the backends only add the program tag.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from dynasor.core.abort import abort_when_dispatched, dispatched_by
from dynasor.core.generation import Backend, Generation, Prompt
from dynasor.core.tag import NO_HINTS, RequestHints, tag_sampling_params

if TYPE_CHECKING:
    from dynasor.client import AsyncDynasorClient


def _sendable(prompt: Prompt) -> str | list[int]:
    """Text as it is; token ids as the JSON list SGLang's ``input_ids`` takes."""
    return prompt if isinstance(prompt, str) else list(prompt)


class _LiveRids:
    """Rids in flight per program; a program's entry goes when its last rid ends (bounded memory)."""

    def __init__(self) -> None:
        self.by_program: dict[str, set[str]] = {}

    def add(self, program_id: str) -> str:
        rid = uuid.uuid4().hex  # 32 lowercase hex: required of tagged rids (dynasor.core.tag)
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
    """``token_stats``: every request asks for per-token statistics (recordings that keep them, as
    calibration's); otherwise only requests whose hints ask do."""

    def __init__(self, client: AsyncDynasorClient, token_stats: bool = False) -> None:
        self.client = client
        self.token_stats = token_stats

    async def generate(self, prompt: Prompt, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None, hints: RequestHints = NO_HINTS) -> Generation:
        if self.token_stats:
            hints = replace(hints, token_stats=True)
        out = await self.client.generate(_sendable(prompt), params, program=hints.tag(program_id, remaining_work))
        return Generation.from_response(out)

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int] | None:
        return await self.client.tokenize(text, add_special_tokens)

    async def stop_program(self, program_id: str) -> None:
        await self.client.abort_program(program_id)


class StockSGLangBackend:
    """Untagged requests to a stock SGLang server; stopping aborts each outstanding rid.

    ``client_priority``: each request carries SGLang's ``priority`` field, the program's remaining
    work as its client knows it (for self-consistency: unfinished branches x their token budget),
    for a server started with ``--enable-priority-scheduling --schedule-low-priority-values-first``:
    shortest job first driven by the client, stock SGLang's best answer to program-aware scheduling."""

    def __init__(self, client: AsyncDynasorClient, client_priority: bool = False) -> None:
        self.client = client
        self.client_priority = client_priority
        self._live = _LiveRids()

    async def generate(self, prompt: Prompt, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None, hints: RequestHints = NO_HINTS) -> Generation:
        rid = self._live.add(program_id)
        extra: dict[str, Any] = {}
        if self.client_priority and remaining_work is not None:
            extra["priority"] = round(remaining_work)
        try:
            return Generation.from_response(await self.client.generate(_sendable(prompt), params, rid=rid, **extra))
        finally:
            self._live.discard(program_id, rid)

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int] | None:
        return await self.client.tokenize(text, add_special_tokens)

    async def stop_program(self, program_id: str) -> None:
        await asyncio.gather(*[self.client.abort_request(rid) for rid in self._live.of(program_id)])


class InProcessEngine(Protocol):
    """What ``EngineBackend`` needs of an engine: ``sglang.Engine`` has it, and so has the server's
    TokenizerManager behind ``dynasor.srt.tokenizer_engine``."""

    async def async_generate(self, prompt: str | None = None, sampling_params: Mapping[str, Any] | None = None,
                             input_ids: list[int] | None = None, rid: str | None = None) -> Mapping[str, Any]: ...

    @property
    def tokenizer_manager(self) -> Any: ...


class EngineBackend:
    """Requests to an in-process engine (sglang is not imported here).

    Requests carry the same ``custom_params["dynasor"]`` tag as DynasorBackend's (an engine running
    the Dynasor plugin schedules them as programs; a stock one passes the field through unused) and
    a uuid4 rid tracked per program; ``stop_program`` aborts the program's live rids, each once
    the engine has dispatched it (``dynasor.core.abort``), retrying every ``abort_poll_s`` for at
    most ``abort_timeout_s``. A stopped program's later requests return "abort" unsent.
    """

    MAX_STOPPED = 4096  # remembered stopped programs (oldest forgotten first)

    def __init__(self, engine: InProcessEngine, tag: bool = True, abort_poll_s: float = 0.005,
                 abort_timeout_s: float = 5.0) -> None:
        self.engine = engine
        self.tag = tag
        self.abort_poll_s, self.abort_timeout_s = abort_poll_s, abort_timeout_s
        self._live = _LiveRids()
        self._stopped: OrderedDict[str, None] = OrderedDict()

    async def generate(self, prompt: Prompt, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None, hints: RequestHints = NO_HINTS) -> Generation:
        if program_id in self._stopped:
            return Generation("", 0, "abort")
        sampling = tag_sampling_params(params, hints.tag(program_id, remaining_work)) if self.tag else dict(params)
        rid = self._live.add(program_id)
        try:
            text, ids = (prompt, None) if isinstance(prompt, str) else (None, list(prompt))
            out = await self.engine.async_generate(prompt=text, sampling_params=sampling, input_ids=ids, rid=rid)
        finally:
            self._live.discard(program_id, rid)
        return Generation.from_response(out)

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int] | None:
        """With the engine's own tokenizer (None when it runs without one, ``skip_tokenizer_init``)."""
        tokenizer = getattr(self.engine.tokenizer_manager, "tokenizer", None)
        if tokenizer is None:
            return None
        return list(tokenizer.encode(text, add_special_tokens=add_special_tokens))

    async def stop_program(self, program_id: str) -> None:
        self._stopped[program_id] = None
        self._stopped.move_to_end(program_id)
        while len(self._stopped) > self.MAX_STOPPED:
            self._stopped.popitem(last=False)
        manager = self.engine.tokenizer_manager
        await abort_when_dispatched(lambda: self._live.of(program_id), lambda rid: dispatched_by(manager, rid),
                                    lambda rid: manager.abort_request(rid=rid),
                                    self.abort_timeout_s, self.abort_poll_s)


class RecordingBackend:
    """Passes requests through and keeps ``(prompt, generation)`` per program, in completion order,
    and beside each the wall-clock times (``time.time()``) it was sent and answered."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.calls: dict[str, list[tuple[Prompt, Generation]]] = {}
        self.times: dict[str, list[tuple[float, float]]] = {}

    async def generate(self, prompt: Prompt, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None, hints: RequestHints = NO_HINTS) -> Generation:
        sent = time.time()
        out = await self.inner.generate(prompt, params, program_id, remaining_work=remaining_work, hints=hints)
        self.calls.setdefault(program_id, []).append((prompt, out))
        self.times.setdefault(program_id, []).append((sent, time.time()))
        return out

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int] | None:
        return await self.inner.tokenize(text, add_special_tokens)

    async def stop_program(self, program_id: str) -> None:
        await self.inner.stop_program(program_id)

    def generations(self, program_id: str) -> list[Generation]:
        return [generation for _, generation in self.calls.get(program_id, [])]

    def sent_and_answered(self, program_id: str) -> list[tuple[float, float]]:
        """Per generation (same order): when it was sent and when its answer came, wall clock."""
        return list(self.times.get(program_id, []))
