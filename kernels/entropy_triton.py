"""Triton kernel: per-row entropy and top-k confidence of next-token distributions in one pass.

For each row of ``logits [rows, vocab]`` (fp32, bf16 or fp16) one program streams the vocabulary
once, in blocks, and keeps fp32 running statistics:

- online softmax at T = 1 and at the row's temperature T: running max ``m``, ``s = Σ e^(z-m)`` and
  ``w = Σ e^(z-m)·(z-m)``; then ``H = log s − w / s``. On a new max m' both are rescaled:
  ``s ← e^(m−m')·s`` and ``w ← e^(m−m')·(w + (m−m')·s)``;
- the number of entries equal to the running max, for T = 0 (greedy): softmax(z/T) tends to the
  uniform distribution over the argmax set, whose entropy is ``log(#ties)``;
- the k largest logits (k ≤ 20) in a small register buffer, for DeepConf's token confidence
  ``−mean(log p)`` over the top k at T = 1. A block whose max does not beat the current k-th value
  is skipped, so after the first blocks the buffer costs almost nothing.

−inf entries (masked tokens) contribute nothing; a row with no finite entry gets zeros. Nothing
here reads a value back to the host.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

NEG_INF = float("-inf")


@triton.jit
def _online_softmax_update(z, m, s, w):
    """Fold one block ``z`` into the running (max, sum-exp, weighted sum) of a row."""
    block_max = tl.max(z, 0)
    m_new = tl.maximum(m, block_max)
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    old_finite = m != float("-inf")
    delta = tl.where(old_finite, m - m_safe, 0.0)
    scale = tl.where(old_finite, tl.exp(delta), 0.0)
    w = scale * (w + delta * s)
    s = scale * s
    finite = z != float("-inf")
    d = tl.where(finite, z - m_safe, 0.0)
    e = tl.where(finite, tl.exp(d), 0.0)
    s += tl.sum(e, 0)
    w += tl.sum(e * d, 0)
    return m_new, s, w


@triton.jit
def _entropy_from(s, w):
    return tl.where(s > 0.0, tl.log(tl.where(s > 0.0, s, 1.0)) - w / tl.where(s > 0.0, s, 1.0), 0.0)


@triton.jit
def token_stats_kernel(
    logits_ptr,
    stride_row,
    temperatures_ptr,
    entropy_t_ptr,
    entropy_1_ptr,
    confidence_ptr,
    vocab,
    TOPK: tl.constexpr,
    TOPK_PAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * stride_row
    temp = tl.load(temperatures_ptr + row).to(tl.float32)
    greedy = temp <= 0.0
    inv_t = 1.0 / tl.where(greedy, 1.0, temp)

    m1 = tl.full([], float("-inf"), tl.float32)
    s1 = tl.zeros([], tl.float32)
    w1 = tl.zeros([], tl.float32)
    mt = tl.full([], float("-inf"), tl.float32)
    st = tl.zeros([], tl.float32)
    wt = tl.zeros([], tl.float32)
    ties = tl.zeros([], tl.float32)
    slots = tl.arange(0, TOPK_PAD)
    # Slots past TOPK hold +inf so they are never the minimum, i.e. never replaced.
    topk = tl.where(slots < TOPK, float("-inf"), float("inf"))
    lanes = tl.arange(0, BLOCK)

    for start in range(0, vocab, BLOCK):
        offs = start + lanes
        x = tl.load(row_ptr + offs, mask=offs < vocab, other=float("-inf")).to(tl.float32)

        block_max = tl.max(x, 0)
        block_ties = tl.sum(tl.where(x == block_max, 1.0, 0.0), 0)
        ties = tl.where(block_max > m1, block_ties, tl.where(block_max == m1, ties + block_ties, ties))

        m1, s1, w1 = _online_softmax_update(x, m1, s1, w1)
        mt, st, wt = _online_softmax_update(x * inv_t, mt, st, wt)

        if TOPK > 0:
            if block_max > tl.min(topk, 0):
                work = x
                for _ in tl.static_range(TOPK):
                    # Put the block's best remaining value into the buffer's smallest slot if it
                    # is larger (writing the same minimum back otherwise), then drop it from the block.
                    best = tl.max(work, 0)
                    kth = tl.min(topk, 0)
                    topk = tl.where(slots == tl.argmin(topk, 0), tl.maximum(best, kth), topk)
                    work = tl.where(lanes == tl.argmax(work, 0), float("-inf"), work)

    entropy_1 = _entropy_from(s1, w1)
    entropy_t = tl.where(greedy, tl.log(tl.maximum(ties, 1.0)), _entropy_from(st, wt))
    entropy_t = tl.where(s1 > 0.0, entropy_t, 0.0)
    tl.store(entropy_t_ptr + row, entropy_t)
    tl.store(entropy_1_ptr + row, entropy_1)

    if TOPK > 0:
        lse = tl.where(s1 > 0.0, m1, 0.0) + tl.log(tl.where(s1 > 0.0, s1, 1.0))
        used = tl.abs(topk) < float("inf")  # drops empty (-inf) and padding (+inf) slots
        count = tl.sum(tl.where(used, 1.0, 0.0), 0)
        total = tl.sum(tl.where(used, topk - lse, 0.0), 0)
        tl.store(confidence_ptr + row, tl.where(count > 0.0, -total / tl.maximum(count, 1.0), 0.0))


def token_stats_triton(
    logits: torch.Tensor, temperatures: torch.Tensor, topk: int, block: int = 2048
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch one program per row; returns fp32 (entropy at T, entropy at 1, top-k confidence)."""
    rows, vocab = logits.shape
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    # contiguous(): a broadcast scalar temperature arrives as an expanded view with stride 0,
    # and the kernel indexes one float per row.
    temperatures = temperatures.reshape(-1).to(device=logits.device, dtype=torch.float32).contiguous()
    out = torch.empty((3, rows), device=logits.device, dtype=torch.float32)
    if rows:
        topk_pad = max(triton.next_power_of_2(max(topk, 1)), 2)
        token_stats_kernel[(rows,)](
            logits, logits.stride(0), temperatures, out[0], out[1], out[2], vocab,
            TOPK=topk, TOPK_PAD=topk_pad, BLOCK=block, num_warps=8,
        )
    if topk == 0:
        out[2].zero_()
    return out[0], out[1], out[2]
