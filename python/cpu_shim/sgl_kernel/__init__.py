"""Pure-torch stand-in for ``sgl_kernel`` on CPU-only machines (SGLang 0.5.23).

PyPI has no CPU build of sgl-kernel, yet with ``SGLANG_USE_CPU_ENGINE=1`` SGLang imports a few
``*_cpu`` names from it at module level. This package registers no ``torch.ops.sgl_kernel`` ops,
so SGLang's ``cpu_has_amx_support()`` stays False and every layer takes SGLang's own
``forward_native`` path. The one host helper that path calls is implemented below; any other name
imports fine but raises ``NotImplementedError`` when called (speculative decoding and KV-move paths
would fail loudly, not silently). Never install this where CUDA is present: there the real
``sgl-kernel`` must stay in charge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__version__ = "0.0.0+dynasor.cpushim"


def assign_req_to_token_pool_cpu(
    req_pool_indices: torch.Tensor,
    req_to_token: torch.Tensor,
    start_offset: torch.Tensor,
    end_offset: torch.Tensor,
    out_cache_loc: torch.Tensor,
    pool_len: int,
) -> None:
    """Write each request's new KV slots into its row of the request-to-token table."""
    cursor = 0
    for row, start, end in zip(req_pool_indices.tolist(), start_offset.tolist(), end_offset.tolist()):
        count = end - start
        if count > 0:
            req_to_token[row, start:end] = out_cache_loc[cursor : cursor + count].to(req_to_token.dtype)
        cursor += count


def _missing(name: str) -> Callable[..., Any]:
    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"sgl_kernel CPU stand-in: {name} needs the real sgl-kernel CPU build")

    unavailable.__name__ = name
    return unavailable


def __getattr__(name: str) -> Callable[..., Any]:
    if name.startswith("__"):
        raise AttributeError(name)
    return _missing(name)
