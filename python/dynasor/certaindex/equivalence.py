"""When two answers are the same answer: the one comparison under certaindex, probe consistency,
majority voting and grading.

An answer is first brought to its canonical form (``canonical_answer``), the convention of math
graders:

- a relation ``lhs = rhs`` (or a chain ``a = b = c``, or ``\\approx``) stands for its final
  right-hand side: ``17 + 27 = 34`` is the answer ``34``; a list of relations (``x = 2, x = 3``)
  for the list of their right-hand sides;
- ``$``, ``\\left``/``\\right``, spacing commands, ``\\dfrac``, ``\\text{...}`` wrappers, a leading
  currency sign, a trailing period, degree marks and a trailing unit word (``5 cm``) go;
- an empty answer, or one with unbalanced braces (a truncated generation), has no canonical form
  and equals nothing, not even itself.

Two canonical answers are equal when their normalised text is (spaces, case, thousands
separators, numeric value), else when ``math-verify`` says so **in both directions** on their
parsed values, except:

- a relation with no free symbol (``3 < 4``) is a truth value, never compared by value;
- words (``yes``, ``Monday``, the choice ``B``) compare as text only (``math-verify`` would read
  ``no`` and ``on`` as the same product of symbols).

So inequalities with a variable (``x > 3`` ≡ ``3 < x``), sets (``{1,2}`` ≡ ``{2,1}``), intervals
(``(1,2)`` ≢ ``[1,2]``), fractions and decimals (``\\frac12`` ≡ ``0.5``) and percentages
(``50\\%`` ≡ ``0.5`` and ``50``) compare by value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_SPACING = re.compile(r"\\(?:left|right|displaystyle|[,;:! ])")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_DEGREES = re.compile(r"(?:\^\s*\{?\\circ\}?|°|\\degree)")
_UNITS = ("cm", "mm", "km", "m", "meters", "metres", "kg", "g", "grams", "mg", "l", "ml", "liters", "s", "sec",
          "seconds", "min", "minutes", "h", "hr", "hours", "days", "weeks", "years", "dollars", "cents", "inches",
          "inch", "in", "feet", "ft", "yards", "miles", "mph", "units", "square units", "sq units", "degrees",
          "points", "people", "students", "pounds", "lbs", "ounces", "oz")
_NUMBER_WITH_UNIT = re.compile(r"(-?[\d.,]+)\s*(?:" + "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True))
                               + r")\.?", re.IGNORECASE)
_CHOICE = re.compile(r"\(?([A-Ea-e])\)?")
_WORDS = re.compile(r"[A-Za-z][A-Za-z '\-]*")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


def _split_top(text: str, separators: tuple[str, ...]) -> list[str]:
    """``text`` split at the separators that stand outside every bracket."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for sep in separators:
                if text.startswith(sep, i) and _is_equals(text, i, sep):
                    parts.append(text[start:i])
                    start = i + len(sep)
                    i = start - 1
                    break
        i += 1
    parts.append(text[start:])
    return parts


def _is_equals(text: str, i: int, sep: str) -> bool:
    """An ``=`` that is not part of ``<=``, ``>=``, ``!=`` or ``==``."""
    if sep != "=":
        return True
    before = text[i - 1] if i else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    return before not in "<>!=" and after != "="


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _final_rhs(text: str) -> str:
    return _split_top(text, ("=", "\\approx"))[-1].strip()


@functools.lru_cache(maxsize=16384)
def canonical_answer(answer: str | None) -> str | None:
    """The answer as graders compare it; None if there is none (empty, truncated)."""
    if answer is None:
        return None
    s = answer.strip()
    if not _balanced(s):
        return None
    s = s.strip("$").strip()
    s = _SPACING.sub(" ", s).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _TEXT.sub(r"\1", s)
    s = _DEGREES.sub("", s)
    items = _split_top(s, (",",))
    if len(items) > 1 and any(len(_split_top(item, ("=",))) > 1 for item in items):
        s = ", ".join(_final_rhs(item) for item in items)  # x = 2, x = 3: the list of solutions
    else:
        s = _final_rhs(s)
    s = s.strip().rstrip(".").strip()
    if s.startswith("\\$"):
        s = s[2:].strip()
    unit = _NUMBER_WITH_UNIT.fullmatch(s)
    if unit:
        s = unit.group(1)
    choice = _CHOICE.fullmatch(s)
    if choice:
        s = choice.group(1)
    return s or None


def normalize_answer(answer: str) -> str:
    """Canonical text for exact comparison: spaces, case, thousands separators, numeric value."""
    s = _THOUSANDS.sub("", (canonical_answer(answer) or "")).replace(" ", "").lower()
    try:
        value = float(s)
    except ValueError:
        return s
    return repr(int(value)) if value.is_integer() else repr(value)


# Seconds math-verify may spend parsing or comparing one answer (its default is 5). Answers like
# 3^{3^{3^{3}}} or 10000000000! (a sampled branch writes them) hit the limit, and a program's
# certaindex runs on the client's event loop: every second spent there stalls every program the
# runtime drives. A comparison that does not finish in time counts as different.
MATH_VERIFY_TIMEOUT_S = 1


@functools.lru_cache(maxsize=4096)
def _parsed(answer: str) -> Any:
    from math_verify import parse

    try:
        return parse(f"${answer}$", parsing_timeout=MATH_VERIFY_TIMEOUT_S) or None
    except Exception:  # math-verify raises on some malformed LaTeX; then it is just not parseable
        return None


def _is_truth_value(parsed: Any) -> bool:
    """A relation between numbers (``3 < 4``): math-verify would compare its truth value."""
    from sympy.logic.boolalg import Boolean

    value = parsed[0]
    return isinstance(value, Boolean) and not getattr(value, "free_symbols", None)


@functools.lru_cache(maxsize=16384)
def answers_equivalent(a: str | None, b: str | None) -> bool:
    ca, cb = canonical_answer(a), canonical_answer(b)
    if ca is None or cb is None:
        return False
    if normalize_answer(ca) == normalize_answer(cb):
        return True
    if _WORDS.fullmatch(ca) or _WORDS.fullmatch(cb):
        return False  # words compare as text only
    pa, pb = _parsed(ca), _parsed(cb)
    if pa is None or pb is None or _is_truth_value(pa) or _is_truth_value(pb):
        return False
    from math_verify import verify

    try:
        return bool(verify(pa, pb, timeout_seconds=MATH_VERIFY_TIMEOUT_S)) and \
            bool(verify(pb, pa, timeout_seconds=MATH_VERIFY_TIMEOUT_S))
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
