"""The one answer comparison, table-driven: labelled pairs of equal and unequal answers.

Hand-written cases cover each rule of ``dynasor.certaindex.equivalence`` (relations by their final
right-hand side, truth values, words, units, percent, thousands separators, sets and intervals,
empty and truncated answers); generated cases take gold answers from ``../shared/data`` (GSM8K,
AIME24, AMC23, MATH500) and write them the ways models do (in an equation, with separators, in
dollars) or change their value.
"""

from __future__ import annotations

import pytest

from dynasor.certaindex import answer_certaindex, answers_equivalent, majority_vote, probe_consistent
from dynasor.datasets.loaders import load_aime24, load_amc23, load_gsm8k, load_math500

HAND: list[tuple[str, str, bool]] = [
    # relations: the final right-hand side is the answer (math graders' convention)
    ("3 + 4 = 7", "3 \\times 4 = 12", False),
    ("17 + 27 = 34", "17 + 27 = 32", False),
    ("17 + 27 = 44", "44", True),
    ("3+4=7", "7", True),
    ("x = 5", "5", True),
    ("x=5", "y=5", True),
    ("x = 5", "x = 6", False),
    ("a = b = 10", "10", True),
    ("a = 3 + 7 = 10", "a = 2 \\cdot 5 = 11", False),
    ("2 \\times 6 = 12", "3 \\times 4 = 12", True),
    ("y = 2x + 1", "2x+1", True),
    ("y = 2x + 1", "y = 2x - 1", False),
    ("x = 2, x = 3", "2, 3", True),
    ("x = 2, x = 3", "x = 2, x = 4", False),
    ("\\pi \\approx 3.14", "3.14", True),
    ("48/2 = 24", "24", True),
    ("48/2 = 24", "48/3 = 16", False),
    ("1 + 1 = 2", "2 + 2 = 4", False),
    ("5 = 5", "6 = 6", False),
    # relations between numbers are truth values, never compared by value
    ("3 < 4", "5 < 6", False),
    ("3 < 4", "3 < 4", True),
    ("2 \\neq 3", "4 \\neq 5", False),
    ("1 \\le 2", "0 \\le 9", False),
    # inequalities with a variable compare by value
    ("x > 3", "3 < x", True),
    ("x > 3", "x > 5", False),
    ("x \\le 5", "5 \\ge x", True),
    ("x \\ge 5", "x > 5", False),
    ("x < -1", "x < 1", False),
    # sets, tuples, intervals
    ("\\{1, 2\\}", "\\{2, 1\\}", True),
    ("\\{1, 2\\}", "\\{1, 3\\}", False),
    ("(1, 2)", "[1, 2]", False),
    ("[1, 2]", "[1,2]", True),
    ("(1, 2]", "(1, 2)", False),
    ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("(3, \\frac{\\pi}{2})", "(3, \\frac{\\pi}{3})", False),
    ("(-\\infty, 2)", "(-\\infty, 2]", False),
    ("(2, 3)", "(3, 2)", False),
    # fractions, decimals, radicals, pi
    ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{1}{2}", "\\frac12", True),
    ("\\frac{1}{2}", "\\frac{1}{3}", False),
    ("-\\frac{1}{2}", "-0.5", True),
    ("-\\frac{1}{2}", "\\frac{1}{2}", False),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("2\\sqrt{2}", "\\sqrt{6}", False),
    ("\\pi/2", "\\frac{\\pi}{2}", True),
    ("2\\pi", "\\pi", False),
    ("0.1", "0.10001", False),
    ("18.9", "18.90", True),
    ("0.333", "\\frac{1}{3}", False),
    ("1.5", "\\frac{3}{2}", True),
    ("3\\sqrt{13}", "3 \\sqrt{13}", True),
    # thousands separators
    ("1,000", "1000", True),
    ("1,600", "1600", True),
    ("1,000", "100", False),
    ("12,345,678", "12345678", True),
    ("1,2", "12", False),
    # percent
    ("50\\%", "50", True),
    ("50\\%", "0.5", True),
    ("50\\%", "60\\%", False),
    ("25\\%", "50", False),
    # units, currency, degrees
    ("5 cm", "5", True),
    ("5 cm", "6 cm", False),
    ("5 \\text{ cm}", "5", True),
    ("12 dollars", "12", True),
    ("\\$18.90", "18.9", True),
    ("\\$18.90", "\\$19.90", False),
    ("10^\\circ", "10", True),
    ("90^{\\circ}", "45^{\\circ}", False),
    ("3 hours", "3", True),
    ("3 hours", "4", False),
    # words and choices compare as text
    ("yes", "Yes", True),
    ("no", "on", False),
    ("yes", "no", False),
    ("Monday", "monday", True),
    ("Monday", "Tuesday", False),
    ("\\text{(B)}", "B", True),
    ("(B)", "B", True),
    ("B", "C", False),
    ("\\text{even}", "even", True),
    ("even", "odd", False),
    ("ab", "ba", False),
    # dollar signs, spacing, trailing period
    ("$42$", "42", True),
    ("42.", "42", True),
    ("\\left( 1, 2 \\right)", "(1,2)", True),
    ("\\, 7", "7", True),
    # empty and truncated answers equal nothing, not even themselves
    ("", "", False),
    ("", "0", False),
    ("\\frac{1}{", "\\frac{1}{", False),
    ("\\frac{1}{", "\\frac{1}{2}", False),
    ("x =", "x =", False),
    ("   ", "   ", False),
    # negative numbers and signs
    ("-7", "7", False),
    ("-7", "- 7", True),
    ("+7", "7", True),
]


def _gsm8k_cases() -> list[tuple[str, str, bool]]:
    cases = []
    for problem in load_gsm8k()[:40]:
        n = int(problem.answer)
        cases += [
            (problem.answer, str(n), True),
            (problem.answer, str(n + 1), False),
            (f"{n - 1} + 1 = {n}", str(n), True),
            (f"{n - 1} + 1 = {n}", f"{n - 1} + 2 = {n + 1}", False),
            (f"{n:,}", str(n), True),
            (f"\\${n}", str(n), True),
        ]
    return cases


def _integer_answer_cases() -> list[tuple[str, str, bool]]:
    cases = []
    for problem in [*load_aime24()[:15], *load_amc23()[:15]]:
        n = int(problem.answer)
        cases += [(problem.answer, f"${n}$", True), (problem.answer, str(n + 10), False),
                  (f"x = {n}", problem.answer, True)]
    return cases


def _math500_cases() -> list[tuple[str, str, bool]]:
    cases = []
    for problem in load_math500()[:40]:
        answer = problem.answer
        cases += [(answer, f"${answer}$", True), (answer, f"{answer}.", True)]
        if answer.lstrip("-").isdigit():
            cases.append((answer, str(int(answer) + 1), False))
    return cases


CASES = HAND + _gsm8k_cases() + _integer_answer_cases() + _math500_cases()


def test_the_corpus_has_at_least_200_labelled_pairs_of_both_kinds():
    assert len(CASES) >= 200
    assert sum(equal for *_, equal in CASES) >= 60 and sum(not equal for *_, equal in CASES) >= 60


@pytest.mark.parametrize("a, b, equal", CASES, ids=[f"{i}:{a[:20]}|{b[:20]}" for i, (a, b, _) in enumerate(CASES)])
def test_equivalence(a, b, equal):
    assert answers_equivalent(a, b) is equal
    assert answers_equivalent(b, a) is equal  # the comparison is symmetric


def test_voting_and_probe_consistency_use_the_comparison():
    """Equations that disagree are different answers for every user of the comparison."""
    assert majority_vote(["3 + 4 = 7", "3 \\times 4 = 12", "12", "2 \\cdot 6 = 12"]) in ("12", "3 \\times 4 = 12")
    assert not probe_consistent(["3 + 4 = 7", "3 \\times 4 = 12"], ["", ""], window=2)
    assert probe_consistent(["x = 12", "12", "3 \\times 4 = 12"], ["", "", ""], window=3)
    assert answer_certaindex(["1 + 1 = 2", "2 + 2 = 4", "3 + 3 = 6", "4 + 4 = 8"]) < 0.5
