"""Ending a program's requests in the main process (sglang==0.5.23's TokenizerManager): the one
place that finds a program's live requests and aborts them, for ``POST
/dynasor/programs/{id}/abort`` (``http_routes.py``, which also records the program as aborted so
later requests end at once: ``main_process_state.AbortedPrograms``) and for a client that leaves
(``tokenizer_hooks.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dynasor.core.abort import abort_when_dispatched, dispatched_by
from dynasor.srt.request_tags import program_ids_of


def live_rids_of_program(tokenizer_manager: Any, program_id: str) -> Iterator[str]:
    """Request ids of the program that the main process still waits on."""
    for rid, state in list(tokenizer_manager.rid_to_state.items()):
        if state.finished:
            continue
        if program_id in program_ids_of(state.obj):
            yield rid


async def abort_program_requests(tokenizer_manager: Any, program_id: str, timeout_s: float = 2.0,
                                 poll_s: float = 0.005) -> int:
    """Abort every live request of the program, each once it is dispatched (``dynasor.core.abort``:
    an abort that overtakes its request is dropped by SGLang); returns how many aborts were sent."""
    return await abort_when_dispatched(lambda: live_rids_of_program(tokenizer_manager, program_id),
                                       lambda rid: dispatched_by(tokenizer_manager, rid),
                                       lambda rid: tokenizer_manager.abort_request(rid=rid), timeout_s, poll_s)
