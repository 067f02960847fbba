"""Program-aware eviction on SGLang's real radix cache (UnifiedRadixCache, Python TreeCore), in process.

Three cached prefixes of 10 tokens: A held by a live program and touched first (so plain LRU
would evict it first), B held by a done program, C untagged. Evicting 10 tokens at a time must
take B, then C, then A.
"""

from array import array

import pytest
import torch

from dynasor.scheduler.eviction_rank import DONE, LIVE, UNTAGGED
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.context import SchedulerContext, activate_context
from dynasor.srt.eviction_hooks import hold_path, wrap_eviction_strategy

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def context():
    """The scheduler process's context, as DynasorScheduler activates it; removed after the test."""
    context = SchedulerContext(DynasorServerConfig(eviction="program"))
    activate_context(context)
    yield context
    activate_context(None)


def build_cache():
    from sglang.srt.mem_cache.allocator import TokenToKVPoolAllocator
    from sglang.srt.mem_cache.cache_init_params import CacheInitParams
    from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool
    from sglang.srt.mem_cache.unified_cache.component_type import ComponentType
    from sglang.srt.mem_cache.unified_radix_cache import UnifiedRadixCache
    from sglang.srt.runtime_context import publish
    from sglang.srt.server_args import ServerArgs

    from dynasor.model import default_model_path

    publish(ServerArgs(model_path=str(default_model_path()), device="cpu"), role="scheduler")
    kv = MHATokenToKVPool(size=256, page_size=1, dtype=torch.bfloat16, head_num=1, head_dim=8, layer_num=1,
                          device="cpu", enable_memory_saver=False)
    allocator = TokenToKVPoolAllocator(size=256, dtype=torch.bfloat16, device="cpu", kvcache=kv, need_sort=False)
    cache = UnifiedRadixCache(params=CacheInitParams(
        req_to_token_pool=ReqToTokenPool(size=4, max_context_len=512, device="cpu", enable_memory_saver=False),
        token_to_kv_pool_allocator=allocator, page_size=1, disable=False,
        tree_components=(ComponentType.FULL,), tree_core_backend="python",
    ))
    return cache, allocator


def match(cache, key):
    from sglang.srt.mem_cache.base_prefix_cache import MatchPrefixParams

    return cache.match_prefix(MatchPrefixParams(key=key))


def cached_tokens(cache, key) -> int:
    return match(cache, key).device_prefix_len


def node_of(cache, key):
    return cache.tree_core.node_by_id(match(cache, key).last_device_node)


def fill(cache, allocator, holders):
    """Insert one 10-token prefix per holder (in order, so the first is least recently used)."""
    from sglang.srt.mem_cache.base_prefix_cache import InsertParams
    from sglang.srt.mem_cache.radix_cache import RadixKey

    keys = []
    for i, program_id in enumerate(holders):
        key = RadixKey(array("q", range(1000 * i, 1000 * i + 10)))
        cache.insert(InsertParams(key=key, value=allocator.alloc(10)))
        if program_id is not None:
            hold_path(cache.tree_core, node_of(cache, key), program_id)
        keys.append(key)
    return keys


def evict(cache, tokens: int) -> None:
    from sglang.srt.mem_cache.base_prefix_cache import EvictParams

    assert cache.evict(EvictParams(num_tokens=tokens)).num_tokens_evicted == tokens


def test_stock_lru_evicts_the_least_recently_used_first():
    activate_context(None)  # no Dynasor scheduler in this process: the hook leaves SGLang's strategy alone
    cache, allocator = build_cache()
    wrap_eviction_strategy(None, cache.tree_core)
    a, b, c = fill(cache, allocator, [None, None, None])
    evict(cache, 10)
    assert [cached_tokens(cache, k) for k in (a, b, c)] == [0, 10, 10]


def test_done_programs_go_first_then_untagged_then_live(context):
    table = context.table
    table.on_arrival("a1", "program-A", 10, now=0.0)  # waiting: live
    table.on_arrival("b1", "program-B", 10, now=0.0)
    table.on_finished("b1", aborted=False, now=1.0)  # done
    cache, allocator = build_cache()
    wrap_eviction_strategy(None, cache.tree_core)
    a, b, c = fill(cache, allocator, ["program-A", "program-B", None])
    strategy = cache.tree_core.eviction_strategy
    assert [strategy.holder_class(node_of(cache, k)) for k in (a, b, c)] == [LIVE, DONE, UNTAGGED]
    evict(cache, 10)
    assert [cached_tokens(cache, k) for k in (a, b, c)] == [10, 0, 10]
    evict(cache, 10)
    assert [cached_tokens(cache, k) for k in (a, b, c)] == [10, 0, 0]
    table.on_finished("a1", aborted=False, now=2.0)  # program A finishes: its prefix is a done program's leftover
    evict(cache, 10)
    assert [cached_tokens(cache, k) for k in (a, b, c)] == [0, 0, 0]
