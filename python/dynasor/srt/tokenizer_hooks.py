"""Main-process hooks on SGLang's TokenizerManager (written against sglang==0.5.23).

- BEFORE ``generate_request`` (``check_and_route_request``): tags are validated before a request is
  tokenized, so a malformed tag costs no scheduler work: SGLang turns the ``ValueError`` raised here
  into HTTP 400 with the message (``/generate`` and the OpenAI endpoints) or raises it to the caller
  (``sglang.Engine``).
  A request of a program aborted on this server gets ``ABORTED_MARKER`` (an abort is final: the
  scheduler ends it at once, see ``dynasor_scheduler.py``). Then, with ``--dp-size`` > 1, a tagged
  request is routed to its program's data-parallel rank (``dp_placement.py``).
- AROUND ``generate_request``: when the consumer of a tagged request goes away before its final
  output (the HTTP client disconnected, or the caller cancelled), every live request of the program
  is aborted, so a dropped client leaves nothing running. SGLang alone aborts just that request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from dynasor.core.tag import ABORTED_MARKER, ProgramTag, tag_from_sampling_params, validate_tagged_rid
from dynasor.srt.dp_placement import place_on_dp_rank
from dynasor.srt.main_process_state import current_main_process_state
from dynasor.srt.program_abort import abort_program_requests
from dynasor.srt.request_tags import keep_tags, program_ids_of, sampling_params_list

logger = logging.getLogger(__name__)
_BACKGROUND: set[asyncio.Task[int]] = set()  # program aborts after a disconnect, kept until done


def _mark_aborted(sampling_params: Any, aborted: bool) -> None:
    custom = sampling_params.get("custom_params") if isinstance(sampling_params, dict) else None
    if isinstance(custom, dict) and ABORTED_MARKER in custom:
        custom = {k: v for k, v in custom.items() if k != ABORTED_MARKER}  # only the server sets it
        sampling_params["custom_params"] = custom
    if aborted:
        sampling_params["custom_params"] = {**(custom or {}), ABORTED_MARKER: True}


def validate_request_tags(tokenizer_manager: Any, obj: Any, *args: Any, **kwargs: Any) -> None:
    """BEFORE hook on ``TokenizerManager.generate_request``: reject malformed Dynasor tags, and
    client rids of tagged requests that could be a prefix of another rid; mark requests of
    programs aborted on this server. The parsed tags stay on the request (``request_tags.py``)."""
    params = sampling_params_list(obj)
    rids = getattr(obj, "rid", None)
    state = current_main_process_state()
    tags: list[ProgramTag | None] = []
    for i, sp in enumerate(params):
        single = len(params) == 1 and not isinstance(rids, list)
        where = "sampling_params" if single else f"sampling_params[{i}]"
        tag = tag_from_sampling_params(sp, where)
        tags.append(tag)
        if tag is None:
            continue
        if isinstance(rids, list):
            validate_tagged_rid(rids[i] if i < len(rids) else None, f"rid[{i}]")
        else:
            validate_tagged_rid(rids, "rid")
        _mark_aborted(sp, state is not None and state.aborted.contains(tag.program_id))
    keep_tags(obj, tags)


def check_and_route_request(tokenizer_manager: Any, obj: Any, *args: Any, **kwargs: Any) -> None:
    """BEFORE hook on ``TokenizerManager.generate_request``: the tag check, then the rank."""
    validate_request_tags(tokenizer_manager, obj, *args, **kwargs)
    place_on_dp_rank(tokenizer_manager, obj)


def _is_final(out: Any) -> bool:
    meta = out.get("meta_info") if isinstance(out, Mapping) else None
    return isinstance(meta, Mapping) and meta.get("finish_reason") is not None


def _abort_in_background(tokenizer_manager: Any, program_ids: set[str]) -> None:
    for program_id in program_ids:
        task = asyncio.get_running_loop().create_task(abort_program_requests(tokenizer_manager, program_id))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)


async def abort_program_when_client_leaves(original: Callable[..., AsyncIterator[Any]], tokenizer_manager: Any,
                                           obj: Any, request: Any = None, *args: Any,
                                           **kwargs: Any) -> AsyncIterator[Any]:
    """AROUND hook on ``TokenizerManager.generate_request`` (an async generator). The programs are
    read when they are needed: by then the BEFORE hook has parsed the tags."""
    finished = False
    try:
        async for out in original(tokenizer_manager, obj, request, *args, **kwargs):
            finished = finished or _is_final(out)
            yield out
    except (asyncio.CancelledError, GeneratorExit):
        program_ids = set(program_ids_of(obj))
        if program_ids and not finished:  # the consumer gave up before the end
            logger.info("Dynasor: a request's consumer left; aborting its program(s)")
            _abort_in_background(tokenizer_manager, program_ids)
        raise
    except ValueError:
        program_ids = set(program_ids_of(obj))
        if program_ids and request is not None and await request.is_disconnected():
            logger.info("Dynasor: client disconnected; aborting its program(s)")
            _abort_in_background(tokenizer_manager, program_ids)
        raise
