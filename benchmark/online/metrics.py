"""Per-program records and the online metrics computed from them (pure, no server).

Latency is measured from a program's *scheduled* Poisson arrival to its result, so client lag
counts against the system. A window is cut some time after its last arrival (see ``loadgen``);
a program unfinished at the cut is *censored*: its latency is known only to exceed
``censored_at``. Against a deadline it has then missed (``censored_at >= deadline``) or is
undetermined; attainment counts undetermined programs as missed and reports how many there were,
so a value with undetermined programs is a lower bound (the upper bound is reported too). The
load generator keeps every window open until each program has finished or passed its deadline at
the primary SLO scale, so attainment at that scale is always exact.

Definitions (paper §4.2, App. F.2/G.3):

- deadline attainment: fraction of a window's programs whose latency ≤ their deadline; the
  target is 90% (the paper's "P90 deadline attainment");
- maximum sustained rate: the rate at which attainment falls to the target, linearly
  interpolated between the two swept rates around the first drop below it (see
  ``max_sustained_rate``); outside the swept range it is a bound, never an extrapolation;
- tightest SLO scale at a rate: the smallest scale with attainment ≥ target, i.e. the target
  quantile of latency / unit deadline (exact from the records, no extra runs);
- finish-time fairness φ = latency / output tokens of a program (Themis-style, App. D.3.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

INF = math.inf


@dataclass(frozen=True)
class ProgramRecord:
    index: int
    problem_id: str
    level: int
    arrival: float
    latency: float | None
    censored_at: float | None = None
    tokens: int | None = None
    correct: bool | None = None
    stopped_early: bool = False
    answer: str | None = None
    certaindex_at_detection: float | None = None
    error: str | None = None
    # each request of the program in launch order: [prompt tokens, completion tokens, aborted (0/1),
    # cached prompt tokens] (runs before the cached column have three)
    requests: list[list[int]] | None = None
    # the same requests' times in seconds from the window's start: [sent, received, admitted (first
    # scheduled), first token, finished]; None where the server did not say (see loadgen.request_times)
    request_times: list[list[float | None]] | None = None
    request_ids: list[str | None] | None = None  # the same requests' rids (as the server's step log names them)
    round: int | None = None  # alternating runs: the round this record belongs to

    @property
    def finished(self) -> bool:
        return self.latency is not None and self.error is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ProgramRecord:
        return cls(**row)


def met(record: ProgramRecord, deadline: float) -> bool | None:
    """Did the program meet ``deadline``? None when it was cut before the deadline passed."""
    if record.error is not None:
        return False
    if record.latency is not None:
        return record.latency <= deadline
    if record.censored_at is not None and record.censored_at >= deadline:
        return False
    return None


@dataclass(frozen=True)
class Attainment:
    n: int
    met: int
    undetermined: int

    @property
    def value(self) -> float | None:
        """Met / n: undetermined programs count as missed (a lower bound if there are any)."""
        return self.met / self.n if self.n else None

    @property
    def upper(self) -> float | None:
        return (self.met + self.undetermined) / self.n if self.n else None

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "met": self.met, "undetermined": self.undetermined, "attainment": self.value,
                "attainment_upper": self.upper}


def attainment(records: Sequence[ProgramRecord], deadlines: Sequence[float]) -> Attainment:
    if len(records) != len(deadlines):
        raise ValueError("one deadline per record")
    outcomes = [met(r, d) for r, d in zip(records, deadlines)]
    return Attainment(len(outcomes), sum(o is True for o in outcomes), sum(o is None for o in outcomes))


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank q-quantile: the smallest value with at least ceil(q·n) values ≤ it."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[k - 1]


def tightest_slo_scale(records: Sequence[ProgramRecord], units: Sequence[float], target: float = 0.9) -> float | None:
    """Smallest SLO scale at which attainment ≥ target, given each program's deadline at scale 1.

    That is the target nearest-rank quantile of latency / unit; unfinished programs rank last
    (their latency is unknown), so None when the quantile falls on one of them."""
    if len(records) != len(units):
        raise ValueError("one unit deadline per record")
    normalized = [r.latency / u if r.latency is not None and r.finished else INF for r, u in zip(records, units)]
    scale = nearest_rank(normalized, target)
    return None if scale is None or scale == INF else scale


def fairness_values(records: Sequence[ProgramRecord]) -> list[float]:
    """Sorted φ = latency / output tokens of the finished programs that generated tokens."""
    return sorted(r.latency / r.tokens for r in records if r.latency is not None and r.finished and r.tokens)


def cdf_points(values: Sequence[float], n_total: int) -> list[tuple[float, float]]:
    """(x, fraction of all ``n_total`` programs with φ ≤ x): programs without a φ (unfinished)
    keep the curve below 1, so a system that leaves programs behind cannot look fairer."""
    ordered = sorted(values)
    if n_total < len(ordered):
        raise ValueError("n_total must count every program")
    return [(x, (i + 1) / n_total) for i, x in enumerate(ordered)]


def window_stats(records: Sequence[ProgramRecord], duration: float) -> dict[str, Any]:
    """Latency, token and accuracy totals of one window (finished programs only where noted)."""
    finished = [r for r in records if r.finished]
    latencies = [r.latency for r in finished if r.latency is not None]
    tokens = [r.tokens for r in finished if r.tokens is not None]
    judged = [r.correct for r in finished if r.correct is not None]
    return {"n": len(records), "finished": len(finished), "errors": sum(r.error is not None for r in records),
            "offered_rate": len(records) / duration if duration else None,
            "mean_latency": sum(latencies) / len(latencies) if latencies else None,
            "p50_latency": nearest_rank(latencies, 0.5), "p90_latency": nearest_rank(latencies, 0.9),
            "tokens": sum(tokens), "tokens_per_program": sum(tokens) / len(tokens) if tokens else None,
            "accuracy": sum(judged) / len(judged) if judged else None,
            "stopped_early": sum(r.stopped_early for r in finished), **prompt_cache_stats(records)}


def prompt_cache_stats(records: Sequence[ProgramRecord]) -> dict[str, Any]:
    """Prompt tokens of every request sent, how many the engine found in its prefix cache, and the
    rest it prefilled (None for runs recorded before the cached column)."""
    rows = [row for r in records for row in (r.requests or [])]
    if not rows or any(len(row) < 4 for row in rows):
        return {"prompt_tokens": None, "cached_tokens": None, "prefill_tokens": None, "cache_hit_rate": None}
    prompt, cached = sum(row[0] for row in rows), sum(row[3] for row in rows)
    return {"prompt_tokens": prompt, "cached_tokens": cached, "prefill_tokens": prompt - cached,
            "cache_hit_rate": cached / prompt if prompt else None}
