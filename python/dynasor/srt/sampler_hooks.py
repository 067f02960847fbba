"""Per-token entropy inside SGLang's sampling step (written against sglang==0.5.23).

Two hooks, both armed only in Dynasor servers:

1. AROUND ``Sampler.forward``: before SGLang samples (it scales and softmaxes the logits in place),
   compute the entropy at T = 1, at the request's sampling temperature (greedy rows, top_k = 1,
   count as T = 0) and the top-k confidence of every row with ``dynasor.kernels.token_stats`` (the
   Triton kernel on CUDA, the torch path on CPU). The result is copied to host memory without
   blocking (on CUDA into pinned memory on the forward stream, which SGLang's result copy waits
   for) and kept on the ``LogitsProcessorOutput``. Nothing runs while no live request asked.
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
    """Host copy of one batch's token stats, read row by row once the step's results are in."""

    def __init__(self, device_stats: torch.Tensor) -> None:
        if device_stats.is_cuda:
            self._host = torch.empty(device_stats.shape, dtype=device_stats.dtype, pin_memory=True)
            self._host.copy_(device_stats, non_blocking=True)
        else:
            self._host = device_stats
        self._rows: Optional[list[tuple[float, float, float]]] = None

    def row(self, i: int) -> tuple[float, float, float]:
        if self._rows is None:
            self._rows = [tuple(r) for r in self._host.t().tolist()]
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
        stats = token_stats(logits, temperatures, TokenStatsHooks.topk)
        setattr(logits_output, STATS_ATTR, HostTokenStats(torch.stack([stats.entropy, stats.entropy_t, stats.topk_confidence])))
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
