"""Per-token entropy inside SGLang's sampling step (written against sglang==0.5.23).

Two hooks, both armed only in Dynasor servers:

1. AROUND ``Sampler.forward``: before SGLang samples (it scales and softmaxes the logits in place),
   compute the entropy at T = 1, at the request's sampling temperature (greedy rows, top_k = 1,
   count as T = 0) and the top-k confidence of every row with ``dynasor.kernels.token_stats`` (the
   Triton kernel on CUDA, the torch path on CPU). On CUDA the result is copied to host memory
   without blocking (into pinned memory on the forward stream, which SGLang's result copy waits
   for) and read only when SGLang files the step's outputs. Nothing runs while no live request
   asked. (Computing on a CPU worker thread from a copy of the logits was measured and did not
   raise decode throughput on a 2-core machine, so it is not done.)
2. AFTER ``SchedulerBatchResultProcessor._maybe_collect_customized_info``: when SGLang files the
   row of one request, append the values to ``req.customized_info`` (SGLang's channel that ends in
   ``meta_info[key]``, one value per output token, streamed chunks included) for the requests that
   asked only, so untagged requests keep stock responses; and feed the program table's aggregates.
   When that takes a request's window confidence below its ``stop_below_confidence``, the request
   gets SGLang's ``to_finish`` = abort "low_confidence" (what SGLang's own abort of a running
   request sets): the next step files it finished and frees its KV. The values are already on the
   host here, so the stop adds no device synchronisation.

``meta_info`` keys: the fields of ``dynasor.core.token_stats.TokenStats``: ``entropy`` (T = 1),
``sampling_entropy`` (at the request's temperature) and ``topk_confidence`` (DeepConf: −mean
log-probability of the k most likely tokens, T = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from sglang.srt.managers.schedule_batch import FINISH_ABORT

from dynasor.core.tag import LOW_CONFIDENCE
from dynasor.core.token_stats import TOKEN_STATS_KEYS, TokenStats
from dynasor.kernels.entropy import token_stats
from dynasor.srt.context import current_context

STATS_ATTR = "dynasor_token_stats"


class HostTokenStats:
    """One batch's token stats on the host, read row by row once the step is filed."""

    def __init__(self, stats: TokenStats[torch.Tensor]) -> None:
        stacked = torch.stack(stats.values())  # [3, rows] in TokenStats field order
        if stacked.is_cuda:
            host = torch.empty(stacked.shape, dtype=stacked.dtype, pin_memory=True)
            host.copy_(stacked, non_blocking=True)
            stacked = host
        self._stats = stacked
        self._rows: list[TokenStats[float]] | None = None

    def row(self, i: int) -> TokenStats[float]:
        if self._rows is None:
            self._rows = [TokenStats(*values) for values in self._stats.t().tolist()]
        return self._rows[i]


def sample_with_token_stats(original: Callable[..., Any], sampler: Any, logits_output: Any, sampling_info: Any,
                            *args: Any, **kwargs: Any) -> Any:
    context = current_context()
    logits = logits_output.next_token_logits
    if (context is not None and context.token_stats_enabled and context.table.live_token_stats_requests > 0
            and logits is not None and logits.shape[0] > 0):
        temperatures = sampling_info.temperatures.reshape(-1)
        greedy = sampling_info.top_ks.reshape(-1) <= 1
        temperatures = torch.where(greedy, torch.zeros_like(temperatures), temperatures)
        stats = token_stats(logits, temperatures, context.token_stats_topk)
        setattr(logits_output, STATS_ATTR, HostTokenStats(stats))
    return original(sampler, logits_output, sampling_info, *args, **kwargs)


def collect_token_stats(result: Any, processor: Any, i: int, req: Any, logits_output: Any) -> None:
    stats: HostTokenStats | None = getattr(logits_output, STATS_ATTR, None) if logits_output is not None else None
    context = current_context()
    if stats is None or context is None or not context.table.wants_token_stats(req.rid):
        return None
    values = stats.row(i)
    if req.customized_info is None:
        req.customized_info = {}
    for key, value in zip(TOKEN_STATS_KEYS, values.values()):
        req.customized_info.setdefault(key, []).append(value)
    if context.table.on_token_stats(req.rid, entropy=values.entropy, confidence=values.topk_confidence) \
            and not req.finished() and req.to_finish is None:
        req.to_finish = FINISH_ABORT(LOW_CONFIDENCE)
    return None
