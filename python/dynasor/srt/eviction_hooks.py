"""Program-aware radix-cache eviction (written against sglang==0.5.23, Python TreeCore).

SGLang evicts cached prefixes leaf first, in the order of its eviction strategy (``lru`` by
default, ``--radix-eviction-policy``). Dynasor wraps that strategy so a leaf is ranked first by
the class of who holds it (``dynasor.scheduler.eviction_rank``: done programs, then untagged,
then live programs), then by SGLang's own key inside a class. Holders are recorded when a
request's KV enters the tree (``checkpoint_into_tree``, on every chunk and at the end of a
request): each node on the path from its last node to the root holds the request's program id.
Sets are pruned of dead programs when a node is ranked, so they stay small.

This needs SGLang's Python TreeCore, whose leaf heap calls ``eviction_strategy.get_priority``;
the Rust TreeCore ranks leaves in native code. Dynasor servers therefore select the Python core
(``SGLANG_UNIFIED_RADIX_TREE_CORE_BACKEND=python``) unless ``--dynasor-eviction sglang``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dynasor.core.tag import program_id_of
from dynasor.scheduler.eviction_rank import DONE, holder_class
from dynasor.srt.context import current_context

logger = logging.getLogger(__name__)

HOLDERS_ATTR = "_dynasor_programs"
MAX_HOLDERS_BEFORE_PRUNE = 64


class ProgramAwareEviction:
    """An eviction strategy: (holder class, SGLang's priority of the node)."""

    def __init__(self, inner: Any, is_live: Callable[[str], bool]) -> None:
        self.inner = inner
        self.is_live = is_live

    def holder_class(self, node: Any) -> int:
        holders: set[str] | None = getattr(node, HOLDERS_ATTR, None)
        rank = holder_class(holders, self.is_live)
        if rank == DONE and holders:
            holders.clear()  # every holder is done: keep the marker, drop the ids
        return rank

    def get_priority(self, node: Any) -> tuple:
        return (self.holder_class(node), self.inner.get_priority(node))


def wrap_eviction_strategy(result: None, tree_core: Any, *args: Any, **kwargs: Any) -> None:
    """AFTER ``UnifiedTreeCore.__init__``: put the program-aware strategy around SGLang's."""
    context = current_context()
    if context is None or not context.program_eviction or isinstance(tree_core.eviction_strategy, ProgramAwareEviction):
        return None
    tree_core.eviction_strategy = ProgramAwareEviction(tree_core.eviction_strategy, context.table.is_live)
    logger.info("Dynasor: program-aware radix eviction around %s", type(tree_core.eviction_strategy.inner).__name__)
    return None


def hold_path(tree_core: Any, node: Any, program_id: str) -> None:
    """Mark every node from ``node`` up to the root as held by ``program_id``."""
    strategy = tree_core.eviction_strategy
    root = tree_core.root_node
    while node is not None and node is not root:
        holders: set[str] | None = getattr(node, HOLDERS_ATTR, None)
        if holders is None:
            holders = set()
            setattr(node, HOLDERS_ATTR, holders)
        elif len(holders) >= MAX_HOLDERS_BEFORE_PRUNE and program_id not in holders:
            holders.intersection_update([p for p in holders if strategy.is_live(p)])
        holders.add(program_id)
        node = node.parent


def record_holders(result: None, cache: Any, req: Any, *args: Any, **kwargs: Any) -> None:
    """AFTER ``UnifiedRadixCache.checkpoint_into_tree``: the request's program holds its path."""
    pid = program_id_of({"custom_params": req.sampling_params.custom_params})
    tree_core = getattr(cache, "tree_core", None)
    node_id = getattr(req, "last_node", None)
    if pid is not None and node_id is not None and tree_core is not None and isinstance(
        getattr(tree_core, "eviction_strategy", None), ProgramAwareEviction
    ):
        hold_path(tree_core, tree_core.node_by_id(node_id), pid)
    return None
