"""The Dynasor tags of one request in the main process, parsed once (sglang==0.5.23 request objects).

``validate_request_tags`` (the BEFORE hook on ``TokenizerManager.generate_request``) parses and
checks every tag of a request and keeps the result on the request object; everything else in the
main process (data-parallel placement, the abort when a client leaves, finding a program's live
requests) reads it from there. The scheduler process parses the tag once more, from the
``custom_params`` SGLang forwards (``program_tracker.py``): a process boundary.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dynasor.core.tag import ProgramTag, tag_of

TAGS_ATTR = "_dynasor_tags"


def sampling_params_list(obj: Any) -> list[Any]:
    """One entry per request of a (single or batched) request object."""
    params = getattr(obj, "sampling_params", None)
    return params if isinstance(params, list) else [params]


def keep_tags(obj: Any, tags: list[ProgramTag | None]) -> None:
    """Remember the validated tags on the request object (one per entry of its sampling params)."""
    with contextlib.suppress(AttributeError):  # no __dict__: the tags are parsed again where needed
        setattr(obj, TAGS_ATTR, tags)


def tags_of(obj: Any) -> list[ProgramTag | None]:
    """The request's tags: the validated ones if the BEFORE hook saw it, else parsed now (never raises)."""
    kept = getattr(obj, TAGS_ATTR, None)
    if isinstance(kept, list):
        return kept
    return [tag_of(sp) for sp in sampling_params_list(obj)]


def program_ids_of(obj: Any) -> list[str]:
    """The programs of a request, each once, in the order they appear."""
    return list(dict.fromkeys(tag.program_id for tag in tags_of(obj) if tag is not None))
