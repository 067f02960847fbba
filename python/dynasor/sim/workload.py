"""Simulated self-consistency workloads: who arrives when, with which branch lengths and stops.

Two sources, both recorded in the result JSON (``describe``):

- ``ScDistribution``: stated distributions: prompt tokens uniform in a range, branch output
  tokens log-normal (median, sigma) capped at ``max_new_tokens``, and the share of programs whose
  certaindex check at ``detect_at`` says stop;
- ``programs_from_records``: the batch benchmark's live recordings (``batch_*.records.json``):
  each recorded program's branch token counts, and whether ``StaticThreshold(threshold)`` stops it
  at ``detect_at`` on its first answers (the live rule, ``replay``'s input).

Arrivals are a seeded Poisson process; one trace is drawn per seed and time-scaled to each rate
(the online benchmark's ``scaled`` mode), so rates differ only in load.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dynasor.certaindex import answer_certaindex
from dynasor.program_runtime.allocation import StaticThreshold
from dynasor.program_runtime.replay import Profile
from dynasor.sim.programs import ScProgram


@dataclass(frozen=True)
class ProgramShape:
    """A program without its arrival time."""

    prompt_tokens: int
    branch_tokens: tuple[int, ...]
    stops: bool
    level: int = 0


@dataclass(frozen=True)
class ScDistribution:
    name: str
    branches: int
    detect_at: int
    prompt_tokens: tuple[int, int]
    output_median: float
    output_sigma: float
    max_new_tokens: int
    stop_share: float

    def shapes(self, count: int, seed: int) -> list[ProgramShape]:
        rng = random.Random(seed)
        out = []
        for _ in range(count):
            prompt = rng.randint(*self.prompt_tokens)
            lengths = tuple(min(self.max_new_tokens, max(1, round(rng.lognormvariate(math.log(self.output_median),
                                                                                    self.output_sigma))))
                            for _ in range(self.branches))
            out.append(ProgramShape(prompt, lengths, rng.random() < self.stop_share))
        return out

    def describe(self) -> dict[str, Any]:
        return {"source": "stated distributions", **asdict(self)}


# The paper's self-consistency setting (GSM8K, Llama-3.1-8B; docs/paper.md): 16 branches, detection
# at 5. Stated here: 3-shot GSM8K prompts of 150-450 tokens, outputs log-normal with median 180
# tokens (sigma 0.5, cap 512), and 60% of programs stopped at detection (certaindex >= 0.7 at 5).
PAPER_SC = ScDistribution("paper-sc", branches=16, detect_at=5, prompt_tokens=(150, 450), output_median=180.0,
                          output_sigma=0.5, max_new_tokens=512, stop_share=0.6)


def programs_from_records(path: Path, threshold: float, detect_at: int, prompt_tokens: int,
                          max_new_tokens: int) -> tuple[list[ProgramShape], dict[str, Any]]:
    """Recorded SC programs (every seed) as shapes; prompts are not in the recording, so their
    length is stated (``prompt_tokens``)."""
    rows = json.loads(Path(path).read_text())["sc"]
    rule = StaticThreshold(threshold)
    shapes = []
    for row in rows:
        profile = Profile.from_json({k: v for k, v in row.items() if k != "seed"})
        answers = [b.answer for b in profile.branches[:detect_at]]
        stops = detect_at < len(profile.branches) and rule.stops(answer_certaindex(answers))
        shapes.append(ProgramShape(prompt_tokens, tuple(b.tokens for b in profile.branches), stops,
                                   profile.level or 0))
    return shapes, {"source": "recorded", "records": Path(path).name, "programs": len(shapes),
                    "threshold": threshold, "detect_at": detect_at, "prompt_tokens_stated": prompt_tokens,
                    "max_new_tokens": max_new_tokens}


def unit_arrivals(count: int, seed: int) -> list[float]:
    """Arrival times of a unit-rate Poisson process; divide by the rate to get a rate's trace."""
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(count):
        t += rng.expovariate(1.0)
        out.append(t)
    return out


def at_rate(shapes: Sequence[ProgramShape], unit: Sequence[float], rate: float, detect_at: int,
            max_new_tokens: int) -> list[ScProgram]:
    return [ScProgram(f"p{i}", t / rate, s.prompt_tokens, s.branch_tokens, max_new_tokens, detect_at, s.stops,
                      s.level) for i, (s, t) in enumerate(zip(shapes, unit))]
