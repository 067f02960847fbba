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

``meta_info`` keys: ``entropy`` (T = 1), ``sampling_entropy`` (at the request's temperature) and
``topk_confidence`` (DeepConf: −mean log-probability of the k most likely tokens, T = 1).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from dynasor.kernels.entropy import token_stats
from dynasor.scheduler.program_table import ProgramTable

STATS_ATTR = "dynasor_token_stats"
META_KEYS = ("entropy", "sampling_entropy", "topk_confidence")


class HostTokenStats:
    """One batch's token stats ``[3, rows]`` on the host, read row by row once the step is filed."""

    def __init__(self, stats: torch.Tensor) -> None:
        if stats.is_cuda:
            host = torch.empty(stats.shape, dtype=stats.dtype, pin_memory=True)
            host.copy_(stats, non_blocking=True)
            stats = host
        self._stats = stats
        self._rows: Optional[list[tuple[float, float, float]]] = None

    @classmethod
    def compute(cls, logits: torch.Tensor, temperatures: torch.Tensor, topk: int) -> "HostTokenStats":
        stats = token_stats(logits, temperatures, topk)
        return cls(torch.stack([stats.entropy, stats.entropy_t, stats.topk_confidence]))

    def row(self, i: int) -> tuple[float, float, float]:
        if self._rows is None:
            self._rows = [tuple(r) for r in self._stats.t().tolist()]
        return self._rows[i]


class TokenStatsHooks:
    """State of the hooks in one scheduler process: the table to consult and feed."""

    table: Optional[ProgramTable] = None
    topk: int = 20

    @classmethod
    def install(cls, table: ProgramTable, topk: int) -> None:
        cls.table = table
        cls.topk = topk


def sample_with_token_stats(original: Callable[..., Any], sampler: Any, logits_output: Any, sampling_info: Any,
                            *args: Any, **kwargs: Any) -> Any:
    table = TokenStatsHooks.table
    logits = logits_output.next_token_logits
    if table is not None and table.live_token_stats_requests > 0 and logits is not None and logits.shape[0] > 0:
        temperatures = sampling_info.temperatures.reshape(-1)
        greedy = sampling_info.top_ks.reshape(-1) <= 1
        temperatures = torch.where(greedy, torch.zeros_like(temperatures), temperatures)
        setattr(logits_output, STATS_ATTR, HostTokenStats.compute(logits, temperatures, TokenStatsHooks.topk))
    return original(sampler, logits_output, sampling_info, *args, **kwargs)


def collect_token_stats(result: Any, processor: Any, i: int, req: Any, logits_output: Any) -> None:
    stats: Optional[HostTokenStats] = getattr(logits_output, STATS_ATTR, None) if logits_output is not None else None
    table = TokenStatsHooks.table
    if stats is None or table is None or not table.wants_token_stats(req.rid):
        return None
    values = stats.row(i)
    if req.customized_info is None:
        req.customized_info = {}
    for key, value in zip(META_KEYS, values):
        req.customized_info.setdefault(key, []).append(value)
    table.on_token_stats(req.rid, entropy=values[0], confidence=values[2])
    return None
