"""Main-process hooks on SGLang's TokenizerManager (written against sglang==0.5.23).

Tags are validated before a request is tokenized, so a malformed tag costs no scheduler work:
SGLang turns the ``ValueError`` raised here into HTTP 400 with the message (``/generate`` and the
OpenAI endpoints) or raises it to the caller (``sglang.Engine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dynasor.core.abort import abort_when_dispatched, dispatched_by
from dynasor.core.tag import program_id_of, tag_from_sampling_params, validate_tagged_rid


def _sampling_params_list(obj: Any) -> list[Any]:
    params = getattr(obj, "sampling_params", None)
    if isinstance(params, list):
        return params
    return [params]


def validate_request_tags(tokenizer_manager: Any, obj: Any, *args: Any, **kwargs: Any) -> None:
    """BEFORE hook on ``TokenizerManager.generate_request``: reject malformed Dynasor tags, and
    client rids of tagged requests that could be a prefix of another rid."""
    params = _sampling_params_list(obj)
    rids = getattr(obj, "rid", None)
    for i, sp in enumerate(params):
        single = len(params) == 1 and not isinstance(rids, list)
        where = "sampling_params" if single else f"sampling_params[{i}]"
        if tag_from_sampling_params(sp, where) is None:
            continue
        if isinstance(rids, list):
            validate_tagged_rid(rids[i] if i < len(rids) else None, f"rid[{i}]")
        else:
            validate_tagged_rid(rids, "rid")


def live_rids_of_program(tokenizer_manager: Any, program_id: str) -> Iterator[str]:
    """Request ids of the program that the main process still waits on."""
    for rid, state in list(tokenizer_manager.rid_to_state.items()):
        if state.finished:
            continue
        if program_id_of(getattr(state.obj, "sampling_params", None)) == program_id:
            yield rid


async def abort_program_requests(tokenizer_manager: Any, program_id: str, timeout_s: float = 2.0,
                                 poll_s: float = 0.005) -> int:
    """Abort every live request of the program, each once it is dispatched (``dynasor.core.abort``:
    an abort that overtakes its request is dropped by SGLang); returns how many aborts were sent."""
    return await abort_when_dispatched(lambda: live_rids_of_program(tokenizer_manager, program_id),
                                       lambda rid: dispatched_by(tokenizer_manager, rid),
                                       lambda rid: tokenizer_manager.abort_request(rid=rid), timeout_s, poll_s)
