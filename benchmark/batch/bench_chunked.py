"""Greedy decoding in chunks against one shot: how often, and where, the token sequences part.

    python -m benchmark.batch.bench_chunked              # starts a Dynasor server (default model)
    python -m benchmark.batch.bench_chunked --url http://127.0.0.1:30000

Dynasor-CoT generates its reasoning in chunks. Each chunk continues from token ids (the prompt's ids
+ every id generated so far), so the model sees exactly the tokens it made; before, it re-sent the
text, which the server re-tokenized. Even with ids, chunked and one-shot greedy output can differ:
the chunk boundary turns decode steps into a prefill of the same tokens, and prefill and decode
kernels round differently (bf16 on CPU), so a near-tie between two tokens can flip. This script
measures it: per problem, one greedy request of ``--tokens`` tokens, the same in chunks of
``--chunk`` continued from ids, and in chunks continued from text. Requests go one at a time, so
batch composition does not vary. Writes ``benchmark/results/chunked_decoding.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

from benchmark.common import RESULTS, add_server_flags, dynasor_server, machine_info
from dynasor.datasets.loaders import load_gsm8k

MODES = ("ids", "text")


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (None if one is a prefix of the other)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)


async def one_shot(client: Any, prompt: str, tokens: int) -> list[int]:
    out = await client.generate(prompt, {"temperature": 0.0, "max_new_tokens": tokens, "ignore_eos": True})
    return list(out["output_ids"])


async def chunked(client: Any, prompt: str, tokens: int, chunk: int, mode: str) -> list[int]:
    """``tokens`` greedy tokens in chunks, each continuing from ids (prompt ids + generated) or text."""
    prompt_ids = await client.tokenize(prompt)
    generated: list[int] = []
    text = ""
    while len(generated) < tokens:
        params = {"temperature": 0.0, "max_new_tokens": min(chunk, tokens - len(generated)), "ignore_eos": True}
        out = await client.generate(prompt_ids + generated if mode == "ids" else prompt + text, params)
        generated += out["output_ids"]
        text += out["text"]
    return generated


async def measure(url: str, n: int, tokens: int, chunk: int) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from dynasor.client import AsyncDynasorClient

    rows = []
    async with AsyncDynasorClient(url) as client:
        for problem in tqdm(load_gsm8k()[:n], desc="problems", unit="problem"):
            prompt = f"Question: {problem.question}\nLet's think step by step.\nAnswer:"
            reference = await one_shot(client, prompt, tokens)
            row: dict[str, Any] = {"problem_id": problem.id}
            for mode in MODES:
                ids = await chunked(client, prompt, tokens, chunk, mode)
                row[mode] = {"identical": ids == reference, "first_divergence": first_divergence(ids, reference)}
            rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]], tokens: int, chunk: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        found = [r[mode]["first_divergence"] for r in rows if r[mode]["first_divergence"] is not None]
        out[mode] = {"identical": sum(r[mode]["identical"] for r in rows), "problems": len(rows),
                     "median_first_divergence": statistics.median(found) if found else None,
                     "diverged_at_first_chunk_boundary": sum(d == chunk for d in found)}
        share = out[mode]["identical"] / len(rows)
        print(f"  {mode:4s}: {out[mode]['identical']}/{len(rows)} identical to one shot ({share:.0%}); "
              f"median first divergence {out[mode]['median_first_divergence']} (of {tokens} tokens, "
              f"chunks of {chunk})")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_flags(ap)
    ap.add_argument("--n", type=int, default=20, help="GSM8K problems (the first n)")
    ap.add_argument("--tokens", type=int, default=128, help="greedy tokens per problem")
    ap.add_argument("--chunk", type=int, default=32, help="tokens per chunk")
    ap.add_argument("--out", type=Path, default=RESULTS / "chunked_decoding.json")
    args = ap.parse_args(argv)
    with dynasor_server(args, "bench_chunked_server") as served:
        rows = asyncio.run(measure(served.url, args.n, args.tokens, args.chunk))
    print(f"greedy, {args.tokens} tokens, chunks of {args.chunk}, {len(rows)} GSM8K problems, one at a time:")
    summary = summarize(rows, args.tokens, args.chunk)
    report = {"benchmark": "chunked_decoding", "machine_info": machine_info(), "server": served.info,
              "settings": {"n": args.n, "tokens": args.tokens, "chunk": args.chunk, "temperature": 0.0,
                           "dataset": "gsm8k"}, "summary": summary, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
