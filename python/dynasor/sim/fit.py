"""Fit a ``LinearStepCost`` to a live server's step log (``--dynasor-step-log`` JSON lines).

A step's time is what the scheduler loop spent on it: scheduling + forward pass + result
processing (on a CPU the Python scheduler is a visible share). Least squares per kind, on the
form of ``LinearStepCost``: prefill on (1, new tokens, Σ new × (cached + new / 2) / 1000), decode
on (1, batch size, context tokens). The fit reports its own error (median and P90 of
|fitted − measured| / measured per kind), which goes with every result that uses the profile.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dynasor.sim.step_cost import LinearStepCost

STEP_PHASES = ("schedule_s", "run_s", "result_s")


def read_steps(paths: Iterable[Path]) -> list[dict[str, Any]]:
    steps = []
    for path in paths:
        with open(path) as f:
            steps += [row for row in map(json.loads, filter(str.strip, f)) if "context_tokens" in row]
    return steps


def step_seconds(row: dict[str, Any]) -> float:
    return sum(float(row[k]) for k in STEP_PHASES)


def _solve(features: Sequence[Sequence[float]], seconds: Sequence[float]) -> tuple[list[float], dict[str, float]]:
    import numpy as np

    x, y = np.array(features, dtype=float), np.array(seconds, dtype=float)
    # relative least squares (rows scaled by 1 / measured): steps span 0.1 s to 10 s, and an absolute
    # fit would give the few long prefills all the weight
    coef, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
    coef = np.maximum(coef, 0.0)  # a negative cost would be a fitting artefact
    error = np.abs(x @ coef - y) / y
    return [float(c) for c in coef], {"n": len(y), "median_error": float(np.median(error)),
                                      "p90_error": float(np.quantile(error, 0.9))}


def attention_units(step: dict[str, Any]) -> float:
    """Σ over the batch's requests of new × (context before + new / 2) / 1000, the prefill's
    attention work, from the step's totals: the log has no per-request split, so every request is
    taken as the batch's average (exact for the sweep's equal requests)."""
    batch = max(int(step.get("batch_size") or 1), 1)
    new, cached = float(step["new_tokens"]), float(step["cached_tokens"])
    return new * (cached + new / 2) / batch / 1000


def wall_timed(steps: Sequence[dict[str, Any]], max_gap_s: float = 5.0) -> list[dict[str, Any]]:
    """Steps timed by the wall clock between log lines, for a server with the overlap scheduler
    (a step's own phases then hold parts of its neighbours'). The loop's period is the forward
    pass of the step launched one line earlier: line i's interval times step i - 1. Intervals
    over ``max_gap_s`` (idle) are dropped."""
    out = []
    for before, row, after in zip(steps, steps[1:], steps[2:]):
        interval = after["t"] - row["t"]
        if 0 < interval <= max_gap_s and row["t"] - before["t"] <= max_gap_s:
            out.append({**row, "seconds": interval})
    return out


def fit_linear(steps: Sequence[dict[str, Any]], name: str, source: str) -> tuple[LinearStepCost, dict[str, Any]]:
    """Steps carry ``seconds`` (``wall_timed``) or their phases (``step_seconds``)."""
    prefill = [s for s in steps if s["mode"] == "prefill"]
    decode = [s for s in steps if s["mode"] == "decode"]
    if len(prefill) < 3 or len(decode) < 3:
        raise ValueError(f"need at least 3 prefill and 3 decode steps, got {len(prefill)} and {len(decode)}")

    def seconds(s: dict[str, Any]) -> float:
        return float(s["seconds"]) if "seconds" in s else step_seconds(s)

    p, p_err = _solve([[1.0, s["new_tokens"], attention_units(s), s["cached_tokens"]] for s in prefill],
                      [seconds(s) for s in prefill])
    d, d_err = _solve([[1.0, s["batch_size"], s["context_tokens"]] for s in decode], [seconds(s) for s in decode])
    cost = LinearStepCost(name, p[0], p[1], p[2], d[0], d[1], d[2], source, prefill_per_cached_token_s=p[3])
    ranges = {"decode_batch": [min(s["batch_size"] for s in decode), max(s["batch_size"] for s in decode)],
              "decode_context_tokens": [min(s["context_tokens"] for s in decode),
                                        max(s["context_tokens"] for s in decode)],
              "prefill_new_tokens": [min(s["new_tokens"] for s in prefill), max(s["new_tokens"] for s in prefill)]}
    return cost, {"prefill": p_err, "decode": d_err, "ranges": ranges}


def load_linear(path: Path) -> LinearStepCost:
    """A profile JSON written by ``dynasor simulate fit`` (its ``profile`` object)."""
    data = json.loads(Path(path).read_text())
    fields = {k: v for k, v in data["profile"].items() if k != "form"}
    return LinearStepCost(**fields)
