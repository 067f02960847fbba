"""Per-token entropy inside SGLang's sampling step (written against sglang==0.5.23).

Three hooks, all armed only in Dynasor servers:

1. AROUND ``ModelRunner.sample``: note which rows of the batch belong to requests that asked for
   statistics (tag ``return_entropy``, or a confidence stop), from the forward batch's rids. The
   rows are known here and not in the sampler; delayed sampling (SGLang's overlap path for grammar
   batches) calls this method too, so the rows always match the logits.
2. AROUND ``Sampler.forward``: before SGLang samples (it scales and softmaxes the logits in place),
   compute the entropy at T = 1, at the request's sampling temperature (greedy rows, top_k = 1,
   count as T = 0) and the top-k confidence of those rows only, with
   ``dynasor.kernels.token_stats`` (the Triton kernel on CUDA, the torch path on CPU). A batch with
   no such row runs no statistics code at all. On CUDA the result is copied to host memory without
   blocking (into pinned memory on the forward stream, which SGLang's result copy waits for) and
   read only when SGLang files the step's outputs.
3. AFTER ``SchedulerBatchResultProcessor._maybe_collect_customized_info``: when SGLang files the
   row of one request that asked, append the values to ``req.customized_info`` (SGLang's channel
   that ends in ``meta_info[key]``, one value per output token, streamed chunks included), so other
   requests keep stock responses; and feed the program table's aggregates. When that takes a
   request's window confidence below its ``stop_below_confidence``, the request gets SGLang's
   ``to_finish`` = abort "low_confidence" (what SGLang's own abort of a running request sets): the
   next step files it finished and frees its KV. The values are already on the host here, so the
   stop adds no device synchronisation.

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
    """One batch's token stats on the host for the rows that asked, read row by row once the step
    is filed."""

    def __init__(self, stats: TokenStats[torch.Tensor], rows: list[int]) -> None:
        stacked = torch.stack(stats.values())  # [3, len(rows)] in TokenStats field order
        if stacked.is_cuda:
            host = torch.empty(stacked.shape, dtype=stacked.dtype, pin_memory=True)
            host.copy_(stacked, non_blocking=True)
            stacked = host
        self._stats = stacked
        self._position = {row: k for k, row in enumerate(rows)}  # batch row -> column of _stats
        self._rows: list[TokenStats[float]] | None = None

    def row(self, i: int) -> TokenStats[float] | None:
        """Batch row ``i``'s values, None for a row that did not ask."""
        k = self._position.get(i)
        if k is None:
            return None
        if self._rows is None:
            self._rows = [TokenStats(*values) for values in self._stats.t().tolist()]
        return self._rows[k]


def select_token_stats_rows(original: Callable[..., Any], runner: Any, logits_output: Any, forward_batch: Any,
                            *args: Any, **kwargs: Any) -> Any:
    """AROUND ``ModelRunner.sample``: the rows whose request asked, for the sampler hook below."""
    context = current_context()
    if context is None:
        return original(runner, logits_output, forward_batch, *args, **kwargs)
    rids = getattr(forward_batch, "rids", None)
    table = context.table
    if table.live_token_stats_requests == 0:
        rows: list[int] = []
    elif rids is None:  # no rids on this path: every row, as any request may have asked
        logits = logits_output.next_token_logits
        rows = list(range(logits.shape[0])) if logits is not None else []
    else:
        rows = [i for i, rid in enumerate(rids) if table.wants_token_stats(rid)]
    context.token_stats_rows = rows
    try:
        return original(runner, logits_output, forward_batch, *args, **kwargs)
    finally:
        context.token_stats_rows = []


def sample_with_token_stats(original: Callable[..., Any], sampler: Any, logits_output: Any, sampling_info: Any,
                            *args: Any, **kwargs: Any) -> Any:
    context = current_context()
    logits = logits_output.next_token_logits
    if (context is not None and context.token_stats_enabled and context.token_stats_rows and logits is not None
            and logits.shape[0] > 0):
        rows = [i for i in context.token_stats_rows if i < logits.shape[0]]
        index = torch.tensor(rows, device=logits.device)
        temperatures = sampling_info.temperatures.reshape(-1)[index]
        greedy = sampling_info.top_ks.reshape(-1)[index] <= 1
        temperatures = torch.where(greedy, torch.zeros_like(temperatures), temperatures)
        selected = logits if len(rows) == logits.shape[0] else logits[index]
        stats = token_stats(selected, temperatures, context.token_stats_topk)
        setattr(logits_output, STATS_ATTR, HostTokenStats(stats, rows))
    return original(sampler, logits_output, sampling_info, *args, **kwargs)


def collect_token_stats(result: Any, processor: Any, i: int, req: Any, logits_output: Any) -> None:
    stats: HostTokenStats | None = getattr(logits_output, STATS_ATTR, None) if logits_output is not None else None
    context = current_context()
    if stats is None or context is None or not context.table.wants_token_stats(req.rid):
        return None
    values = stats.row(i)
    if values is None:
        return None
    if req.customized_info is None:
        req.customized_info = {}
    for key, value in zip(TOKEN_STATS_KEYS, values.values()):
        req.customized_info.setdefault(key, []).append(value)
    if context.table.on_token_stats(req.rid, entropy=values.entropy, confidence=values.topk_confidence) \
            and not req.finished() and req.to_finish is None:
        req.to_finish = FINISH_ABORT(LOW_CONFIDENCE)
    return None
