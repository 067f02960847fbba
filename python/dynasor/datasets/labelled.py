"""A problem as the runtime runs it: the full prompt sent to the model and the gold answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dynasor.datasets.arithmetic import make_prompt
from dynasor.datasets.loaders import Problem


@dataclass(frozen=True)
class Labelled:
    id: str
    prompt: str
    gold: str
    level: int | None = None
    source: str | None = None

    @classmethod
    def few_shot(cls, problem: Problem) -> Labelled:
        """The problem behind the 3-shot boxed-answer prompt (``make_prompt``)."""
        return cls(problem.id, make_prompt(problem), problem.answer, problem.level, problem.source)


def read_labelled_jsonl(path: str | Path, template: str = "{question}", limit: int | None = None) -> list[Labelled]:
    """Rows with ``question`` (or ``problem``) and ``answer``; a ``prompt`` field wins over the
    template; a GSM8K-style ``... #### N`` answer becomes N."""
    items = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(line for line in f if line.strip()):
            row = json.loads(line)
            question = row.get("question", row.get("problem"))
            gold = str(row["answer"])
            gold = gold.rsplit("####", 1)[-1].strip().replace(",", "") if "####" in gold else gold.strip()
            items.append(Labelled(str(row.get("id", row.get("unique_id", i))), row.get("prompt") or
                                  template.format(question=question), gold, row.get("level"), row.get("source")))
    return items[:limit] if limit is not None else items
