"""README rendering of the entropy kernel's GPU measurement (``bench_entropy.py`` on a GPU)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.readme.cells import link, num


def render_kernels(path: Path, data: Mapping[str, Any], readme: Path) -> list[str]:
    ceilings = data.get("ceilings") or {}
    config = data.get("config") or {}
    out = [f"#### Entropy kernel on {ceilings.get('device_name', data.get('device'))} — `{link(path, readme)}`", "",
           f"- torch {data.get('torch')}, triton {data.get('triton')}; launch config {config}",
           f"- measured ceilings: copy {num(ceilings.get('copy_gb_per_s'), '.0f')} GB/s, read "
           f"{num(ceilings.get('read_gb_per_s'), '.0f')} GB/s; datasheet "
           f"{num(ceilings.get('datasheet_gb_per_s'), '.0f')} GB/s",
           "- GPU time from CUDA-graph replay with the L2 flushed before every call; host = Python and launch time "
           "per call; plain torch = softmax and log-softmax at T and at 1, then top-k", "",
           "| rows | vocab | dtype | max err vs fp64 | kernel ms | plain torch ms | vs torch | previous kernel ms "
           "| vs previous | GB/s | % of read | host µs |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['rows']} | {r['vocab']} | {r['dtype']} | {num(r.get('max_abs_error'), '.1e')} | "
            f"{num(r.get('dynasor_ms'), '.4f')} | {num(r.get('plain_torch_ms'), '.4f')} | "
            f"{num(r.get('speedup'), '.2f')}x | {num(r.get('previous_kernel_ms'), '.4f')} | "
            f"{num(r.get('speedup_vs_previous_kernel'), '.2f')}x | {num(r.get('gb_per_s'), '.0f')} | "
            f"{num(r.get('pct_of_read_bandwidth'), '.1f')}% | {num(r.get('host_launch_us'), '.0f')} |"
            for r in data.get("kernel") or []]
    ncu = data.get("ncu_256x152064_fp32")
    if isinstance(ncu, Mapping):
        topk, bare = ncu.get("topk20", {}), ncu.get("topk0", {})
        out += ["", f"ncu at 256 × 152,064 fp32 ({ncu.get('config')}): with the top-k buffer "
                f"{num(topk.get('duration_us'), '.0f')} µs, {num(topk.get('dram_throughput_pct'), '.0f')}% of DRAM "
                f"throughput, {topk.get('registers_per_thread')} registers per thread; without it "
                f"{num(bare.get('duration_us'), '.0f')} µs, {num(bare.get('dram_throughput_pct'), '.0f')}%, "
                f"{bare.get('registers_per_thread')} registers; top stall: {ncu.get('top_stall')}."]
    return [*out, ""]
