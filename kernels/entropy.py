"""Per-token entropy and top-k confidence of next-token distributions: reference, CPU path, dispatch.

``token_stats(logits, temperatures, topk)`` returns a ``dynasor.core.token_stats.TokenStats`` of
fp32 tensors, one value per row of ``logits [rows, vocab]``:

- ``entropy``: entropy (nats) of softmax(logits) (T = 1), the model's own uncertainty;
- ``sampling_entropy``: entropy of softmax(logits / T) at the row's temperature T; T = 0 means
  greedy, whose limit distribution is uniform over the argmax set (entropy ``log #ties``, 0 when the
  max is unique);
- ``topk_confidence``: DeepConf's token confidence, ``−mean(log p)`` over the ``topk`` most likely
  tokens at T = 1 (over fewer when fewer than ``topk`` entries are finite); 0 when ``topk`` is 0.

−inf entries are masked tokens and contribute nothing; rows with no finite entry give zeros.
CUDA tensors go to the Triton kernel (``entropy_triton``), CPU tensors to a vectorised torch path
that processes rows in chunks to bound memory. ``token_stats_reference`` is the float64 oracle.
The CPU path runs eagerly: ``torch.compile`` did not win consistently (``bench_entropy --compile``
measures it).
"""

from __future__ import annotations

from typing import Literal

import torch

from dynasor.core.token_stats import TokenStats

MAX_TOPK = 20
_CPU_CHUNK_ELEMENTS = 1 << 18  # rows per chunk × vocab: keeps the CPU path's temporaries in cache


def _check(logits: torch.Tensor, temperatures: torch.Tensor | float, topk: int) -> torch.Tensor:
    if logits.dim() != 2:
        raise ValueError(f"logits must be [rows, vocab], got shape {tuple(logits.shape)}")
    if logits.dtype not in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        raise ValueError(f"unsupported logits dtype {logits.dtype}")
    if not 0 <= topk <= MAX_TOPK:
        raise ValueError(f"topk must be in [0, {MAX_TOPK}], got {topk}")
    temps = torch.as_tensor(temperatures, dtype=torch.float32, device=logits.device).reshape(-1)
    if temps.numel() == 1 and logits.shape[0] != 1:
        temps = temps.expand(logits.shape[0])
    if temps.numel() != logits.shape[0]:
        raise ValueError(f"need one temperature per row: {temps.numel()} for {logits.shape[0]} rows")
    return temps


def _stats_exact(x: torch.Tensor, temps: torch.Tensor, topk: int) -> tuple[torch.Tensor, ...]:
    """The definitions, vectorised over rows, in the dtype of ``x`` (fp32 or fp64)."""
    finite = torch.isfinite(x)
    any_finite = finite.any(dim=-1)

    def entropy(z: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(z, dim=-1)
        p = logp.exp()
        return -(p * torch.where(finite, logp, torch.zeros_like(logp))).sum(-1)

    greedy = temps <= 0
    safe_t = torch.where(greedy, torch.ones_like(temps), temps).to(x.dtype)
    h1 = entropy(x)
    ht = entropy(x / safe_t[:, None])
    ties = (x == x.max(dim=-1, keepdim=True).values).sum(-1).clamp(min=1).to(x.dtype)
    ht = torch.where(greedy, ties.log(), ht)
    if topk > 0:
        lse = torch.logsumexp(x, dim=-1, keepdim=True)
        top = torch.topk(x, min(topk, x.shape[-1]), dim=-1).values
        used = torch.isfinite(top)
        count = used.sum(-1).clamp(min=1).to(x.dtype)
        conf = -torch.where(used, top - lse, torch.zeros_like(top)).sum(-1) / count
    else:
        conf = torch.zeros_like(h1)
    zero = torch.zeros_like(h1)
    return (torch.where(any_finite, ht, zero), torch.where(any_finite, h1, zero), torch.where(any_finite, conf, zero))


def token_stats_reference(
    logits: torch.Tensor, temperatures: torch.Tensor | float, topk: int = MAX_TOPK, device: torch.device | str = "cpu"
) -> TokenStats[torch.Tensor]:
    """Float64 oracle for tests and benchmarks (on ``device``: the GPU for large benchmark shapes)."""
    temps = _check(logits, temperatures, topk)
    ht, h1, conf = _stats_exact(logits.to(device=device, dtype=torch.float64), temps.to(device), topk)
    return TokenStats(entropy=h1, sampling_entropy=ht, topk_confidence=conf)


# Entries more than 80 nats below their row's max are floored there: they add e^-80 ≈ 2e-35 each,
# invisible in fp32, and exp() of far smaller values takes x86's slow underflow path and makes
# denormals (at T = 0.3 the scaled pass took 6x the T = 1 pass: 36 vs 6 ms for 16 rows × 49,152).
LOG_FLOOR = -80.0


def _entropy_lse(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy of softmax(z) and logsumexp(z) per row of fp32 ``z``: ``H = log s − Σ e·d / s`` with
    ``d = max(z − max z, LOG_FLOOR)``, ``e = e^d``, ``s = Σ e``. Masked (−inf) entries get e = 0;
    a row with no finite entry gives entropy 0 (and logsumexp −inf)."""
    top = z.amax(dim=-1, keepdim=True)
    d = (z - top).clamp_(min=LOG_FLOOR)
    e = d.exp().masked_fill_(z == float("-inf"), 0.0)
    s = e.sum(-1)
    log_s = s.log()
    entropy = log_s - (e * d).sum(-1) / s
    top = top.squeeze(-1)
    finite = torch.isfinite(top)
    return torch.where(finite, entropy, torch.zeros_like(entropy)), top + torch.where(finite, log_s, 0.0)


def _stats_fast(x: torch.Tensor, temps: torch.Tensor, topk: int) -> tuple[torch.Tensor, ...]:
    """fp32 CPU path on fused torch ops; T = 1 work is shared with rows sampled at T = 1."""
    x32 = x.float()  # every step below allocates: the caller's logits stay untouched
    h1, lse = _entropy_lse(x32)
    ht = h1.clone()
    greedy = temps <= 0
    scaled = ~greedy & (temps != 1)
    if scaled.any():
        idx = scaled.nonzero().squeeze(-1)
        ht[idx] = _entropy_lse(x32[idx] / temps[idx, None])[0]
    if greedy.any():
        idx = greedy.nonzero().squeeze(-1)
        rows = x[idx]
        top = rows.max(dim=-1, keepdim=True).values
        ties = (rows == top).sum(-1).clamp(min=1)
        ht[idx] = torch.where(torch.isinf(top.squeeze(-1)), 0.0, ties.float().log())  # no finite entry: 0
    if topk > 0:
        top_logp = torch.topk(x, min(topk, x.shape[-1]), dim=-1).values.float() - lse[:, None]
        used = torch.isfinite(top_logp)
        count = used.sum(-1).clamp(min=1)
        conf = -torch.where(used, top_logp, torch.zeros_like(top_logp)).sum(-1) / count
    else:
        conf = torch.zeros_like(h1)
    return ht, h1, conf


def token_stats_torch(
    logits: torch.Tensor, temperatures: torch.Tensor | float, topk: int = MAX_TOPK
) -> TokenStats[torch.Tensor]:
    """Vectorised fp32 torch path (CPU), in row chunks so temporaries stay bounded."""
    temps = _check(logits, temperatures, topk)
    rows, vocab = logits.shape
    chunk = max(1, _CPU_CHUNK_ELEMENTS // max(vocab, 1))
    parts = [_stats_fast(logits[i : i + chunk], temps[i : i + chunk], topk) for i in range(0, rows, chunk)]
    if not parts:
        empty = logits.new_zeros(0, dtype=torch.float32)
        return TokenStats(empty, empty, empty)
    ht, h1, conf = (torch.cat(values) for values in zip(*parts))
    return TokenStats(entropy=h1, sampling_entropy=ht, topk_confidence=conf)


def token_stats(
    logits: torch.Tensor,
    temperatures: torch.Tensor | float,
    topk: int = MAX_TOPK,
    backend: Literal["auto", "triton", "torch"] = "auto",
) -> TokenStats[torch.Tensor]:
    """Dispatch: Triton for CUDA tensors (or when asked, e.g. under TRITON_INTERPRET=1), else torch."""
    if backend == "torch" or (backend == "auto" and not logits.is_cuda):
        return token_stats_torch(logits, temperatures, topk)
    temps = _check(logits, temperatures, topk)
    if logits.dtype == torch.float64:
        logits = logits.float()
    from dynasor.kernels.entropy_triton import token_stats_triton

    return token_stats_triton(logits, temps, topk)
