"""The live KV-bound benchmark's pure parts: seeded programs, what each system's requests say, and the
logit processor that ends a branch at a length the scheduler cannot see."""

from types import SimpleNamespace

import torch

from benchmark.online.bench_kvbound import (BRANCHES, CAP, LONG_MEDIAN, SHORT_MEDIAN, SYSTEMS, best_stock,
                                            draw_programs, request_body)
from dynasor.core.tag import TAG_KEY
from dynasor.srt.forced_length import ForcedLength, forced_length_params


def test_programs_are_seeded_and_long_ones_are_several_times_longer():
    programs = draw_programs(200, seed=3)
    assert programs == draw_programs(200, seed=3) and programs != draw_programs(200, seed=4)
    assert all(len(p.lengths) == BRANCHES and all(4 <= n <= CAP for n in p.lengths) for p in programs)
    long = [sum(p.lengths) for p in programs if p.long]
    short = [sum(p.lengths) for p in programs if not p.long]
    assert 60 < len(long) < 140 and sorted(short)[len(short) // 2] * 6 <= sorted(long)[len(long) // 2]
    assert LONG_MEDIAN / SHORT_MEDIAN >= 6
    assert all(b.unit_arrival > a.unit_arrival for a, b in zip(programs, programs[1:]))


def test_every_system_asks_for_the_budget_and_only_the_processor_knows_the_length():
    program = draw_programs(1, seed=0)[0]
    bodies = {name: request_body(system, program, 37, "p" * 32, 2, "proc") for name, system in SYSTEMS.items()}
    for name, body in bodies.items():
        params = body["sampling_params"]
        assert params["max_new_tokens"] == CAP and body["custom_logit_processor"] == "proc"
        assert params["custom_params"]["forced_length"] == 37
        tagged = TAG_KEY in params["custom_params"]
        assert tagged == (not SYSTEMS[name].stock) and ("rid" in body) == tagged
        if tagged:  # no remaining_work hint: the server estimates the program's work itself
            assert params["custom_params"][TAG_KEY] == {"program_id": "p" * 32, "return_entropy": False}
    assert bodies["sglang-priority"]["priority"] == BRANCHES * CAP  # what the client knows: its budget
    assert "priority" not in bodies["sglang-fcfs"] and "priority" not in bodies["dynasor"]


def test_forced_length_bans_the_stop_token_until_the_last_token_and_then_forces_it():
    logits = torch.zeros(3, 5)
    rows = [{**forced_length_params(4, 2), "__req__": SimpleNamespace(output_ids=[7, 7])},      # 3rd of 4
            {**forced_length_params(4, 2), "__req__": SimpleNamespace(output_ids=[7, 7, 7])},   # the 4th: stop
            None]                                                                                 # untouched
    out = ForcedLength()(logits, rows)
    assert out[0, 2] == float("-inf") and (out[0, [0, 1, 3, 4]] == 0).all()
    assert out[1, 2] == 0 and (out[1, [0, 1, 3, 4]] == float("-inf")).all()
    assert (out[2] == 0).all()


def test_the_best_stock_system_has_the_lowest_mean_latency_over_the_run():
    rounds = [{"systems": {"sglang-fcfs": {"mean_latency_s": {"0.3": 10.0, "0.4": 20.0}},
                           "sglang-priority": {"mean_latency_s": {"0.3": 12.0, "0.4": 16.0}},
                           "dynasor": {"mean_latency_s": {"0.3": 1.0, "0.4": 1.0}}}}]
    assert best_stock(rounds, ["sglang-fcfs", "sglang-priority", "dynasor"]) == "sglang-priority"
