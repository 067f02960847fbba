"""Decode throughput of plain, untagged traffic, measured by SGLang's own ``bench_serving``.

Random token-id prompts (no dataset download), a fixed length in and out (``ignore_eos``), all sent
at once with at most ``MAX_CONCURRENCY`` in flight: what a user who never tags a request gets
from the server. Run inside each alternating turn, so stock SGLang and Dynasor are compared on the
same machine state.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

INPUT_LEN, OUTPUT_LEN, MAX_CONCURRENCY = 64, 32, 16
KEYS = ("output_throughput", "input_throughput", "request_throughput", "mean_ttft_ms", "mean_itl_ms",
        "completed", "duration")


def untagged_throughput(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``python -m sglang.benchmark.serving`` against ``url`` with ``args.bench_serving`` prompts;
    its summary figures (``output_throughput``: generated tokens per second)."""
    from dynasor.model import default_model_path

    tokenizer = args.model_path or str(default_model_path())
    with tempfile.TemporaryDirectory(prefix="dynasor-bench-serving-") as tmp:
        out = Path(tmp) / "result.jsonl"
        argv = [sys.executable, "-m", "sglang.benchmark.serving", "--backend", "sglang", "--base-url", url,
                "--dataset-name", "random-ids", "--random-input-len", str(INPUT_LEN),
                "--random-output-len", str(OUTPUT_LEN), "--random-range-ratio", "1",
                "--num-prompts", str(args.bench_serving), "--request-rate", "inf",
                "--max-concurrency", str(MAX_CONCURRENCY), "--tokenizer", tokenizer, "--seed", str(args.seed),
                "--output-file", str(out), "--disable-tqdm"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"bench_serving failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
        result = json.loads(out.read_text().splitlines()[-1])
    return {"prompts": args.bench_serving, "input_len": INPUT_LEN, "output_len": OUTPUT_LEN,
            "max_concurrency": MAX_CONCURRENCY, **{k: result.get(k) for k in KEYS}}
