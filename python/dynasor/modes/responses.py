"""The OpenAI-shaped bodies of a dynasor-mode response: one JSON response, or SSE chunks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dynasor.modes.outcome import ModeOutcome


@dataclass(frozen=True)
class ResponseMeta:
    """Identity of one response: ``endpoint`` is "chat" or "completions"."""

    id: str
    created: int
    model: str
    endpoint: str


def response_body(meta: ResponseMeta, outcome: ModeOutcome) -> dict[str, Any]:
    """The non-streaming response: SGLang's OpenAI shape plus ``dynasor`` and the usage extras."""
    choice: dict[str, Any]
    if meta.endpoint == "chat":
        obj, choice = "chat.completion", {"message": {"role": "assistant", "content": outcome.text,
                                                       "reasoning_content": None}}
    else:
        obj, choice = "text_completion", {"text": outcome.text}
    choices = [{"index": 0, **choice, "logprobs": None, "finish_reason": outcome.finish_reason,
                "matched_stop": None}]
    return {"id": meta.id, "object": obj, "created": meta.created, "model": meta.model, "choices": choices,
            "usage": outcome.usage, "dynasor": outcome.dynasor}


def chunk_body(meta: ResponseMeta, text: str | None, finish_reason: str | None = None,
               role: str | None = None, dynasor: dict[str, Any] | None = None) -> dict[str, Any]:
    """One SSE chunk with a text delta (chat: ``delta``; completions: ``text``); the last one carries
    the finish reason and the ``dynasor`` report."""
    choice: dict[str, Any]
    if meta.endpoint == "chat":
        delta: dict[str, Any] = {} if role is None else {"role": role}
        if text is not None:
            delta["content"] = text
        obj, choice = "chat.completion.chunk", {"delta": delta}
    else:
        obj, choice = "text_completion", {"text": text or ""}
    body = {"id": meta.id, "object": obj, "created": meta.created, "model": meta.model,
            "choices": [{"index": 0, **choice, "logprobs": None, "finish_reason": finish_reason}]}
    if dynasor is not None:
        body["dynasor"] = dynasor
    return body


def usage_chunk_body(meta: ResponseMeta, usage: dict[str, Any]) -> dict[str, Any]:
    """The closing usage chunk of ``stream_options.include_usage`` (empty choices, as OpenAI's)."""
    obj = "chat.completion.chunk" if meta.endpoint == "chat" else "text_completion"
    return {"id": meta.id, "object": obj, "created": meta.created, "model": meta.model, "choices": [], "usage": usage}


def sse(body: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
