"""Per-token entropy: kernel time per shape against plain torch, and live decode throughput with and
without the sampler hook.

    python -m benchmark.kernels.bench_entropy                 # kernel table + live table (CPU server)
    python -m benchmark.kernels.bench_entropy --skip-live     # kernel table only (torch + triton, no SGLang)
    python -m benchmark.kernels.bench_entropy --url http://127.0.0.1:30000   # live part against a running server
    python -m benchmark.kernels.bench_entropy --skip-live --sweep --baseline-kernel OLD.py   # GPU, vs an older kernel

On CPU the "kernel" is the dispatcher's vectorised torch path; on CUDA it is the Triton kernel, and
the table adds achieved GB/s (logits bytes read once) against the device's measured copy bandwidth,
the time without the top-k part (``topk`` 0), and, with ``--baseline-kernel``, the time of another
version of ``entropy_triton.py`` (e.g. the previous commit's) on the same inputs in the same run.
"Plain torch" is the straightforward unfused computation: softmax and log_softmax at T and at 1,
then topk. The live part sends the same decode-heavy batch to one Dynasor server, rotating rounds
with ``return_entropy`` off (the hook does nothing), on, and on with a confidence stop that never
fires (``stop_below_confidence`` far below anything reached: the per-token check runs, the requests
run to their cap), and gives the paired ratios with bootstrap intervals.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from benchmark.common import RESULTS, add_server_flags, dynasor_server
from dynasor.core.token_stats import TokenStats
from dynasor.kernels.entropy import MAX_TOPK, token_stats, token_stats_reference
from dynasor.kernels.entropy_triton import LaunchConfig


def plain_torch(logits: torch.Tensor, temps: torch.Tensor, topk: int) -> tuple[torch.Tensor, ...]:
    x = logits.float()
    out = []
    for z in (x, x / temps[:, None]):
        p = torch.softmax(z, -1)
        logp = torch.log_softmax(z, -1)
        out.append(-(p * torch.nan_to_num(logp, neginf=0.0)).sum(-1))
    lse = torch.logsumexp(x, -1, keepdim=True)
    out.append(-(torch.topk(x, topk, -1).values - lse).mean(-1))
    return tuple(out)


def timed(fn: Callable[[], Any], device: str, min_time: float = 0.3, min_iters: int = 3) -> float:
    """Median seconds per call. On CUDA: triton's do_bench (CUDA events, L2 flushed before every
    call, so the logits come from HBM as they would after the LM head on a large batch)."""
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def device_time(fn: Callable[[], Any], reps: int = 20) -> float:
    """Seconds of GPU time per call, without host launch overhead: ``reps`` calls, each after an
    L2 flush, captured in one CUDA graph and replayed; minus a graph of the flushes alone."""
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    fn()
    torch.cuda.synchronize()
    graphs = []
    for with_fn in (True, False):
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(reps):
                flush.zero_()
                if with_fn:
                    fn()
        graphs.append(g)
    totals = []
    for g in graphs:
        g.replay()
        samples = []
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            g.replay()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
        totals.append(statistics.median(samples))
    return max(totals[0] - totals[1], 0.0) / reps


def host_time(fn: Callable[[], Any], calls: int = 50) -> float:
    """Seconds of host (Python + launch) time per call: calls issued back to back, GPU not waited on."""
    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    return statistics.median(samples)


def bandwidth_ceilings(device: str) -> dict:
    """Measured ceilings: device-to-device copy (bytes read + written) and a read-only reduction."""
    x = torch.empty(1 << 30 if device == "cuda" else 1 << 24, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    copy = 2 * x.numel() / timed(lambda: y.copy_(x), device) / 1e9
    f = x.view(torch.float32)
    read = f.numel() * 4 / timed(lambda: torch.amax(f), device) / 1e9
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor()
    datasheet = next((v for k, v in DATASHEET_GBS.items() if k in name), None)
    return {"device_name": name, "copy_gb_per_s": copy, "read_gb_per_s": read, "datasheet_gb_per_s": datasheet}


# HBM bandwidth by the vendors' datasheets (GB/s), for the "% of peak" column.
DATASHEET_GBS = {"H200": 4800.0, "H100 80GB HBM3": 3350.0, "H100": 3350.0, "A100-SXM4-80GB": 2039.0, "A100": 1555.0}


def realistic_logits(rows: int, vocab: int, dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    """Gaussian logits with per-row scale 1..12 (flat to peaked rows), temperatures cycled below."""
    g = torch.Generator(device=device).manual_seed(seed)
    scale = torch.linspace(1.0, 12.0, rows, device=device)[:, None]
    return (torch.randn(rows, vocab, generator=g, device=device) * scale).to(dtype)


TEMPERATURES = (0.7, 1.0, 0.0, 1.3)


def max_error(got: TokenStats[torch.Tensor], x: torch.Tensor, temps: torch.Tensor) -> float:
    want = token_stats_reference(x, temps, MAX_TOPK, device=x.device)
    return max((g.double() - w).abs().max().item() for g, w in zip(got.values(), want.values()))


def sweep_configs(device: str, shapes: list[tuple[int, int, torch.dtype]], configs: list[LaunchConfig]) -> list[dict]:
    """Median time of each launch configuration on a few shapes; prints the best per shape."""
    from dynasor.kernels.entropy_triton import token_stats_triton

    out = []
    for rows, vocab, dtype in shapes:
        x = realistic_logits(rows, vocab, dtype, device)
        temps = torch.tensor(TEMPERATURES, device=device).repeat(rows)[:rows]
        timings = []
        for cfg in configs:
            fn = lambda: token_stats_triton(x, temps, MAX_TOPK, cfg)
            t = device_time(fn) if device == "cuda" else timed(fn, device)
            timings.append(t)
            out.append({"rows": rows, "vocab": vocab, "dtype": str(dtype).removeprefix("torch."),
                        "config": asdict(cfg), "ms": t * 1e3})
        best = min(range(len(configs)), key=timings.__getitem__)
        print(f"sweep {rows:>4} x {vocab:>6} {str(dtype).removeprefix('torch.'):>8}: best {configs[best]} "
              f"{timings[best]*1e3:.4f} ms; worst {max(timings)*1e3:.4f} ms", flush=True)
    return out


KernelFn = Callable[[torch.Tensor, torch.Tensor], TokenStats[torch.Tensor]]


def load_baseline_kernel(path: Path) -> KernelFn:
    """``token_stats_triton`` (at its own default launch config) of another copy of the kernel module."""
    spec = importlib.util.spec_from_file_location("entropy_triton_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline-kernel: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return lambda x, t: module.token_stats_triton(x, t, MAX_TOPK)


def kernel_table(device: str, shapes: list[tuple[int, int]], dtypes: list[torch.dtype], compiled: bool,
                 ceilings: dict | None, config: LaunchConfig | None = None,
                 baseline: KernelFn | None = None) -> list[dict]:
    rows_out = []
    compiled_fn = torch.compile(lambda x, t: token_stats(x, t, MAX_TOPK, backend="torch")) if compiled else None
    triton_path = device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"  # interpreted: a dry run on CPU

    def kernels_for(rows: int) -> tuple[KernelFn, KernelFn | None, KernelFn | None, LaunchConfig | None]:
        """(ours, one program per row, ours without top-k, launch config) at this batch size."""
        if not triton_path:
            return lambda x, t: token_stats(x, t, MAX_TOPK), None, None, None
        from dynasor.kernels.entropy_triton import default_config, token_stats_triton

        cfg = config or default_config(rows)
        return (lambda x, t: token_stats_triton(x, t, MAX_TOPK, cfg),
                lambda x, t: token_stats_triton(x, t, MAX_TOPK, replace(cfg, splits=1)),
                lambda x, t: token_stats_triton(x, t, 0, cfg), cfg)

    header = (f"{'rows':>5} {'vocab':>7} {'dtype':>8} | {'max err':>8} | "
              f"{'dynasor ms':>10} {'plain ms':>9} {'speedup':>7}")
    if ceilings is not None:
        header += (f" | {'GB/s':>7} {'% read':>6} {'% sheet':>7} | {'no top-k':>8} | {'1/row ms':>8} | "
                   f"{'host us':>7}")
        header += f" | {'baseline':>8} {'vs base':>7}" if baseline is not None else ""
    header += f" | {'compiled ms':>11}" if compiled else ""
    print(header)
    print("-" * len(header))
    for dtype in dtypes:
        for rows, vocab in shapes:
            x = realistic_logits(rows, vocab, dtype, device)
            temps = torch.tensor(TEMPERATURES, device=device).repeat(rows)[:rows]
            ours, one_per_row, no_topk, cfg = kernels_for(rows)
            err = max_error(ours(x, temps), x, temps)
            measure = device_time if device == "cuda" else (lambda fn: timed(fn, device))
            t_ours = measure(lambda: ours(x, temps))
            t_plain = measure(lambda: plain_torch(x, temps, MAX_TOPK))
            rec = {"rows": rows, "vocab": vocab, "dtype": str(dtype).removeprefix("torch."), "max_abs_error": err,
                   "dynasor_ms": t_ours * 1e3, "plain_torch_ms": t_plain * 1e3, "speedup": t_plain / t_ours}
            if cfg is not None:
                rec["config"] = asdict(cfg)
            line = (f"{rows:>5} {vocab:>7} {rec['dtype']:>8} | {err:>8.1e} | {t_ours*1e3:>10.4f} {t_plain*1e3:>9.4f}"
                    f" {t_plain/t_ours:>6.2f}x")
            if ceilings is not None and one_per_row is not None and no_topk is not None:
                gbs = x.numel() * x.element_size() / t_ours / 1e9
                t_one = measure(lambda: one_per_row(x, temps))
                t_bare = measure(lambda: no_topk(x, temps))
                sheet = ceilings["datasheet_gb_per_s"]
                pct_read = 100 * gbs / ceilings["read_gb_per_s"]
                pct_sheet = 100 * gbs / sheet if sheet else None
                t_host = host_time(lambda: ours(x, temps)) if device == "cuda" else float("nan")
                rec.update(gb_per_s=gbs, pct_of_read_bandwidth=pct_read, pct_of_datasheet=pct_sheet,
                           topk0_ms=t_bare * 1e3, one_program_per_row_ms=t_one * 1e3, host_launch_us=t_host * 1e6)
                sheet_text = f"{pct_sheet:.1f}%" if pct_sheet is not None else "-"
                line += (f" | {gbs:>7.0f} {pct_read:>5.1f}% {sheet_text:>7} | {t_bare*1e3:>8.4f} | "
                         f"{t_one*1e3:>8.4f} | {t_host*1e6:>7.1f}")
                if baseline is not None:
                    t_base = measure(lambda: baseline(x, temps))
                    rec.update(previous_kernel_ms=t_base * 1e3, speedup_vs_previous_kernel=t_base / t_ours)
                    line += f" | {t_base*1e3:>8.4f} {t_base/t_ours:>6.2f}x"
            if compiled_fn is not None:
                t_comp = timed(lambda: compiled_fn(x, temps), device)
                rec["compiled_ms"] = t_comp * 1e3
                line += f" | {t_comp*1e3:>11.3f}"
            print(line, flush=True)
            rows_out.append(rec)
    return rows_out


LIVE_MODES = ("off", "on", "stop")
NEVER_FIRES = 1e-9  # stop_below_confidence of the "stop" mode: the check runs, never ends a request
STOP_WINDOW = 16


def live_tag(program_id: str, mode: str) -> dict[str, Any]:
    tag: dict[str, Any] = {"program_id": program_id, "return_entropy": mode != "off"}
    if mode == "stop":
        tag.update(stop_below_confidence=NEVER_FIRES, confidence_window=STOP_WINDOW)
    return tag


async def live_throughput(url: str, concurrency: int, max_new_tokens: int, rounds: int,
                          temperature: float = 0.8) -> dict:
    from dynasor.client import AsyncDynasorClient
    from dynasor.evaluation.paired_ratio import paired_ratio_interval

    async with AsyncDynasorClient(url) as client:
        async def one_round(mode: str) -> tuple[float, int]:
            params = {"max_new_tokens": max_new_tokens, "temperature": temperature, "ignore_eos": True}
            tag = live_tag(client.new_program(), mode)
            t0 = time.perf_counter()
            outs = await asyncio.gather(*[client.generate(f"Story {i}: once upon a time", params, program=tag)
                                          for i in range(concurrency)])
            elapsed = time.perf_counter() - t0
            tokens = sum(o["meta_info"]["completion_tokens"] for o in outs)
            assert tokens == concurrency * max_new_tokens, "a request ended early"
            if mode == "off":
                assert all("entropy" not in o["meta_info"] for o in outs)
            else:
                assert all(len(o["meta_info"]["entropy"]) == o["meta_info"]["completion_tokens"] for o in outs)
            return elapsed, tokens

        await one_round("on")  # warm-up
        result: dict[str, list[float]] = {mode: [] for mode in LIVE_MODES}
        for r in range(rounds):
            shift = r % len(LIVE_MODES)  # each mode takes each place in the rotation equally often
            for mode in LIVE_MODES[shift:] + LIVE_MODES[:shift]:
                elapsed, tokens = await one_round(mode)
                result[mode].append(tokens / elapsed)
        ratios = {"on_over_off": paired_ratio_interval(result["on"], result["off"]),
                  "stop_over_on": paired_ratio_interval(result["stop"], result["on"])}
        print(f"\nlive decode throughput, {concurrency} concurrent x {max_new_tokens} tokens, {rounds} rounds each:")
        for mode, label in (("off", "return_entropy=false"), ("on", "return_entropy=true"),
                            ("stop", f"+ stop_below_confidence={NEVER_FIRES:g}, window {STOP_WINDOW}")):
            values = [round(v, 1) for v in result[mode]]
            print(f"  {mode:4s} ({label}): {statistics.mean(result[mode]):8.1f} tok/s   rounds {values}")
        for name, entry in ratios.items():
            print(f"  {name}: {entry['ratio']:.3f}x  95% CI [{entry['low']:.3f}, {entry['high']:.3f}]  "
                  f"excludes 1.0: {entry['excludes_1']}")
        return {"concurrency": concurrency, "max_new_tokens": max_new_tokens, "rounds": rounds,
                "temperature": temperature,
                **{f"tok_per_s_{mode}": result[mode] for mode in LIVE_MODES}, "paired_ratios": ratios}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", type=int, nargs="*", default=[1, 16, 64, 256])
    ap.add_argument("--vocab", type=int, nargs="*", default=[32000, 128256, 152064])
    ap.add_argument("--dtypes", nargs="*", default=["bfloat16", "float32"])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the CPU path")
    ap.add_argument("--sweep", action="store_true", help="CUDA: time launch configurations on six shapes first")
    ap.add_argument("--block", type=int, default=None, help="CUDA: scan block (default: the kernel's)")
    ap.add_argument("--num-warps", type=int, default=None)
    ap.add_argument("--programs-per-sm", type=int, default=None)
    ap.add_argument("--unroll", type=int, default=None)
    ap.add_argument("--baseline-kernel", type=Path, default=None,
                    help="CUDA: another entropy_triton.py to time on the same inputs (e.g. the previous commit's)")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-kernels", action="store_true")
    add_server_flags(ap)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the live requests")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_entropy.json")
    args = ap.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}")
    shapes = [(r, v) for v in args.vocab for r in args.rows]
    dtypes = [getattr(torch, d) for d in args.dtypes]
    report: dict = {"device": args.device, "torch": torch.__version__, "machine": platform.platform(),
                    "threads": torch.get_num_threads()}
    if not args.skip_kernels:
        config = None
        if args.device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
            import triton

            report["triton"] = triton.__version__
            report["ceilings"] = ceilings = bandwidth_ceilings(args.device)
            print(f"{ceilings['device_name']}: copy {ceilings['copy_gb_per_s']:.0f} GB/s, "
                  f"read {ceilings['read_gb_per_s']:.0f} GB/s, datasheet {ceilings['datasheet_gb_per_s']} GB/s",
                  flush=True)
            from dynasor.kernels.entropy_triton import DEFAULT_CONFIG, SMALL_BATCH_CONFIG, SMALL_BATCH_ROWS

            overrides = {k: v for k, v in (("block", args.block), ("num_warps", args.num_warps),
                                           ("programs_per_sm", args.programs_per_sm), ("unroll", args.unroll))
                         if v is not None}
            # without overrides the table runs the kernel's own defaults (by batch size)
            config = replace(DEFAULT_CONFIG, **overrides) if overrides else None
            if args.sweep:
                grid = [LaunchConfig(block=b, num_warps=w, programs_per_sm=p, unroll=u)
                        for b, w, p, u in itertools.product((512, 1024, 2048), (4, 8), (4, 8, 16), (2, 4, 8))]
                grid = grid if args.device == "cuda" else grid[:2]
                probe = [(2, 5000, torch.float32)] if args.device != "cuda" else [
                    (1, 128256, torch.bfloat16), (16, 128256, torch.bfloat16), (64, 128256, torch.bfloat16),
                    (256, 152064, torch.bfloat16), (64, 152064, torch.float32), (256, 152064, torch.float32)]
                report["sweep"] = sweep_configs(args.device, probe, grid)
                # best by the geometric mean of time relative to each shape's fastest
                by_cfg: dict[str, list[float]] = {}
                for shape in probe:
                    recs = [r for r in report["sweep"] if (r["rows"], r["vocab"], r["dtype"]) ==
                            (shape[0], shape[1], str(shape[2]).removeprefix("torch."))]
                    fastest = min(r["ms"] for r in recs)
                    for r in recs:
                        by_cfg.setdefault(json.dumps(r["config"], sort_keys=True), []).append(r["ms"] / fastest)
                best = min(by_cfg, key=lambda k: statistics.geometric_mean(by_cfg[k]))
                mean = statistics.geometric_mean(by_cfg[best])
                report["sweep_best_single_config"] = json.loads(best)
                print(f"best single config {best}: geometric mean {mean:.3f}x the per-shape best")
            report["config"] = asdict(config) if config else {
                f"rows < {SMALL_BATCH_ROWS}": asdict(SMALL_BATCH_CONFIG),
                f"rows >= {SMALL_BATCH_ROWS}": asdict(DEFAULT_CONFIG)}
        else:
            ceilings = None
        baseline = load_baseline_kernel(args.baseline_kernel) if args.baseline_kernel else None
        if baseline is not None:
            report["baseline_kernel"] = args.baseline_kernel.name
        report["kernel"] = kernel_table(args.device, shapes, dtypes, args.compile, ceilings, config, baseline)

    if not args.skip_live:
        with dynasor_server(args, "bench_entropy_server") as served:
            live = live_throughput(served.url, args.concurrency, args.max_new_tokens, args.rounds, args.temperature)
            report["live"] = asyncio.run(live)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
