"""Long chain-of-thought self-consistency workloads: where the KV pool, not the request cap, binds.

Stated distributions, every number recorded in the result JSON (``describe``). A program is one
query answered by ``branches`` samples of a long-reasoning model (the R1 distills). Its difficulty
class sets how long its branches write and how likely certaindex stops it at ``detect_at``:

- output tokens per branch log-normal around the class median, capped at ``max_new_tokens`` (harder
  classes are longer, so more of their branches are cut at the cap). Medians from the ranges the
  paper reports for R1 distills (its Fig. 6 axes): MATH500 1.5-3.5k tokens, AMC23 3.5-6k, AIME 6-10k;
- the stop probability per class: easy queries agree early, never-solved ones almost never; the
  class stop probabilities are scaled so that about 10%, 30% or 60% of programs stop (the ``stop``
  regimes; 10% is the paper's SC-MATH case, where early stop saves little).

Neither the client nor the server knows a branch's length before it ends: a client's priority and
Dynasor's remaining-work hint come from the budget (branches x ``max_new_tokens``) alone.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from dynasor.sim.workload import ProgramShape


@dataclass(frozen=True)
class DifficultyClass:
    name: str
    share: float  # of programs
    output_median: float  # tokens per branch
    output_sigma: float  # of log(tokens)
    stop_probability: float  # certaindex at detect_at says stop


@dataclass(frozen=True)
class ReasoningScDistribution:
    name: str
    branches: int
    detect_at: int
    prompt_tokens: tuple[int, int]
    max_new_tokens: int
    classes: tuple[DifficultyClass, ...]

    def shapes(self, count: int, seed: int) -> list[ProgramShape]:
        rng = random.Random(seed)
        weights = [c.share for c in self.classes]
        out = []
        for _ in range(count):
            level = rng.choices(range(len(self.classes)), weights)[0]
            cls = self.classes[level]
            prompt = rng.randint(*self.prompt_tokens)
            lengths = tuple(min(self.max_new_tokens, max(1, round(rng.lognormvariate(math.log(cls.output_median),
                                                                                    cls.output_sigma))))
                            for _ in range(self.branches))
            out.append(ProgramShape(prompt, lengths, rng.random() < cls.stop_probability, level))
        return out

    def describe(self) -> dict[str, Any]:
        expected_stop = sum(c.share * c.stop_probability for c in self.classes)
        return {"source": "stated distributions (long chain-of-thought, R1-distill lengths)", **asdict(self),
                "expected_stop_share": expected_stop}


# Easy (MATH500-like), hard (AMC23-like), never solved (AIME-like), 40 / 35 / 25% of queries.
SHARES = {"easy": 0.40, "hard": 0.35, "never": 0.25}
LENGTHS = {"easy": (2500.0, 0.5), "hard": (5000.0, 0.5), "never": (9000.0, 0.6)}
# Class stop probabilities giving about 10% / 30% / 60% of programs stopped at detection.
STOP_REGIMES = {10: {"easy": 0.20, "hard": 0.05, "never": 0.0},
                30: {"easy": 0.55, "hard": 0.20, "never": 0.0},
                60: {"easy": 0.95, "hard": 0.60, "never": 0.20}}
DETECT_AT = {8: 4, 16: 5, 64: 16}
MAX_NEW_TOKENS = 16384
PROMPT_TOKENS = (100, 400)


def reasoning_sc(branches: int, stop_percent: int) -> ReasoningScDistribution:
    stops = STOP_REGIMES[stop_percent]
    classes = tuple(DifficultyClass(name, SHARES[name], *LENGTHS[name], stops[name]) for name in SHARES)
    return ReasoningScDistribution(f"reasoning-sc{branches}-stop{stop_percent}", branches, DETECT_AT[branches],
                                   PROMPT_TOKENS, MAX_NEW_TOKENS, classes)


REASONING_WORKLOADS = {w.name: w for w in (reasoning_sc(k, s) for k in DETECT_AT for s in STOP_REGIMES)}
