"""Loaders for the shared math benchmarks (GSM8K, MATH500, AIME24, AMC23) as one ``Problem`` type.

The data lives outside the repository, in ``../shared/data`` relative to the repo root (CI has the
same layout). ``data_dir`` overrides it, then the ``DYNASOR_DATA`` environment variable, so users can
point at their own copies; no absolute machine path is ever assumed. Answers are normalised to the
plain final answer (GSM8K's ``#### 1,600`` becomes ``1600``, AMC's ``27.0`` becomes ``27``, AIME's
``025`` becomes ``25``) so they can be compared with ``dynasor.certaindex.answers_equivalent``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DATA_ENV = "DYNASOR_DATA"
REPO_ROOT = Path(__file__).resolve().parents[3]  # a source checkout: python/dynasor/datasets/loaders.py


@dataclass(frozen=True)
class Problem:
    """One labelled problem. ``level`` is the dataset's difficulty (MATH 1-5, generated arithmetic
    0-4) or None; ``solution`` is the reference worked solution when the source has one."""

    id: str
    question: str
    answer: str
    source: str
    level: int | None = None
    solution: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_data_dir() -> Path:
    """``$DYNASOR_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def _resolve(data_dir: str | Path | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _integer_text(value: Any) -> str:
    """``27.0`` -> ``27``, ``"025"`` -> ``25``; anything non-integral stays as its text."""
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return str(value).strip()
    return str(int(number)) if number.is_integer() else repr(number)


def gsm8k_final_answer(solution: str) -> str:
    """GSM8K solutions end in ``#### N``; N may carry thousands separators."""
    return _integer_text(solution.rsplit("####", 1)[-1].strip())


def load_gsm8k(data_dir: str | Path | None = None) -> list[Problem]:
    rows = read_jsonl(_resolve(data_dir) / "gsm8k" / "test.jsonl")
    return [Problem(f"gsm8k-{i}", r["question"], gsm8k_final_answer(r["answer"]), "gsm8k", None, r["answer"])
            for i, r in enumerate(rows)]


def load_math500(data_dir: str | Path | None = None) -> list[Problem]:
    rows = read_jsonl(_resolve(data_dir) / "math500" / "test.jsonl")
    return [Problem(r["unique_id"], r["problem"], str(r["answer"]).strip(), "math500", int(r["level"]), r["solution"])
            for r in rows]


def load_aime24(data_dir: str | Path | None = None) -> list[Problem]:
    rows = read_jsonl(_resolve(data_dir) / "aime24" / "test.jsonl")
    return [Problem(f"aime24-{r['id']}", r["problem"], _integer_text(r["answer"]), "aime24", None, r.get("solution"))
            for r in rows]


def load_amc23(data_dir: str | Path | None = None) -> list[Problem]:
    rows = read_jsonl(_resolve(data_dir) / "amc23" / "test.jsonl")
    return [Problem(f"amc23-{r['id']}", r["problem"], _integer_text(r["answer"]), "amc23") for r in rows]


LOADERS: dict[str, Callable[[str | Path | None], list[Problem]]] = {
    "gsm8k": load_gsm8k, "math500": load_math500, "aime24": load_aime24, "amc23": load_amc23,
}


def load_dataset(name: str, data_dir: str | Path | None = None, limit: int | None = None) -> list[Problem]:
    """Problems of one dataset in file order (the first ``limit`` if given)."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    problems = LOADERS[name](data_dir)
    return problems if limit is None else problems[:limit]


def write_problems_jsonl(problems: Iterable[Problem], path: str | Path,
                         prompt: Callable[[Problem], str] | None = None) -> None:
    """One JSON object per problem (the fields ``dynasor calibrate --problems`` reads), with the
    full model prompt under ``prompt`` when ``prompt`` is given."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for problem in problems:
            row = problem.to_json()
            if prompt is not None:
                row["prompt"] = prompt(problem)
            f.write(json.dumps(row) + "\n")
