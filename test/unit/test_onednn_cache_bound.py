"""The CPU server environment bounds the memory torch's oneDNN caches keep per batch shape.

bfloat16 linear layers on CPU run as oneDNN matmuls cached per token count; a long-running server
keeps meeting new batch sizes. These tests run the same shape sweep in fresh interpreters with and
without the bound and compare their resident memory, so a torch release that renames or ignores
the variables fails here instead of in a soak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from dynasor.srt.cpu_defaults import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_VARIABLES, cpu_env, onednn_cache_env

# One linear layer of the default model's MLP, called at 800 distinct token counts.
SWEEP = """
import json, torch
torch.set_num_threads(1)
def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4096 / 2**20
weight = torch.randn(3072, 576, dtype=torch.bfloat16)
torch.nn.functional.linear(torch.randn(1, 576, dtype=torch.bfloat16), weight)
start = rss_mb()
for tokens in range(2, 802):
    torch.nn.functional.linear(torch.randn(tokens, 576, dtype=torch.bfloat16), weight)
print(json.dumps({"growth_mb": rss_mb() - start}))
"""


def _growth_mb(cache_env: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ONEDNN_CACHE_VARIABLES}
    env.update(cache_env, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", SWEEP], env=env, capture_output=True, text=True, timeout=300,
                         check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["growth_mb"])


def test_cpu_env_bounds_both_onednn_caches_and_the_callers_values_win(monkeypatch):
    for name in ONEDNN_CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = cpu_env()
    assert {env[name] for name in ONEDNN_CACHE_VARIABLES} == {str(ONEDNN_CACHE_CAPACITY)}
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "512")
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")
    env = cpu_env()
    assert (env["LRU_CACHE_CAPACITY"], env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]) == ("512", "256")


# oneDNN runs bfloat16 matmuls (and caches their primitives) only on CPUs with AVX-512; on an AVX2
# machine torch takes its own slow bf16 path, which caches nothing (measured: +2 MB either way, and
# ~4 minutes for the sweep), so there is nothing to bound.
ONEDNN_BF16 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@pytest.mark.skipif(not ONEDNN_BF16, reason="no AVX-512: oneDNN does not run (or cache) bf16 matmuls on this CPU")
def test_the_bound_keeps_memory_flat_where_the_default_caches_grow_with_every_new_shape(monkeypatch):
    for name in ONEDNN_CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    bounded = _growth_mb(onednn_cache_env())
    unbounded = _growth_mb({})
    print(f"[onednn caches] 800 new shapes: default +{unbounded:.0f} MB, bounded +{bounded:.0f} MB")
    assert unbounded > 40, "torch no longer caches a primitive per shape; revisit the bound"
    assert bounded < 0.5 * unbounded
