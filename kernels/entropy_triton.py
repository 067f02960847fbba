"""Triton kernels: per-row entropy and top-k confidence of next-token distributions, one read of the logits.

Each row of ``logits [rows, vocab]`` (fp32, bf16 or fp16) is streamed once in blocks, keeping fp32
running statistics against the running row max ``r``:

- online softmax at T = 1 and at the row's temperature T, kept per lane: ``s = Σ e^(z-r)`` and
  ``w = Σ e^(z-r)·(z-r)``; then ``H = log s − w / s``. A new max r' rescales both by the scalar
  ``e^(r−r')`` (``w ← e^(r−r')·(w + (r−r')·s)``), so an element costs one exponential, two for rows
  at a temperature other than 1 and 0 (T = 1 rows reuse the T = 1 sums);
- the number of entries equal to the max, for T = 0 (greedy): softmax(z/T) tends to the uniform
  distribution over the argmax set, whose entropy is ``log(#ties)``;
- the k largest logits (k ≤ 20) in a small register buffer, for DeepConf's token confidence
  ``−mean(log p)`` over the top k at T = 1. A block whose max beats the buffer's minimum inserts its
  entries above that minimum, largest first.

Why two kernels: one program per row leaves most of the GPU idle at decode batch sizes (16 rows on
a 132-SM GPU). So the vocabulary is split into ``splits`` ranges, one program each; each writes its
partial statistics (max, the two sum pairs, ties, its top-k), and a second, tiny kernel merges them
per row with the same rescaling rule. With ``splits == 1`` the scan writes the final values itself.

Measured on an H200 (``benchmark/results/bench_entropy_h200.json``): 2.8–9.7x faster than the former
one-program-per-row kernel, but at most ~21% of read bandwidth (256 × 152k fp32): the top-k inserts
cost about 60% of the time on Gaussian logits, and the per-block cross-warp max reduction bounds the
rest (ncu: shared-memory scoreboard stalls, 25–31% occupancy from 87–123 registers per thread).

−inf entries (masked tokens) contribute nothing; a row with no finite entry gets zeros. Nothing
here reads a value back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import triton
import triton.language as tl

from dynasor.core.token_stats import TokenStats

PART_FIELDS = tl.constexpr(8)  # partial statistics per (row, split): m1, s1, w1, mt, st, wt, ties, (pad)


@triton.jit
def _merge_parts(ms, ss, ws):
    """Merge vectors of partial (max, sum-exp, weighted sum) triples into one triple."""
    m = tl.max(ms, 0)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    finite = ms != float("-inf")
    delta = tl.where(finite, ms - m_safe, 0.0)
    scale = tl.where(finite, tl.exp(delta), 0.0)
    return m, tl.sum(scale * ss, 0), tl.sum(scale * (ws + delta * ss), 0)


@triton.jit
def _entropy_from(s, w):
    return tl.where(s > 0.0, tl.log(tl.where(s > 0.0, s, 1.0)) - w / tl.where(s > 0.0, s, 1.0), 0.0)


@triton.jit
def _finish_entropies(m1, s1, w1, st, wt, ties, temp):
    """(entropy at T = 1, sampling entropy at the row's T) from the merged statistics of a row."""
    entropy = _entropy_from(s1, w1)
    greedy = temp <= 0.0
    plain = temp == 1.0
    sampling = tl.where(greedy, tl.log(tl.maximum(ties, 1.0)), tl.where(plain, entropy, _entropy_from(st, wt)))
    sampling = tl.where(s1 > 0.0, sampling, 0.0)
    return entropy, sampling


@triton.jit
def _confidence_from(top, m1, s1):
    """DeepConf confidence −mean(top − logsumexp) over the finite entries of ``top``."""
    lse = tl.where(s1 > 0.0, m1, 0.0) + tl.log(tl.where(s1 > 0.0, s1, 1.0))
    used = tl.abs(top) < float("inf")  # drops empty (-inf) and padding (+inf) slots
    count = tl.sum(tl.where(used, 1.0, 0.0), 0)
    total = tl.sum(tl.where(used, top - lse, 0.0), 0)
    return tl.where(count > 0.0, -total / tl.maximum(count, 1.0), 0.0)


@triton.jit
def _rescale(s, w, delta, old_finite):
    """Re-reference per-lane (sum-exp, weighted sum) vectors to a new max: ``delta = old − new``."""
    scale = tl.where(old_finite, tl.exp(delta), 0.0)
    return scale * s, scale * (w + delta * s)


@triton.jit
def token_stats_scan_kernel(
    logits_ptr,
    stride_row,
    temperatures_ptr,
    out_ptr,
    part_ptr,
    top_part_ptr,
    rows,
    vocab,
    split_len,
    TOPK: tl.constexpr,
    TOPK_PAD: tl.constexpr,
    SPLITS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Program (row, split) scans vocabulary [split·split_len, (split+1)·split_len).

    Sums are kept per lane (vectors of BLOCK) against one running row max ``r``: a block costs one
    reduction (its max), and a new max rescales the vectors by a scalar factor, so each element
    needs one exponential (two for rows at a temperature other than 1 and 0)."""
    row = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    row_ptr = logits_ptr + row * stride_row
    temp = tl.load(temperatures_ptr + row).to(tl.float32)
    greedy = temp <= 0.0
    scaled = (temp > 0.0) & (temp != 1.0)
    inv_t = 1.0 / tl.where(scaled, temp, 1.0)

    r = tl.full([], float("-inf"), tl.float32)
    s1 = tl.zeros([BLOCK], tl.float32)
    w1 = tl.zeros([BLOCK], tl.float32)
    st = tl.zeros([BLOCK], tl.float32)
    wt = tl.zeros([BLOCK], tl.float32)
    ties = tl.zeros([BLOCK], tl.float32)
    slots = tl.arange(0, TOPK_PAD)
    # Slots past TOPK hold +inf so they are never the minimum, i.e. never replaced.
    top = tl.where(slots < TOPK, float("-inf"), float("inf"))
    lanes = tl.arange(0, BLOCK)

    lo = split * split_len
    hi = tl.minimum(lo + split_len, vocab)
    for start in range(lo, hi, BLOCK):
        offs = start + lanes
        x = tl.load(row_ptr + offs, mask=offs < hi, other=float("-inf")).to(tl.float32)
        block_max = tl.max(x, 0)
        if block_max > r:
            old_finite = r != float("-inf")
            delta = tl.where(old_finite, r - block_max, 0.0)
            s1, w1 = _rescale(s1, w1, delta, old_finite)
            st, wt = _rescale(st, wt, delta * inv_t, old_finite)
            ties = tl.zeros([BLOCK], tl.float32)
            r = block_max
        finite = x != float("-inf")
        d = tl.where(finite, x - tl.where(r == float("-inf"), 0.0, r), 0.0)
        e = tl.where(finite, tl.exp(d), 0.0)
        s1 += e
        w1 += e * d
        if scaled:
            dt = d * inv_t
            et = tl.where(finite, tl.exp(dt), 0.0)
            st += et
            wt += et * dt
        if greedy:
            ties += tl.where(finite & (x == r), 1.0, 0.0)

        # Insert the block's entries above the buffer's minimum, largest first.
        if TOPK > 0 and block_max > tl.min(top, 0):
                n_new = tl.minimum(tl.sum(tl.where(x > tl.min(top, 0), 1, 0), 0), TOPK)
                work = x
                for _ in range(n_new):
                    best, best_lane = tl.max(work, 0, return_indices=True)
                    kth, kth_slot = tl.min(top, 0, return_indices=True)
                    top = tl.where(slots == kth_slot, tl.maximum(best, kth), top)
                    work = tl.where(lanes == best_lane, float("-inf"), work)

    m1 = r
    mt = r * inv_t
    s1 = tl.sum(s1, 0)
    w1 = tl.sum(w1, 0)
    st = tl.sum(st, 0)
    wt = tl.sum(wt, 0)
    ties = tl.sum(ties, 0)
    if SPLITS == 1:
        entropy, sampling = _finish_entropies(m1, s1, w1, st, wt, ties, temp)
        tl.store(out_ptr + row, entropy)
        tl.store(out_ptr + rows + row, sampling)
        if TOPK > 0:
            tl.store(out_ptr + 2 * rows + row, _confidence_from(top, m1, s1))
        else:
            tl.store(out_ptr + 2 * rows + row, 0.0)
    else:
        part = part_ptr + (row * SPLITS + split) * PART_FIELDS
        tl.store(part + 0, m1)
        tl.store(part + 1, s1)
        tl.store(part + 2, w1)
        tl.store(part + 3, mt)
        tl.store(part + 4, st)
        tl.store(part + 5, wt)
        tl.store(part + 6, ties)
        if TOPK > 0:
            tl.store(top_part_ptr + (row * SPLITS + split) * TOPK_PAD + slots, top)


@triton.jit
def token_stats_merge_kernel(
    temperatures_ptr,
    out_ptr,
    part_ptr,
    top_part_ptr,
    rows,
    TOPK: tl.constexpr,
    TOPK_PAD: tl.constexpr,
    SPLITS: tl.constexpr,
):
    """Program ``row`` merges the row's SPLITS partial statistics into the final values."""
    row = tl.program_id(0).to(tl.int64)
    temp = tl.load(temperatures_ptr + row).to(tl.float32)
    idx = tl.arange(0, SPLITS)
    part = part_ptr + (row * SPLITS + idx) * PART_FIELDS
    m1, s1, w1 = _merge_parts(tl.load(part + 0), tl.load(part + 1), tl.load(part + 2))
    _, st, wt = _merge_parts(tl.load(part + 3), tl.load(part + 4), tl.load(part + 5))
    part_max = tl.load(part + 0)
    ties = tl.sum(tl.where((part_max == m1) & (part_max != float("-inf")), tl.load(part + 6), 0.0), 0)
    entropy, sampling = _finish_entropies(m1, s1, w1, st, wt, ties, temp)
    tl.store(out_ptr + row, entropy)
    tl.store(out_ptr + rows + row, sampling)

    if TOPK > 0:
        slots = tl.arange(0, TOPK_PAD)
        flat = tl.arange(0, SPLITS * TOPK_PAD)  # split * TOPK_PAD + slot
        cand = tl.load(top_part_ptr + row * SPLITS * TOPK_PAD + flat)
        cand = tl.where(cand == float("inf"), float("-inf"), cand)  # padding slots
        # The TOPK largest candidates, into the front of a +inf-padded buffer.
        top = tl.full([TOPK_PAD], float("inf"), tl.float32)
        for k in tl.static_range(TOPK):
            best = tl.max(cand, 0)
            top = tl.where(slots == k, best, top)
            cand = tl.where(flat == tl.argmax(cand, 0), float("-inf"), cand)
        tl.store(out_ptr + 2 * rows + row, _confidence_from(top, m1, s1))
    else:
        tl.store(out_ptr + 2 * rows + row, 0.0)


@dataclass(frozen=True)
class LaunchConfig:
    """Tuning knobs of the scan kernel. ``programs_per_sm`` sets how finely the vocabulary is split
    when rows alone do not fill the GPU; ``splits`` overrides it (a power of two)."""

    block: int = 1024  # defaults: best geometric mean over six shapes of a 24-config sweep on an H200
    num_warps: int = 4
    programs_per_sm: int = 4
    min_split_blocks: int = 2
    splits: int | None = None


DEFAULT_CONFIG = LaunchConfig()


@cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def choose_splits(rows: int, vocab: int, config: LaunchConfig, multiprocessors: int) -> int:
    """Splits per row, a power of two: enough programs to fill the GPU, each at least
    ``min_split_blocks`` blocks long."""
    if config.splits is not None:
        if config.splits < 1 or config.splits & (config.splits - 1):
            raise ValueError(f"splits must be a power of two, got {config.splits}")
        return config.splits
    blocks = triton.cdiv(vocab, config.block)
    want = triton.cdiv(config.programs_per_sm * multiprocessors, max(rows, 1))
    cap = max(1, blocks // config.min_split_blocks)
    splits = 1
    while splits * 2 <= min(want, cap, 64):
        splits *= 2
    return splits


def token_stats_triton(
    logits: torch.Tensor, temperatures: torch.Tensor, topk: int, config: LaunchConfig = DEFAULT_CONFIG
) -> TokenStats[torch.Tensor]:
    """fp32 entropy, sampling entropy and top-k confidence, one value per row (output rows in
    ``TokenStats`` field order)."""
    rows, vocab = logits.shape
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    # contiguous(): a broadcast scalar temperature arrives as an expanded view with stride 0,
    # and the kernel indexes one float per row.
    temperatures = temperatures.reshape(-1).to(device=logits.device, dtype=torch.float32).contiguous()
    if rows == 0 or vocab == 0:
        out = torch.zeros((3, rows), device=logits.device, dtype=torch.float32)
        return TokenStats(entropy=out[0], sampling_entropy=out[1], topk_confidence=out[2])
    out = torch.empty((3, rows), device=logits.device, dtype=torch.float32)  # every value is written
    sms = _multiprocessors(logits.device.index or 0) if logits.is_cuda else 8
    splits = choose_splits(rows, vocab, config, sms)
    # Whole blocks per split; trailing splits past the vocabulary are empty and merge as nothing.
    split_len = triton.cdiv(triton.cdiv(vocab, splits), config.block) * config.block
    topk_pad = max(triton.next_power_of_2(max(topk, 1)), 2)
    if splits > 1:
        part = torch.empty((rows, splits, PART_FIELDS.value), device=logits.device, dtype=torch.float32)
        top_part = torch.empty((rows, splits, topk_pad), device=logits.device, dtype=torch.float32)
    else:
        part = top_part = out  # unused by the single-split variant
    token_stats_scan_kernel[(rows, splits)](
        logits, logits.stride(0), temperatures, out, part, top_part, rows, vocab, split_len,
        TOPK=topk, TOPK_PAD=topk_pad, SPLITS=splits, BLOCK=config.block, num_warps=config.num_warps,
    )
    if splits > 1:
        token_stats_merge_kernel[(rows,)](
            temperatures, out, part, top_part, rows, TOPK=topk, TOPK_PAD=topk_pad, SPLITS=splits, num_warps=1,
        )
    return TokenStats(entropy=out[0], sampling_entropy=out[1], topk_confidence=out[2])
