"""Program affinity across data-parallel ranks (``--dp-size N``; written against sglang==0.5.23).

BEFORE ``TokenizerManager.generate_request`` (after the tag check): a tagged request gets SGLang's
own per-request ``routed_dp_rank``, which SGLang's data-parallel controller honours under every
``--load-balance-method``. The rank comes from the server's ``ProgramPlacement``
(``dynasor.scheduler.program_placement``): a program's first request goes to the rank with the
fewest outstanding requests Dynasor placed (live in this main process), every later one to the
same rank. Untagged requests are left to SGLang's load balancing; a request that names its own
``routed_dp_rank`` keeps it, and its programs stay on that rank.

Ordering, the starvation bound and the program table are per rank; ``/dynasor/programs`` merges
the ranks' tables and names each program's ``dp_ranks``.
"""

from __future__ import annotations

from typing import Any

from dynasor.srt.main_process_state import current_main_process_state
from dynasor.srt.request_tags import program_ids_of


def outstanding_requests(tokenizer_manager: Any, ranks: int) -> list[int]:
    """Unfinished requests per rank, of those routed to a rank (the main process's live requests)."""
    counts = [0] * ranks
    for state in list(tokenizer_manager.rid_to_state.values()):
        rank = getattr(state.obj, "routed_dp_rank", None)
        if not state.finished and isinstance(rank, int) and 0 <= rank < ranks:
            counts[rank] += 1
    return counts


def place_on_dp_rank(tokenizer_manager: Any, obj: Any, *args: Any, **kwargs: Any) -> None:
    """BEFORE hook on ``TokenizerManager.generate_request``: route a tagged request to its program's rank."""
    state = current_main_process_state()
    placement = state.placement if state is not None else None
    if placement is None or not hasattr(obj, "routed_dp_rank"):
        return
    program_ids = program_ids_of(obj)
    if not program_ids:
        return
    chosen = obj.routed_dp_rank if isinstance(obj.routed_dp_rank, int) else None
    if chosen is not None and not 0 <= chosen < placement.ranks:
        return  # SGLang rejects it with its own message
    obj.routed_dp_rank = placement.place(
        program_ids, lambda: outstanding_requests(tokenizer_manager, placement.ranks), pinned=chosen)
