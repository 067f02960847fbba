import pytest

from dynasor.scheduler.program_placement import PlacementConflict, ProgramPlacement
from dynasor.srt.cpu_defaults import CPU_BIND_VARIABLE, bind_cpu_ranks, cpu_rank_binding, ranks_in_argv


def test_new_program_goes_to_least_loaded_rank_and_stays():
    p = ProgramPlacement(3, ttl_s=60.0)
    assert p.place(["a"], lambda: [5, 1, 3], now=0.0) == 1
    # later requests of "a" stay on rank 1 whatever the load; the load is not even asked for
    assert p.place(["a"], lambda: pytest.fail("load asked for a placed program"), now=1.0) == 1
    assert p.place(["b"], lambda: [5, 9, 3], now=2.0) == 2
    assert p.rank_of("a", now=3.0) == 1 and p.rank_of("b", now=3.0) == 2 and p.rank_of("c", now=3.0) is None


def test_ties_spread_programs_over_ranks():
    p = ProgramPlacement(2, ttl_s=60.0)
    ranks = [p.place([f"p{i}"], lambda: [0, 0], now=float(i)) for i in range(4)]
    assert ranks == [0, 1, 0, 1]


def test_placement_expires_after_ttl_since_last_request():
    p = ProgramPlacement(2, ttl_s=10.0)
    assert p.place(["a"], lambda: [0, 1], now=0.0) == 0
    assert p.place(["a"], lambda: [0, 1], now=8.0) == 0  # refreshes its last arrival
    assert p.rank_of("a", now=17.0) == 0
    assert p.rank_of("a", now=18.5) is None
    assert p.place(["a"], lambda: [4, 1], now=19.0) == 1  # placed afresh
    assert len(p) == 1


def test_remembers_at_most_max_programs():
    p = ProgramPlacement(2, ttl_s=1e9, max_programs=2)
    for i, pid in enumerate("abc"):
        p.place([pid], lambda: [0, 0], now=float(i))
    assert p.rank_of("a", now=3.0) is None and p.rank_of("c", now=3.0) is not None


def test_batch_places_its_programs_together_and_refuses_split_programs():
    p = ProgramPlacement(2, ttl_s=60.0)
    assert p.place(["a"], lambda: [0, 1], now=0.0) == 0
    assert p.place(["a", "b"], lambda: [9, 0], now=1.0) == 0  # b joins a's rank
    assert p.rank_of("b", now=1.0) == 0
    assert p.place(["c"], lambda: [5, 0], now=2.0) == 1
    with pytest.raises(PlacementConflict, match=r"different data-parallel ranks \[0, 1\]"):
        p.place(["a", "c"], lambda: [0, 0], now=3.0)


def test_pinned_rank_is_kept_for_new_programs_and_conflicts_with_another():
    p = ProgramPlacement(2, ttl_s=60.0)
    assert p.place(["a"], lambda: [0, 0], now=0.0, pinned=1) == 1
    assert p.place(["a"], lambda: [0, 9], now=1.0) == 1
    with pytest.raises(PlacementConflict):
        p.place(["a"], lambda: [0, 0], now=2.0, pinned=0)


def test_load_for_wrong_rank_count_is_an_error():
    with pytest.raises(ValueError, match="2 ranks, expected 3"):
        ProgramPlacement(3, ttl_s=1.0).place(["a"], lambda: [0, 0], now=0.0)


def test_cpu_rank_binding_splits_usable_cores_evenly():
    assert cpu_rank_binding(1, [0, 1]) is None
    assert cpu_rank_binding(2, [0, 1]) == "0|1"
    assert cpu_rank_binding(2, [0, 1, 2, 3, 4]) == "0-2|3-4"
    assert cpu_rank_binding(2, [0, 2, 4, 6]) == "0,2|4,6"
    with pytest.raises(ValueError, match="3 ranks .* need at least one CPU core each; this process may use 2"):
        cpu_rank_binding(3, [0, 1])


def test_bind_cpu_ranks_keeps_the_callers_binding():
    env = {CPU_BIND_VARIABLE: "0-1|0-1"}
    bind_cpu_ranks(2, env)
    assert env[CPU_BIND_VARIABLE] == "0-1|0-1"
    env = {}
    bind_cpu_ranks(1, env)
    assert env == {}


def test_ranks_in_argv_multiplies_parallel_sizes():
    assert ranks_in_argv([]) == 1
    assert ranks_in_argv(["--dp-size", "2", "--tp-size=2"]) == 4
    assert ranks_in_argv(["--data-parallel-size", "3"]) == 3
