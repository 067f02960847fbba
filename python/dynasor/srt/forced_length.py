"""Outputs of a length the server cannot see (written against sglang==0.5.23).

A benchmark of the KV-bound regime needs branches whose lengths differ by a known amount and yet
are unknown to the scheduler until they end, as a reasoning model's are: ``max_new_tokens`` is the
program's budget, and the length lives in ``custom_params["forced_length"]``, which only this
SGLang custom logit processor reads (``--enable-custom-logit-processor``; the request sends
``ForcedLength.to_str()``). It bans the stop token before that many tokens and forces it at the
last one. The same request runs unchanged on stock SGLang and on Dynasor.
"""

from __future__ import annotations

from typing import Any

from sglang.srt.sampling.custom_logit_processor import CustomLogitProcessor

LENGTH_KEY = "forced_length"
STOP_TOKEN_KEY = "forced_stop_token"


class ForcedLength(CustomLogitProcessor):
    def __call__(self, logits: Any, custom_param_list: list[dict[str, Any]] | None = None) -> Any:
        for row, params in enumerate(custom_param_list or []):
            if not params or LENGTH_KEY not in params or params.get("__req__") is None:
                continue
            stop = int(params[STOP_TOKEN_KEY])
            made = len(params["__req__"].output_ids)  # tokens so far; this row samples the next one
            if made + 1 >= int(params[LENGTH_KEY]):
                logits[row, :] = float("-inf")
                logits[row, stop] = 0.0
            else:
                logits[row, stop] = float("-inf")
        return logits


def forced_length_params(length: int, stop_token: int) -> dict[str, Any]:
    """The ``custom_params`` entries that end a request after ``length`` output tokens."""
    return {LENGTH_KEY: length, STOP_TOKEN_KEY: stop_token}
