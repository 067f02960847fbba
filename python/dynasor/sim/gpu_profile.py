"""Iteration time on a GPU from measured per-layer operator times (``../shared/data/gpu-profiles``).

The data (Vidur's profiles, README there) gives, per batch token count, the median time of every
linear and element-wise operator of one layer, tensor parallelism 1. What it lacks is modelled,
and every assumption is returned by ``describe`` so it travels with the results:

- operators: Σ per-layer medians × layers + the embedding, linear between profiled token counts
  and proportional to the token count beyond the largest (compute-bound there; the last two
  measured points are too close and too noisy to give a slope);
- attention, prefill: FLOPs 4 × heads × head_dim × Σ new × (context + new / 2) per layer at
  ``peak_flops × flops_efficiency``; decode: reading the KV cache, 2 × layers × KV heads × head_dim
  × 2 bytes per cached token, at ``hbm_bandwidth × bandwidth_efficiency``;
- LM head: one row of logits per request and step, the larger of its FLOPs (2 × hidden × vocab)
  at the compute rate and its weight read (hidden × vocab × 2 bytes) at the bandwidth;
- no host-side time: SGLang overlaps scheduling with the forward pass on a GPU
  (``step_overhead_s`` adds a constant if wanted).
"""

from __future__ import annotations

import csv
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAYER_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
             "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")


@dataclass(frozen=True)
class GpuSpec:
    """Published peak figures of the card (dense bf16) and the efficiencies assumed for them."""

    name: str
    peak_flops: float
    hbm_bandwidth: float  # bytes/s
    kv_tokens: int  # KV pool of the model on this card (stated in ``note``)
    note: str
    flops_efficiency: float = 0.5
    bandwidth_efficiency: float = 0.7


@dataclass(frozen=True)
class ModelShape:
    layers: int
    heads: int
    kv_heads: int
    hidden: int
    vocab: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class GpuStepCost:
    name: str
    gpu: GpuSpec
    model: ModelShape
    tokens: tuple[int, ...]  # profiled batch token counts, ascending
    op_seconds: tuple[float, ...]  # Σ ops × layers + embedding at each, seconds
    source: str
    step_overhead_s: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    def linear_ops(self, tokens: int) -> float:
        xs, ys = self.tokens, self.op_seconds
        if tokens <= xs[0]:
            return ys[0]
        if tokens > xs[-1]:  # compute-bound there: proportional to the tokens
            return ys[-1] * tokens / xs[-1]
        i = bisect_left(xs, tokens)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 + (y1 - y0) * (tokens - x0) / (x1 - x0)

    def _flops_s(self, flops: float) -> float:
        return flops / (self.gpu.peak_flops * self.gpu.flops_efficiency)

    def _bytes_s(self, nbytes: float) -> float:
        return nbytes / (self.gpu.hbm_bandwidth * self.gpu.bandwidth_efficiency)

    def lm_head_seconds(self, rows: int) -> float:
        m = self.model
        return max(self._flops_s(2.0 * m.hidden * m.vocab * rows), self._bytes_s(2.0 * m.hidden * m.vocab))

    def prefill_seconds(self, extends: Sequence[tuple[int, int]]) -> float:
        m = self.model
        new = sum(n for n, _ in extends)
        attention = 4.0 * m.layers * m.heads * m.head_dim * sum(n * (c + n / 2) for n, c in extends)
        return self.step_overhead_s + self.linear_ops(new) + self._flops_s(attention) \
            + self.lm_head_seconds(len(extends))

    def decode_seconds(self, batch: int, kv_tokens: int) -> float:
        m = self.model
        kv_bytes = 2.0 * m.layers * m.kv_heads * m.head_dim * 2 * kv_tokens
        return self.step_overhead_s + self.linear_ops(batch) + self._bytes_s(kv_bytes) + self.lm_head_seconds(batch)

    def describe(self) -> dict[str, Any]:
        g = self.gpu
        return {"form": "measured per-layer operators + modelled attention and LM head", "name": self.name,
                "source": self.source, "gpu": g.name, "peak_flops": g.peak_flops, "hbm_bandwidth": g.hbm_bandwidth,
                "flops_efficiency": g.flops_efficiency, "bandwidth_efficiency": g.bandwidth_efficiency,
                "kv_tokens": g.kv_tokens, "kv_note": g.note, "model": self.model.__dict__,
                "profiled_tokens": [self.tokens[0], self.tokens[-1]], "step_overhead_s": self.step_overhead_s,
                "assumptions": __doc__}


def load_gpu_profile(folder: Path, name: str, gpu: GpuSpec) -> GpuStepCost:
    """Tensor-parallel-1 rows of ``folder/mlp.csv``; the model shape comes from its columns."""
    with open(folder / "mlp.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["num_tensor_parallel_workers"] == "1"]
    if not rows:
        raise ValueError(f"{folder / 'mlp.csv'}: no tensor-parallel-1 rows")
    first = rows[0]
    model = ModelShape(layers=_layers(name), heads=int(first["n_head"]), kv_heads=int(first["n_kv_head"]),
                       hidden=int(first["n_embd"]), vocab=int(first["vocab_size"]))
    by_tokens: dict[int, list[float]] = {}
    for r in rows:  # a token count profiled more than once: the mean of its rows
        seconds = (sum(float(r[f"time_stats.{op}.median"]) for op in LAYER_OPS) * model.layers
                   + float(r["time_stats.emb.median"])) / 1000
        by_tokens.setdefault(int(r["num_tokens"]), []).append(seconds)
    points = sorted((t, sum(v) / len(v)) for t, v in by_tokens.items())
    return GpuStepCost(name, gpu, model, tuple(t for t, _ in points), tuple(s for _, s in points),
                       f"{folder.name}/mlp.csv (medians, TP 1)")


def _layers(name: str) -> int:
    """Both profiled models (Llama-3-8B, Llama-2-7B) have 32 layers (not a column of the data)."""
    if name in GPU_SPECS:
        return 32
    raise ValueError(f"unknown GPU profile {name!r}; known: {sorted(GPU_SPECS)}")


GIB = 1024**3
GPU_SPECS = {
    # KV pool: 80 GB x SGLang's mem_fraction_static 0.88 minus bf16 weights, over the KV bytes per token
    "a100-llama3-8b": GpuSpec("NVIDIA A100 80GB SXM", 312e12, 2.0e12, int((80 * 0.88 - 16.1) * GIB // (128 * 1024)),
                              "(80 GB x 0.88 - 16.1 GB weights) / 128 KiB per token (32 layers x 8 KV heads x 128 "
                              "x 2 (K,V) x 2 bytes)"),
    "h100-llama2-7b": GpuSpec("NVIDIA H100 80GB SXM", 989e12, 3.35e12, int((80 * 0.88 - 13.5) * GIB // (512 * 1024)),
                              "(80 GB x 0.88 - 13.5 GB weights) / 512 KiB per token (32 layers x 32 KV heads x 128 "
                              "x 2 (K,V) x 2 bytes)"),
}
