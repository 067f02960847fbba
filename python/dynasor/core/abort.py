"""Abort a program's requests in an engine that drops aborts of requests it has not dispatched.

SGLang's TokenizerManager marks an abort as sent even when the request has not reached the
scheduler yet, and the scheduler drops an abort that arrives before its request: such a request
could never be aborted again. So only dispatched requests are aborted, and the others are polled
until they are dispatched (or end), for at most ``timeout_s``. Used by the server's program abort
route and by the in-process engine backends alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any


async def abort_when_dispatched(live_rids: Callable[[], Iterable[str]], dispatched: Callable[[str], bool],
                                abort: Callable[[str], None], timeout_s: float, poll_s: float = 0.005) -> int:
    """Abort every rid ``live_rids()`` reports, each once it is dispatched; returns how many aborts
    were sent. Stops when no live rid is left unaborted or at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    sent: set[str] = set()
    while True:
        pending = set(live_rids()) - sent
        for rid in pending:
            if dispatched(rid):
                abort(rid)
                sent.add(rid)
        if not pending - sent or loop.time() >= deadline:
            return len(sent)
        await asyncio.sleep(poll_s)


def dispatched_by(tokenizer_manager: Any, rid: str) -> bool:
    """Whether SGLang's TokenizerManager has sent ``rid`` on to the scheduler (its per-request
    ``dispatched`` flag); a manager without that bookkeeping counts every rid as dispatched."""
    states = getattr(tokenizer_manager, "rid_to_state", None)
    if states is None:
        return True
    state = states.get(rid)
    return state is not None and getattr(state, "dispatched", True)
