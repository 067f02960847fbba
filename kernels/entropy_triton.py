"""Triton kernels: per-row entropy and top-k confidence of next-token distributions, one read of the logits.

Each row of ``logits [rows, vocab]`` (fp32, bf16 or fp16) is streamed once in tiles of UNROLL × BLOCK
entries; lane ``l`` holds entries ``l, l + BLOCK, …``. A lane keeps fp32 running statistics against
its own running max ``m_l``, and a tile's entries of one lane are reduced inside one thread, so the
streaming loop has no reduction across lanes (no cross-warp traffic, no data-dependent branch):

- online softmax at T = 1 and at the row's temperature T: ``s = Σ e^(z-m)``, ``w = Σ e^(z-m)·(z-m)``;
  then ``H = log s − w / s``. Per tile the lane max rises to ``m'``, the sums rescale by ``e^(m−m')``
  (``w ← e^(m−m')·(w + (m−m')·s)``: one exponential per lane and tile) and each entry adds
  ``e^(x−m')`` and ``e^(x−m')·(x−m')``: one exponential per entry, two for rows at a temperature
  other than 1 and 0 (T = 1 rows reuse the T = 1 sums);
- the number of entries equal to the lane max, for T = 0 (greedy): softmax(z/T) tends to the uniform
  distribution over the argmax set, whose entropy is ``log(#ties)``.

After the scan the lanes merge once (rescaling each lane's sums to the row max). The k largest logits
(k ≤ 20, DeepConf's token confidence ``−mean(log p)`` at T = 1) come from the lanes themselves: the
k-th largest entry is at least the k-th largest lane max, so only the k lanes with the largest maxima
can hold one. Those lanes are read back in one gather (mostly from L2, just streamed) and the k
largest of their entries taken. The top-k work is per program, not per tile.

Why two kernels: one program per row leaves most of the GPU idle at decode batch sizes (16 rows on
a 132-SM GPU). So the vocabulary is split into ``splits`` ranges, one program each; each writes its
partial statistics (max, the two sum pairs, ties, its top-k), and a second, tiny kernel merges them
per row with the same rescaling rule. With ``splits == 1`` the scan writes the final values itself.

Measured on an H200 (``benchmark/results/bench_entropy_h200.json``): 1.1–2.3x faster than the kernel
before (which took a block max and inserted top-k candidates every block), and 33% of read bandwidth
at 256 × 152k fp32, 20% in bf16 (21% and 10% before). Without the top-k part the same shapes reach
53% and 35%: the top-k tail (20 lane selections and 20 candidate selections, each a cross-warp
reduction, behind one dependent gather) is 40–60% of the time at 256 rows and 70–80% at ≤ 16. The
streaming loop is bound by registers (~255 per thread, 12.5% occupancy under ncu) and by the
arithmetic of two online softmaxes per entry, not by memory.

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

MAX_SPLIT_BLOCKS = 128  # blocks per split at most, unless LaunchConfig.splits says otherwise
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
def _fold(d, dm, s, w):
    """Fold a tile into per-lane (sum-exp, weighted sum): ``d`` = (x − new lane max)/T per entry,
    ``dm`` = (old lane max − new)/T per lane, both ≤ 0 and finite. One exponential per entry, one
    per lane and tile for the rescale."""
    e = tl.exp(d)
    rescale = tl.exp(dm)
    return rescale * s + tl.sum(e, 0), rescale * (w + dm * s) + tl.sum(e * d, 0)


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
    UNROLL: tl.constexpr,
    LANE_PAD: tl.constexpr,
):
    """Program (row, split) scans vocabulary [split·split_len, (split+1)·split_len) in tiles of
    UNROLL × BLOCK entries (lane l holds entries l, l + BLOCK, …), statistics per lane as in the
    module docstring."""
    row = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    row_ptr = logits_ptr + row * stride_row
    temp = tl.load(temperatures_ptr + row).to(tl.float32)
    greedy = temp <= 0.0
    scaled = (temp > 0.0) & (temp != 1.0)
    inv_t = 1.0 / tl.where(scaled, temp, 1.0)

    m = tl.full([BLOCK], float("-inf"), tl.float32)
    s1 = tl.zeros([BLOCK], tl.float32)
    w1 = tl.zeros([BLOCK], tl.float32)
    st = tl.zeros([BLOCK], tl.float32)
    wt = tl.zeros([BLOCK], tl.float32)
    ties = tl.zeros([BLOCK], tl.float32)
    lanes = tl.arange(0, BLOCK)
    tile = tl.arange(0, UNROLL)[:, None] * BLOCK + lanes[None, :]

    lo = split * split_len
    hi = tl.minimum(lo + split_len, vocab)
    for start in range(lo, hi, BLOCK * UNROLL):
        offs = start + tile
        x = tl.load(row_ptr + offs, mask=offs < hi, other=float("-inf")).to(tl.float32)
        new_m = tl.maximum(m, tl.max(x, 0))
        ref = tl.where(new_m == float("-inf"), 0.0, new_m)
        # −inf entries (and a lane's first, all −inf past) become −1e30: e^d = 0 and e^d·d = 0, no nan.
        d = tl.maximum(x - ref[None, :], -1e30)
        dm = tl.maximum(m - ref, -1e30)
        s1, w1 = _fold(d, dm, s1, w1)
        if scaled:
            st, wt = _fold(d * inv_t, dm * inv_t, st, wt)
        if greedy:
            hits = tl.sum(tl.where((x == new_m[None, :]) & (x != float("-inf")), 1.0, 0.0), 0)
            ties = tl.where(new_m > m, 0.0, ties) + hits
        m = new_m

    m1, s1_row, w1_row = _merge_parts(m, s1, w1)
    mt, st_row, wt_row = _merge_parts(m * inv_t, st, wt)
    ties_row = tl.sum(tl.where((m == m1) & (m != float("-inf")), ties, 0.0), 0)

    slots = tl.arange(0, TOPK_PAD)
    # Slots are filled largest first; those past TOPK hold +inf, which _confidence_from skips.
    top = tl.where(slots < TOPK, float("-inf"), float("inf"))
    if TOPK > 0:
        # The TOPK lanes with the largest maxima hold the TOPK largest entries: read them back in one
        # gather [TOPK_PAD lanes, LANE_PAD entries each] and take the TOPK largest of those.
        chosen = tl.full([TOPK_PAD], -1, tl.int32)
        lane_max = m
        for k in range(TOPK):
            best, best_lane = tl.max(lane_max, 0, return_indices=True)
            chosen = tl.where(slots == k, tl.where(best != float("-inf"), best_lane, -1), chosen)
            lane_max = tl.where(lanes == best_lane, float("-inf"), lane_max)
        offs = lo + chosen[:, None] + tl.arange(0, LANE_PAD)[None, :] * BLOCK
        keep = (chosen[:, None] >= 0) & (offs < hi)
        cand = tl.reshape(tl.load(row_ptr + offs, mask=keep, other=float("-inf")).to(tl.float32),
                          [TOPK_PAD * LANE_PAD])
        flat = tl.arange(0, TOPK_PAD * LANE_PAD)
        for k in range(TOPK):
            best, at = tl.max(cand, 0, return_indices=True)
            top = tl.where(slots == k, best, top)
            cand = tl.where(flat == at, float("-inf"), cand)

    if SPLITS == 1:
        entropy, sampling = _finish_entropies(m1, s1_row, w1_row, st_row, wt_row, ties_row, temp)
        tl.store(out_ptr + row, entropy)
        tl.store(out_ptr + rows + row, sampling)
        if TOPK > 0:
            tl.store(out_ptr + 2 * rows + row, _confidence_from(top, m1, s1_row))
        else:
            tl.store(out_ptr + 2 * rows + row, 0.0)
    else:
        part = part_ptr + (row * SPLITS + split) * PART_FIELDS
        tl.store(part + 0, m1)
        tl.store(part + 1, s1_row)
        tl.store(part + 2, w1_row)
        tl.store(part + 3, mt)
        tl.store(part + 4, st_row)
        tl.store(part + 5, wt_row)
        tl.store(part + 6, ties_row)
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
    when rows alone do not fill the GPU; ``splits`` overrides it (a power of two); ``unroll`` blocks
    are loaded per loop step, to keep more bytes in flight per thread."""

    block: int = 1024
    num_warps: int = 4
    programs_per_sm: int = 4
    min_split_blocks: int = 2
    splits: int | None = None
    unroll: int = 8


# Measured on an H200 (bench_entropy --sweep, 54 configurations): long tiles win from 64 rows up,
# shorter splits of wider blocks below, where the vocabulary is cut into many short splits.
DEFAULT_CONFIG = LaunchConfig()
SMALL_BATCH_CONFIG = LaunchConfig(block=2048, unroll=2)
SMALL_BATCH_ROWS = 64  # fewer rows than this use SMALL_BATCH_CONFIG


def default_config(rows: int) -> LaunchConfig:
    return SMALL_BATCH_CONFIG if rows < SMALL_BATCH_ROWS else DEFAULT_CONFIG


@cache
def _multiprocessors(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def choose_splits(rows: int, vocab: int, config: LaunchConfig, multiprocessors: int) -> int:
    """Splits per row, a power of two: enough programs to fill the GPU, each at least
    ``min_split_blocks`` blocks long and at most ``MAX_SPLIT_BLOCKS`` (which bounds the top-k
    gather of TOPK_PAD lanes × blocks per split)."""
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
    while splits * MAX_SPLIT_BLOCKS < blocks:
        splits *= 2
    return splits


def token_stats_triton(
    logits: torch.Tensor, temperatures: torch.Tensor, topk: int, config: LaunchConfig | None = None
) -> TokenStats[torch.Tensor]:
    """fp32 entropy, sampling entropy and top-k confidence, one value per row (output rows in
    ``TokenStats`` field order); ``config`` defaults by batch size (``default_config``)."""
    rows, vocab = logits.shape
    config = config or default_config(rows)
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
    # Whole loop steps per split; trailing splits past the vocabulary are empty and merge as nothing.
    step = config.block * config.unroll
    split_len = triton.cdiv(triton.cdiv(vocab, splits), step) * step
    lane_pad = max(triton.next_power_of_2(split_len // config.block), 2)  # entries per lane and split
    topk_pad = max(triton.next_power_of_2(max(topk, 1)), 2)
    if splits > 1:
        part = torch.empty((rows, splits, PART_FIELDS.value), device=logits.device, dtype=torch.float32)
        top_part = torch.empty((rows, splits, topk_pad), device=logits.device, dtype=torch.float32)
    else:
        part = top_part = out  # unused by the single-split variant
    token_stats_scan_kernel[(rows, splits)](
        logits, logits.stride(0), temperatures, out, part, top_part, rows, vocab, split_len,
        TOPK=topk, TOPK_PAD=topk_pad, SPLITS=splits, BLOCK=config.block, UNROLL=config.unroll,
        LANE_PAD=lane_pad, num_warps=config.num_warps,
    )
    if splits > 1:
        token_stats_merge_kernel[(rows,)](
            temperatures, out, part, top_part, rows, TOPK=topk, TOPK_PAD=topk_pad, SPLITS=splits, num_warps=1,
        )
    return TokenStats(entropy=out[0], sampling_entropy=out[1], topk_confidence=out[2])
