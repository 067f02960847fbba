"""README rendering of the entropy kernel's GPU measurement (``bench_entropy.py`` on a GPU)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, num


def _config_text(config: Any) -> str:
    if isinstance(config, Mapping) and all(isinstance(v, Mapping) for v in config.values()):
        return "; ".join(f"{k}: {_config_text(v)}" for k, v in config.items())
    if isinstance(config, Mapping):
        return ", ".join(f"{k} {v}" for k, v in config.items() if v is not None)
    return str(config)


def render_kernels(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    ceilings = data.get("ceilings") or {}
    out = [f"#### Entropy kernel on {ceilings.get('device_name', data.get('device'))} — `{link(path, readme)}`", "",
           f"- torch {data.get('torch')}, triton {data.get('triton')}; launch config "
           f"{_config_text(data.get('config') or {})}",
           f"- measured ceilings: copy {num(ceilings.get('copy_gb_per_s'), '.0f')} GB/s, read "
           f"{num(ceilings.get('read_gb_per_s'), '.0f')} GB/s; datasheet "
           f"{num(ceilings.get('datasheet_gb_per_s'), '.0f')} GB/s",
           "- GPU time from CUDA-graph replay with the L2 flushed before every call; host = Python and launch time "
           "per call; plain torch = softmax and log-softmax at T and at 1, then top-k; no top-k = this kernel with "
           "top-k 0; previous = the kernel before, same inputs, same run", "",
           "| rows | vocab | dtype | max err vs fp64 | kernel ms | no top-k ms | plain torch ms | vs torch "
           "| previous kernel ms | vs previous | GB/s | % of read | host µs |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['rows']} | {r['vocab']} | {r['dtype']} | {num(r.get('max_abs_error'), '.1e')} | "
            f"{num(r.get('dynasor_ms'), '.4f')} | {num(r.get('topk0_ms'), '.4f')} | "
            f"{num(r.get('plain_torch_ms'), '.4f')} | "
            f"{num(r.get('speedup'), '.2f')}x | {num(r.get('previous_kernel_ms'), '.4f')} | "
            f"{num(r.get('speedup_vs_previous_kernel'), '.2f')}x | {num(r.get('gb_per_s'), '.0f')} | "
            f"{num(r.get('pct_of_read_bandwidth'), '.1f')}% | {num(r.get('host_launch_us'), '.0f')} |"
            for r in data.get("kernel") or []]
    ncu = data.get("ncu_256x152064_fp32")
    if isinstance(ncu, Mapping):
        topk, bare = ncu.get("topk20", {}), ncu.get("topk0", {})
        limit = ncu.get("limit") or f"top stall: {ncu.get('top_stall')}"
        out += ["", f"ncu at 256 × 152,064 fp32 ({ncu.get('config')}): with top-k "
                f"{num(topk.get('duration_us'), '.0f')} µs, {num(topk.get('dram_throughput_pct'), '.0f')}% of DRAM "
                f"throughput, {num(topk.get('registers_per_thread'), '.0f')} registers per thread; without it "
                f"{num(bare.get('duration_us'), '.0f')} µs, {num(bare.get('dram_throughput_pct'), '.0f')}%, "
                f"{num(bare.get('registers_per_thread'), '.0f')} registers; {limit}."]
    return [*out, ""]
