"""Token stats in SGLang's OpenAI-compatible responses (written against sglang==0.5.23).

A request tagged through ``extra_body={"custom_params": {"dynasor": {...}}}`` that asks for its
statistics (``"return_entropy": true``; off by default) gets, in every choice of a non-streaming
``/v1/chat/completions`` or ``/v1/completions`` response::

    "token_stats": {"entropy": [...], "sampling_entropy": [...], "topk_confidence": [...]}

one value per generated token, as in ``meta_info`` of ``/generate``. Responses to untagged requests
and to tagged ones that did not ask are SGLang's, unchanged. The choice models are subclasses of
SGLang's, so serialisation stays SGLang's.
"""

from __future__ import annotations

from typing import Any

from sglang.srt.entrypoints.openai.protocol import (
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    CompletionResponse,
    CompletionResponseChoice,
)

from dynasor.core.token_stats import TOKEN_STATS_KEYS


class ChatChoiceWithTokenStats(ChatCompletionResponseChoice):
    token_stats: dict[str, list[float]] | None = None


class CompletionChoiceWithTokenStats(CompletionResponseChoice):
    token_stats: dict[str, list[float]] | None = None


# pydantic serialises a field by its declared type, so the responses are subclassed as well.
class ChatResponseWithTokenStats(ChatCompletionResponse):
    choices: list[ChatChoiceWithTokenStats]


class CompletionResponseWithTokenStats(CompletionResponse):
    choices: list[CompletionChoiceWithTokenStats]


def _token_stats(meta_info: dict[str, Any]) -> dict[str, list[float]] | None:
    if not all(key in meta_info for key in TOKEN_STATS_KEYS):
        return None
    return {key: meta_info[key] for key in TOKEN_STATS_KEYS}


def _attach(response: Any, ret: list[dict[str, Any]], response_cls: Any, choice_cls: Any) -> Any:
    choices = getattr(response, "choices", None)
    if choices is None or len(choices) != len(ret):
        return response
    stats = [_token_stats(item["meta_info"]) for item in ret]
    if all(s is None for s in stats):
        return response
    new_choices = [choice_cls.model_construct(**dict(choice), token_stats=s) for choice, s in zip(choices, stats)]
    return response_cls.model_construct(**{**dict(response), "choices": new_choices})


def add_chat_token_stats(response: Any, serving: Any, request: Any, ret: list[dict[str, Any]], *args: Any) -> Any:
    """AFTER hook on ``OpenAIServingChat._build_chat_response``."""
    return _attach(response, ret, ChatResponseWithTokenStats, ChatChoiceWithTokenStats)


def add_completion_token_stats(response: Any, serving: Any, request: Any, ret: list[dict[str, Any]], *args: Any) -> Any:
    """AFTER hook on ``OpenAIServingCompletion._build_completion_response``."""
    return _attach(response, ret, CompletionResponseWithTokenStats, CompletionChoiceWithTokenStats)
