"""The server's own TokenizerManager as an in-process engine (written against sglang==0.5.23).

The OpenAI dynasor modes run their program inside the main process: ``TokenizerManagerEngine``
sends a program's requests straight to SGLang's ``TokenizerManager``
(``generate_request(GenerateReqInput(...), raw_request).__anext__()``, as ``Engine.async_generate``
does), so there is no HTTP round trip. It has what ``dynasor.program_runtime.backends.EngineBackend``
needs of an engine (``async_generate`` and ``tokenizer_manager``); the mode runner wraps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TokenizerManagerEngine:
    """``raw_request`` lets SGLang abort the requests when the HTTP client disconnects."""

    def __init__(self, tokenizer_manager: Any, raw_request: Any = None) -> None:
        self.tokenizer_manager = tokenizer_manager
        self.raw_request = raw_request

    async def async_generate(self, prompt: str | None = None, sampling_params: Mapping[str, Any] | None = None,
                             input_ids: list[int] | None = None, rid: str | None = None) -> dict[str, Any]:
        from sglang.srt.managers.io_struct import GenerateReqInput

        obj = GenerateReqInput(text=prompt, input_ids=input_ids, sampling_params=dict(sampling_params or {}), rid=rid)
        return await self.tokenizer_manager.generate_request(obj, self.raw_request).__anext__()
