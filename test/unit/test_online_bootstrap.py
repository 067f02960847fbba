"""Bootstrap intervals of the online benchmark: attainment per window, paired max-rate ratios."""

from dynasor.evaluation.rate_bootstrap import attainment_interval, rate_ratio_intervals


def outcomes(met: int, n: int = 100) -> list[bool]:
    return [i < met for i in range(n)]


def test_attainment_interval_brackets_the_value_and_shrinks_to_a_point_when_all_met():
    assert attainment_interval(outcomes(100)) == (1.0, 1.0)
    low, high = attainment_interval(outcomes(50))
    assert 0.35 < low < 0.5 < high < 0.65


def test_a_clearly_faster_system_has_a_ratio_interval_above_one_and_an_equal_one_does_not():
    fast = {1.0: outcomes(100), 2.0: outcomes(98), 3.0: outcomes(40)}
    slow = {1.0: outcomes(99), 2.0: outcomes(30), 3.0: outcomes(0)}
    found = rate_ratio_intervals({"slow": slow, "fast": fast, "same": dict(slow)}, ["slow"], target=0.9,
                                 replicates=400)
    assert found["fast"]["slow"]["excludes_1"] is True and found["fast"]["slow"]["low"] > 1.0
    same = found["same"]["slow"]
    assert same["low"] == same["high"] == 1.0 and same["excludes_1"] is False  # paired: identical replicates


def test_a_ratio_that_is_rarely_defined_gets_no_interval():
    always = {1.0: outcomes(100), 2.0: outcomes(100)}  # sustains every swept rate: a bound, not a rate
    slow = {1.0: outcomes(95), 2.0: outcomes(10)}
    found = rate_ratio_intervals({"slow": slow, "always": always}, ["slow"], target=0.9, replicates=200)
    assert found["always"]["slow"]["defined"] == 0.0 and found["always"]["slow"]["low"] is None
