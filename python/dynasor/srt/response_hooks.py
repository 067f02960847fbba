"""Token statistics reach the responses of the requests that asked, and no other (sglang==0.5.23).

SGLang sends a batch's ``customized_info`` as one dict of per-request lists, and
``TokenizerManager.update_request_meta_info`` copies *every* key of it into every request's
``meta_info``: a request batched with one that asked for statistics got ``"entropy": [None, ...]``
(one None per token). The AROUND hook here drops a statistics key for a request that has no value
for it and never had one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynasor.core.token_stats import TOKEN_STATS_KEYS


def keep_token_stats_to_those_that_asked(original: Callable[..., Any], tokenizer_manager: Any, meta_info: dict,
                                         state: Any, customized_info: dict, index: int, *args: Any,
                                         **kwargs: Any) -> Any:
    """AROUND ``TokenizerManager.update_request_meta_info``."""
    if customized_info and any(key in customized_info for key in TOKEN_STATS_KEYS):
        reported: set[str] = getattr(state, "customized_info_reported_keys", set())
        customized_info = {key: values for key, values in customized_info.items()
                           if key not in TOKEN_STATS_KEYS or key in reported or _has_value(values, index)}
    return original(tokenizer_manager, meta_info, state, customized_info, index, *args, **kwargs)


def _has_value(values: Any, index: int) -> bool:
    """The request at ``index`` has a value (its entry: one per new token, None where it has none)."""
    try:
        entry = values[index]
    except (IndexError, TypeError, KeyError):
        return False
    if isinstance(entry, (list, tuple)):
        return any(v is not None for v in entry)
    return entry is not None
