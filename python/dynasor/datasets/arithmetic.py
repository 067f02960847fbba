"""Seeded arithmetic word problems with difficulty levels, and the 3-shot prompt for small models.

The embedded CPU model (SmolLM2-135M) cannot do GSM8K, but gets a fair share of simple arithmetic
right with a 3-shot "Q:/A: ... The answer is \\boxed{N}." prompt (~13% per sample: docs/benchmarks.md), so
the CPU benchmarks need problems whose difficulty can be dialled. Levels:

- 0: one step, add or subtract two single-digit numbers (result ≥ 0). The only level where the
  135M model agrees with itself often enough for certaindex to act: at temperature 0.3 about half
  its samples are right and two in three problems get four identical answers (level 1: 14% right,
  one in four agree).
- 1: one step, add or subtract two numbers of one or two digits (result ≥ 0).
- 2: two steps, add/subtract three numbers of one or two digits (every intermediate ≥ 0).
- 3: two steps, one multiplication (2-9 times 2-12) then add or subtract a number below 50.
- 4: four operations, two multiplications, a sum and a subtraction (a*b + c*d - e, result ≥ 0).

Each problem carries its worked solution ("12 + 5 = 17. 17 - 4 = 13."); the shots of the prompt
are the same templates at the problem's level, so the model sees the answer format it must copy.

    python -m dynasor.datasets.arithmetic --n 40 --levels 1:0.5,2:0.5 --out set.jsonl
    python -m dynasor.datasets.arithmetic --dataset gsm8k --limit 50 --out gsm8k50.jsonl

write JSONL with a ``prompt`` field, ready for ``dynasor calibrate --problems``.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynasor.datasets.loaders import Problem, load_dataset, write_problems_jsonl

LEVELS: dict[int, str] = {
    0: "one step: add or subtract two single-digit numbers",
    1: "one step: add or subtract two 1-2 digit numbers",
    2: "two steps: add/subtract three 1-2 digit numbers",
    3: "two steps: one multiplication (2-9 x 2-12), then add or subtract a number below 50",
    4: "four operations: a*b + c*d - e (factors 2-9 and 2-12, e below 50)",
}
GENERATOR_VERSION = 2  # 2: level 0 added; levels 1-4 draw exactly as in version 1

_NAMES = [("Anna", "She"), ("Ben", "He"), ("Cara", "She"), ("Dan", "He"), ("Ella", "She"), ("Finn", "He"),
          ("Gina", "She"), ("Hugo", "He"), ("Ivy", "She"), ("Jack", "He"), ("Lena", "She"), ("Omar", "He")]
_ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "cookies", "cards", "shells", "stamps", "coins"]


@dataclass(frozen=True)
class _Worked:
    question: str
    steps: tuple[str, ...]
    answer: int

    @property
    def solution(self) -> str:
        return " ".join(self.steps) + f" The answer is \\boxed{{{self.answer}}}."


def _step(x: int, op: str, y: int) -> tuple[int, str]:
    value = {"+": x + y, "-": x - y, "*": x * y}[op]
    return value, f"{x} {op} {y} = {value}."


def _one_step(name: str, pron: str, item: str, a: int, op: str, b: int) -> _Worked:
    ans, s = _step(a, op, b)
    action = f"{pron} gets {b} more {item}." if op == "+" else f"{pron} gives {b} {item} to a friend."
    return _Worked(f"{name} has {a} {item}. {action} How many {item} does {name} have now?", (s,), ans)


def _two_step(name: str, pron: str, item: str, a: int, op1: str, b: int, op2: str, c: int) -> _Worked:
    x, s1 = _step(a, op1, b)
    ans, s2 = _step(x, op2, c)
    first = f"{pron} gets {b} more" if op1 == "+" else f"{pron} gives away {b}"
    second = f"then finds {c} more" if op2 == "+" else f"then gives away {c}"
    return _Worked(f"{name} has {a} {item}. {first} and {second}. How many {item} does {name} have now?",
                   (s1, s2), ans)


def _mult_step(name: str, pron: str, item: str, a: int, b: int, op: str, c: int) -> _Worked:
    x, s1 = _step(a, "*", b)
    ans, s2 = _step(x, op, c)
    then = f"{pron} also gets {c} more {item}." if op == "+" else f"{pron} gives {c} {item} to a friend."
    return _Worked(f"{name} buys {a} bags with {b} {item} in each bag. {then} How many {item} does {name} have now?",
                   (s1, s2), ans)


def _two_mult(name: str, pron: str, item: str, a: int, b: int, c: int, d: int, e: int) -> _Worked:
    x, s1 = _step(a, "*", b)
    y, s2 = _step(c, "*", d)
    z, s3 = _step(x, "+", y)
    ans, s4 = _step(z, "-", e)
    return _Worked(f"{name} buys {a} bags with {b} {item} each and {c} boxes with {d} {item} each. "
                   f"{pron} gives {e} {item} away. How many {item} does {name} have now?", (s1, s2, s3, s4), ans)


def _draw(level: int, rng: random.Random) -> _Worked:
    name, pron = rng.choice(_NAMES)
    item = rng.choice(_ITEMS)
    if level in (0, 1):
        top = 9 if level == 0 else 99
        a, b, op = rng.randint(1, top), rng.randint(1, top), rng.choice("+-")
        if op == "-":
            a, b = max(a, b), min(a, b)
        return _one_step(name, pron, item, a, op, b)
    if level == 2:
        a, b, c = (rng.randint(1, 99) for _ in range(3))
        op1, op2 = rng.choice("+-"), rng.choice("+-")
        if op1 == "-":
            a, b = max(a, b), min(a, b)
            op1 = "+" if a == b else op1  # keep the intermediate ≥ 1
        x = a + b if op1 == "+" else a - b
        if op2 == "-" and c > x:
            c = rng.randint(1, x)
        return _two_step(name, pron, item, a, op1, b, op2, c)
    if level == 3:
        a, b, op = rng.randint(2, 9), rng.randint(2, 12), rng.choice("+-")
        c = rng.randint(1, min(49, a * b) if op == "-" else 49)
        return _mult_step(name, pron, item, a, b, op, c)
    if level == 4:
        a, b, c, d = rng.randint(2, 9), rng.randint(2, 12), rng.randint(2, 9), rng.randint(2, 12)
        return _two_mult(name, pron, item, a, b, c, d, rng.randint(1, min(49, a * b + c * d)))
    raise ValueError(f"unknown level {level}; known: {sorted(LEVELS)}")


# Fixed worked examples per level (the same templates, hand-picked numbers mixing + and -). Level 0 uses the
# level-1 shots: with single-digit shots the model copied their numbers more often (36% vs 46% right).
_SHOTS: dict[int, tuple[_Worked, ...]] = {
    1: (_one_step("Anna", "She", "apples", 12, "+", 5), _one_step("Ben", "He", "marbles", 9, "-", 4),
        _one_step("Cara", "She", "stickers", 23, "+", 8)),
    2: (_two_step("Dan", "He", "cards", 15, "+", 7, "-", 4), _two_step("Ella", "She", "shells", 30, "-", 12, "+", 5),
        _two_step("Finn", "He", "coins", 8, "+", 9, "+", 6)),
    3: (_mult_step("Gina", "She", "cookies", 3, 4, "+", 5), _mult_step("Hugo", "He", "pencils", 6, 5, "-", 7),
        _mult_step("Ivy", "She", "stamps", 2, 9, "+", 11)),
    4: (_two_mult("Jack", "He", "books", 2, 5, 3, 4, 6), _two_mult("Lena", "She", "cards", 4, 3, 2, 6, 10),
        _two_mult("Omar", "He", "marbles", 5, 2, 3, 3, 9)),
}
_SHOTS[0] = _SHOTS[1]


def make_prompt(problem: Problem) -> str:
    """The 3-shot prompt ending in "A:": shots of the problem's level for generated problems, the
    two-step shots for anything else (e.g. GSM8K), so the answer format is always the boxed one."""
    level = problem.level if problem.source == "arithmetic" and problem.level in _SHOTS else 2
    shots = "".join(f"Q: {w.question}\nA: {w.solution}\n\n" for w in _SHOTS[level])
    return f"{shots}Q: {problem.question}\nA:"


def parse_levels(spec: str) -> dict[int, float]:
    """``"1:0.5,2:0.5"`` -> {1: 0.5, 2: 0.5}; a bare ``"1"`` means level 1 only."""
    mix: dict[int, float] = {}
    for part in spec.split(","):
        level, _, weight = part.strip().partition(":")
        mix[int(level)] = float(weight) if weight else 1.0
    return mix


def _level_counts(n: int, mix: Mapping[int, float]) -> dict[int, int]:
    """Exact counts by largest remainder, so a 50/50 mix of 20 problems is 10 and 10, not a coin toss."""
    unknown = set(mix) - set(LEVELS)
    if unknown or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"level mix needs non-negative weights over levels {sorted(LEVELS)}, got {dict(mix)}")
    total = sum(mix.values())
    quotas = {level: n * w / total for level, w in sorted(mix.items())}
    counts = {level: int(q) for level, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda level: (-(quotas[level] - counts[level]), level))
    for level in by_remainder[: n - sum(counts.values())]:
        counts[level] += 1
    return counts


@dataclass(frozen=True)
class GeneratedSet:
    problems: list[Problem]
    metadata: dict[str, Any] = field(default_factory=dict)


def generate(n: int, seed: int = 0, levels: Mapping[int, float] | None = None) -> GeneratedSet:
    """``n`` problems with the given level mix (default all level 1), fully determined by ``seed``."""
    mix = dict(levels or {1: 1.0})
    counts = _level_counts(n, mix)
    rng = random.Random(seed)
    order = [level for level, count in counts.items() for _ in range(count)]
    rng.shuffle(order)
    problems = []
    for i, level in enumerate(order):
        worked = _draw(level, rng)
        problems.append(Problem(f"arith-s{seed}-{i}", worked.question, str(worked.answer), "arithmetic", level,
                                worked.solution))
    total = sum(mix.values())
    metadata = {"generator": "arithmetic", "version": GENERATOR_VERSION, "seed": seed, "n": n,
                "levels": {str(k): v / total for k, v in sorted(mix.items())},
                "level_counts": {str(k): v for k, v in counts.items()},
                "level_descriptions": {str(k): LEVELS[k] for k in sorted(mix)}}
    return GeneratedSet(problems, metadata)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSONL to write (with a 'prompt' field per problem)")
    ap.add_argument("--n", type=int, default=40, help="generated problems")
    ap.add_argument("--levels", default="1", help="level mix, e.g. 1:0.5,2:0.5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", help="write a shared dataset (gsm8k, math500, aime24, amc23) instead")
    ap.add_argument("--data-dir", help="dataset folder (default: $DYNASOR_DATA or <repo>/../shared/data)")
    ap.add_argument("--limit", type=int, help="first N problems of --dataset")
    args = ap.parse_args(argv)
    if args.dataset:
        problems = load_dataset(args.dataset, args.data_dir, args.limit)
    else:
        problems = generate(args.n, args.seed, parse_levels(args.levels)).problems
    write_problems_jsonl(problems, args.out, make_prompt)
    print(f"wrote {len(problems)} problems to {args.out}")


if __name__ == "__main__":
    main()
