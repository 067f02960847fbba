"""Answer extraction from model text and answer equivalence.

Extraction, in order: the last ``\\boxed{...}`` (nested braces respected), "The answer is N",
``#### N``, the last number. Equivalence: equal after normalisation (spaces, ``$``, thousands
separators, trailing period, numeric value), else ``math-verify`` on both parsed as LaTeX
(``\\frac12`` ≡ ``0.5``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is[:\s]*\$?([^\n$]+?)\$?\s*(?:\.\s|\.?$|\n)")
_HASHES = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


def _braced(text: str, start: int) -> str | None:
    """Content from ``start`` (just after an opening brace) to its matching close, or None."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}``."""
    pos = text.rfind("\\boxed{")
    while pos != -1:
        content = _braced(text, pos + len("\\boxed{"))
        if content is not None:
            return content.strip()
        pos = text.rfind("\\boxed{", 0, pos)
    return None


def extract_probe_answer(text: str) -> str:
    """Answer of a probe continuation that starts inside ``\\boxed{``: up to the first unmatched
    ``}``; empty if the probe never closes the brace (the probe failed)."""
    content = _braced(text, 0)
    return content.strip() if content is not None else ""


def extract_answer(text: str) -> str | None:
    boxed = extract_boxed(text)
    if boxed:
        return boxed
    for pattern in (_ANSWER_IS, _HASHES):
        matches = pattern.findall(text)
        if matches:
            return matches[-1].strip().rstrip(".")
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def normalize_answer(answer: str) -> str:
    s = answer.strip().strip("$").strip().rstrip(".").strip()
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    s = _THOUSANDS.sub("", s).replace(" ", "").lower()
    try:
        value = float(s)
    except ValueError:
        return s
    return repr(int(value)) if value.is_integer() else repr(value)


@functools.lru_cache(maxsize=4096)
def _parsed(answer: str) -> Any:
    from math_verify import parse

    try:
        return parse(f"${answer}$") or parse(answer)
    except Exception:  # math-verify raises on some malformed LaTeX; then it is just not parseable
        return None


@functools.lru_cache(maxsize=16384)
def answers_equivalent(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    if normalize_answer(a) == normalize_answer(b):
        return True
    pa, pb = _parsed(a), _parsed(b)
    if not pa or not pb:
        return False
    from math_verify import verify

    try:
        return bool(verify(pa, pb))
    except Exception:
        return False


def cluster_answers(answers: Sequence[str | None]) -> list[list[int]]:
    """Indices grouped by equivalent answer (first-seen order); a missing answer is its own group."""
    clusters: list[list[int]] = []
    for i, answer in enumerate(answers):
        for cluster in clusters:
            if answer is not None and answers_equivalent(answers[cluster[0]], answer):
                cluster.append(i)
                break
        else:
            clusters.append([i])
    return clusters


def is_correct(answer: str | None, gold: str) -> bool:
    """Grading: the answer is present and equivalent to the gold answer."""
    return answer is not None and answers_equivalent(answer, gold)
