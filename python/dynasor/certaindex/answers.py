"""Answer extraction from model text (their comparison: ``equivalence.py``).

Extraction, in order: the last ``\\boxed{...}`` (nested braces respected), "The answer is N",
``#### N``, the last number.
"""

from __future__ import annotations

import re

_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is[:\s]*\$?([^\n$]+?)\$?\s*(?:\.\s|\.?$|\n)")
_HASHES = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


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
