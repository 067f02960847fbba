import math

import pytest

from dynasor.certaindex import (
    all_pass,
    answer_certaindex,
    answers_equivalent,
    cluster_answers,
    extract_answer,
    extract_probe_answer,
    lowest_window_mean,
    probe_consistent,
    reward_certaindex,
)
from dynasor.certaindex.answers import extract_boxed
from dynasor.certaindex.equivalence import normalize_answer


@pytest.mark.parametrize(
    "votes, expected",
    [
        (["4"] * 5, 1.0),
        (["4"] * 4 + ["5"], 0.689),
        (["4"] * 3 + ["5"] * 2, 0.582),
        (["4"] * 3 + ["5", "6"], 0.410),
        (["4", "4", "5", "5", "6"], 0.345),
        (["1", "2", "3", "4", "5"], 0.0),
        (["12"] * 15 + ["13"], 0.916),  # Rebase width 16: 15-1 passes H̃ ≥ 0.85
    ],
)
def test_answer_certaindex_hand_computed(votes, expected):
    assert answer_certaindex(votes) == pytest.approx(expected, abs=1e-3)


def test_answer_certaindex_clusters_equivalent_answers_and_guards_small_n():
    assert answer_certaindex(["\\frac12", "0.5", "1/2", "0.50", "$\\frac{1}{2}$"]) == pytest.approx(1.0)
    assert answer_certaindex(["1,000", "1000"]) == pytest.approx(1.0)
    assert answer_certaindex(["7"]) == 0.0 and answer_certaindex([]) == 0.0
    assert answer_certaindex([None, None]) == 0.0  # missing answers never agree


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{\\frac{a}{b+\\{c\\}}} done", "\\frac{a}{b+\\{c\\}}"),
        ("first \\boxed{1} then \\boxed{2}.", "2"),
        ("broken \\boxed{3} and \\boxed{4", "3"),
        ("The answer is 42.", "42"),
        ("Thus the answer is $-7$.\n", "-7"),
        ("She makes 18 dollars.\n#### 18", "18"),
        ("He has 3 apples and buys 1,250 more", "1,250"),
        ("no digits here", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_boxed_and_probe_answer():
    assert extract_boxed("\\boxed{x^{2}}") == "x^{2}"
    assert extract_probe_answer("\\frac{3}{4}} \\]") == "\\frac{3}{4}"
    assert extract_probe_answer("12}") == "12"
    assert extract_probe_answer("12 and it goes on") == ""  # never closed: the probe failed
    assert extract_probe_answer("") == ""


@pytest.mark.parametrize(
    "a, b, same",
    [("\\frac12", "0.5", True), ("1,000", "1000", True), ("3", "3.0", True), ("$5$", "5.", True),
     ("\\text{18}", "18", True), ("2", "3", False), ("", "0", False), (None, "1", False), ("x+1", "1+x", True)],
)
def test_answers_equivalent(a, b, same):
    assert answers_equivalent(a, b) is same


def test_normalize_and_cluster():
    assert normalize_answer(" $1,250.$ ") == "1250"
    assert cluster_answers(["4", "4.0", "5", None, "5"]) == [[0, 1], [2, 4], [3]]


def test_probe_consistency_stop_rule():
    texts = ["42}", "42} \\]", "42}"]
    assert probe_consistent(["42", "42", "42"], texts, window=3)
    assert not probe_consistent(["42", "42"], texts[:2], window=3)  # window not full yet
    assert not probe_consistent(["42", "", "42"], texts, window=3)  # a failed (empty) probe
    assert probe_consistent(["7", "42", "42.0"], ["7}", "42}", "42.0}"], window=2)  # only the last N count


def test_probe_consistency_regression_disagreeing_answers_never_exit():
    """The public Dynasor should_early_exit returns True once the window is full and hesitation-free,
    even when the answers disagree. Agreement is required here."""
    assert not probe_consistent(["41", "42", "43"], ["41}", "42}", "43}"], window=3)


def test_hesitation_filter_matches_words_not_substrings():
    answers = ["5", "5"]
    assert not probe_consistent(answers, ["5} wait, let me check", "5}"], window=2)
    assert not probe_consistent(answers, ["5}", "Hmm... 5}"], window=2)
    assert not probe_consistent(answers, ["5} But", "5}"], window=2)
    # substrings of hesitation words do not count: "know", "button", "denominator", "nothing"
    assert probe_consistent(answers, ["5} I know the denominator", "5} button nothing"], window=2)


def test_reward_certaindex():
    assert reward_certaindex([0.2, 0.6, 1.0], "mean") == pytest.approx(0.6)
    assert reward_certaindex([0.2, 0.6, 1.0], "max") == 1.0
    assert reward_certaindex([], "max") == 0.0
    with pytest.raises(ValueError, match="mean"):
        reward_certaindex([0.5], "median")


def test_lowest_window_mean():
    assert lowest_window_mean([5, 4, 3, 1, 8], window=3) == pytest.approx(8 / 3)
    assert lowest_window_mean([2, 4], window=10) == 3
    assert lowest_window_mean([], window=3) is None


def test_signals_combine_with_and():
    thresholds = {"answer": 0.99, "reward": 0.4}  # MCTS on GSM8K (Table 3)
    assert all_pass({"answer": 1.0, "reward": 0.5}, thresholds)
    assert not all_pass({"answer": 1.0, "reward": 0.3}, thresholds)
    assert not all_pass({"answer": 0.689, "reward": 0.9}, thresholds)
    assert not all_pass({"answer": 1.0}, thresholds)  # a missing signal fails
    assert math.isclose(answer_certaindex(["4"] * 4 + ["5"]), 0.6895, abs_tol=1e-3)
