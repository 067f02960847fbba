"""Per-token entropy: kernel time per shape against plain torch, and live decode throughput with and
without the sampler hook.

    python benchmark/kernels/bench_entropy.py                 # kernel table + live table (CPU server)
    python benchmark/kernels/bench_entropy.py --skip-live     # kernel table only
    python benchmark/kernels/bench_entropy.py --url http://127.0.0.1:30000   # live part against a running server

On CPU the "kernel" is the dispatcher's vectorised torch path; on CUDA it is the Triton kernel, and
the table adds achieved GB/s (logits bytes read once) against the device's measured copy bandwidth.
"Plain torch" is the straightforward unfused computation: softmax and log_softmax at T and at 1,
then topk. The live part sends the same decode-heavy batch to one Dynasor server, alternating
rounds with ``return_entropy`` off (the hook does nothing) and on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from dynasor.kernels.entropy import MAX_TOPK, token_stats

RESULTS = Path(__file__).resolve().parents[1] / "results"


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


def timed(fn, device: str, min_time: float = 0.3, min_iters: int = 3) -> float:
    """Median seconds per call."""
    fn()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_time:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def copy_bandwidth_gbs(device: str) -> float:
    x = torch.empty(256 << 20, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    t = timed(lambda: y.copy_(x), device)
    return 2 * x.numel() / t / 1e9


def kernel_table(device: str, shapes: list[tuple[int, int]], dtypes: list[torch.dtype], compiled: bool) -> list[dict]:
    rows_out = []
    peak = copy_bandwidth_gbs(device) if device == "cuda" else None
    compiled_fn = torch.compile(lambda x, t: token_stats(x, t, MAX_TOPK, backend="torch")) if compiled else None
    header = f"{'rows':>5} {'vocab':>7} {'dtype':>8} | {'dynasor ms':>10} {'plain ms':>9} {'speedup':>7}"
    header += f" | {'GB/s':>7} {'% copy bw':>9}" if device == "cuda" else ""
    header += f" | {'compiled ms':>11}" if compiled else ""
    print(header)
    print("-" * len(header))
    for dtype in dtypes:
        for rows, vocab in shapes:
            x = (torch.randn(rows, vocab, device=device) * 4).to(dtype)
            temps = torch.full((rows,), 0.7, device=device)
            t_ours = timed(lambda: token_stats(x, temps, MAX_TOPK), device)
            t_plain = timed(lambda: plain_torch(x, temps, MAX_TOPK), device)
            rec = {"rows": rows, "vocab": vocab, "dtype": str(dtype).removeprefix("torch."),
                   "dynasor_ms": t_ours * 1e3, "plain_torch_ms": t_plain * 1e3, "speedup": t_plain / t_ours}
            line = f"{rows:>5} {vocab:>7} {rec['dtype']:>8} | {t_ours*1e3:>10.3f} {t_plain*1e3:>9.3f} {t_plain/t_ours:>6.2f}x"
            if device == "cuda":
                gbs = x.numel() * x.element_size() / t_ours / 1e9
                rec.update(gb_per_s=gbs, copy_bandwidth_gb_per_s=peak)
                line += f" | {gbs:>7.1f} {100*gbs/peak:>8.1f}%"
            if compiled_fn is not None:
                t_comp = timed(lambda: compiled_fn(x, temps), device)
                rec["compiled_ms"] = t_comp * 1e3
                line += f" | {t_comp*1e3:>11.3f}"
            print(line, flush=True)
            rows_out.append(rec)
    return rows_out


async def live_throughput(url: str, concurrency: int, max_new_tokens: int, rounds: int) -> dict:
    from dynasor.client import AsyncDynasorClient

    async with AsyncDynasorClient(url) as client:
        async def one_round(entropy: bool) -> tuple[float, int]:
            pid = client.new_program()
            tag = {"program_id": pid, "return_entropy": entropy}
            params = {"max_new_tokens": max_new_tokens, "temperature": 0.8, "ignore_eos": True}
            t0 = time.perf_counter()
            outs = await asyncio.gather(*[client.generate(f"Story {i}: once upon a time", params, program=tag)
                                          for i in range(concurrency)])
            elapsed = time.perf_counter() - t0
            tokens = sum(o["meta_info"]["completion_tokens"] for o in outs)
            if entropy:
                assert all(len(o["meta_info"]["entropy"]) == o["meta_info"]["completion_tokens"] for o in outs)
            else:
                assert all("entropy" not in o["meta_info"] for o in outs)
            return elapsed, tokens

        await one_round(True)  # warm-up
        result: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(rounds):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                elapsed, tokens = await one_round(mode == "on")
                result[mode].append(tokens / elapsed)
        off, on = statistics.median(result["off"]), statistics.median(result["on"])
        print(f"\nlive decode throughput, {concurrency} concurrent x {max_new_tokens} tokens, {rounds} rounds each:")
        print(f"  hook off (return_entropy=false): {off:8.1f} tok/s   rounds {[round(v, 1) for v in result['off']]}")
        print(f"  hook on  (return_entropy=true):  {on:8.1f} tok/s   rounds {[round(v, 1) for v in result['on']]}")
        print(f"  ratio on/off: {on / off:.3f}x")
        return {"concurrency": concurrency, "max_new_tokens": max_new_tokens, "rounds": rounds,
                "tok_per_s_off": result["off"], "tok_per_s_on": result["on"], "median_ratio": on / off}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", type=int, nargs="*", default=[1, 16, 64, 256])
    ap.add_argument("--vocab", type=int, nargs="*", default=[49152, 152064, 262144])
    ap.add_argument("--dtypes", nargs="*", default=["bfloat16", "float32"])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the CPU path")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-kernels", action="store_true")
    ap.add_argument("--url", help="live part against this running Dynasor server instead of starting one")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_entropy.json")
    args = ap.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    shapes = [(r, v) for v in args.vocab for r in args.rows]
    report: dict = {"device": args.device, "torch": torch.__version__, "machine": platform.platform(),
                    "threads": torch.get_num_threads()}
    if not args.skip_kernels:
        report["kernel"] = kernel_table(args.device, shapes, [getattr(torch, d) for d in args.dtypes], args.compile)

    if not args.skip_live:
        if args.url:
            report["live"] = asyncio.run(live_throughput(args.url, args.concurrency, args.max_new_tokens, args.rounds))
        else:
            from dynasor.server_process import ServerProcess, free_port

            log = RESULTS / "tmp" / "bench_entropy_server.log"
            with ServerProcess.dynasor(free_port(), log) as server:
                report["live"] = asyncio.run(live_throughput(server.url, args.concurrency, args.max_new_tokens, args.rounds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
