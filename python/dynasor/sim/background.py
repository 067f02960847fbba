"""Untagged background traffic from a production trace (``../shared/data/traces/azure_conv.csv``).

Each row is one request as it arrived at a real service: its time from the trace start, its
prompt and output tokens. The simulator replays the rows as plain requests (no program, no shared
prefix) beside the programs, at the trace's own times: the background load stays the trace's while
the program rate is swept. The trace does not say what ``max_new_tokens`` clients sent; it is
stated as ``BACKGROUND_MAX_NEW_TOKENS``, the largest output in the conversation trace (1,000), so
no recorded request is cut.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dynasor.sim.request import SimRequest

BACKGROUND_MAX_NEW_TOKENS = 1000
BACKGROUND = "\x00background"  # the ``source`` of a background request (program ids are printable)


@dataclass(frozen=True)
class TraceRequest:
    arrival: float
    prompt_tokens: int
    output_tokens: int


def load_trace(path: Path) -> list[TraceRequest]:
    """Rows of a Splitwise/Vidur processed trace (``arrived_at``, ``num_prefill_tokens``,
    ``num_decode_tokens``), in arrival order."""
    with Path(path).open(newline="") as f:
        rows = [TraceRequest(float(r["arrived_at"]), int(r["num_prefill_tokens"]), int(r["num_decode_tokens"]))
                for r in csv.DictReader(f)]
    if not rows:
        raise ValueError(f"{path}: no requests")
    return sorted(rows, key=lambda r: r.arrival)


def rescaled(trace: Sequence[TraceRequest], rate: float) -> list[TraceRequest]:
    """The trace time-scaled to a mean of ``rate`` requests per second (its gaps keep their shape)."""
    if rate <= 0:
        raise ValueError(f"background rate must be > 0, got {rate}")
    native = len(trace) / max(trace[-1].arrival, 1e-9)
    return [TraceRequest(r.arrival * native / rate, r.prompt_tokens, r.output_tokens) for r in trace]


def until(trace: Sequence[TraceRequest], end_s: float) -> list[TraceRequest]:
    """The trace's requests that arrive before ``end_s``; a shorter trace repeats, its copies one mean
    inter-arrival gap apart."""
    last = trace[-1].arrival
    span = last + (last / (len(trace) - 1) if len(trace) > 1 and last > 0 else 1.0)
    out: list[TraceRequest] = []
    offset = 0.0
    while offset < end_s:
        out.extend(TraceRequest(r.arrival + offset, r.prompt_tokens, r.output_tokens)
                   for r in trace if r.arrival + offset < end_s)
        offset += span
    return out


def background_request(index: int, row: TraceRequest) -> SimRequest:
    output = min(row.output_tokens, BACKGROUND_MAX_NEW_TOKENS)
    return SimRequest(f"bg{index}", None, None, 0, max(1, row.prompt_tokens), max(1, output),
                      BACKGROUND_MAX_NEW_TOKENS, source=BACKGROUND)
