"""Simulator iteration-time profiles: the GPU one from the shared operator data, the CPU fit."""

import json

import pytest

from dynasor.datasets.loaders import default_data_dir
from dynasor.sim.fit import fit_linear, load_linear, read_steps
from dynasor.sim.gpu_profile import GPU_SPECS, load_gpu_profile

DATA = default_data_dir() / "gpu-profiles"


@pytest.mark.parametrize("name, one_token_ms", [("a100-llama3-8b", 9.7), ("h100-llama2-7b", 5.6)])
def test_gpu_operators_sum_to_the_datas_own_sanity_figure(name, one_token_ms):
    profile = load_gpu_profile(DATA / name, name, GPU_SPECS[name])
    assert profile.linear_ops(1) * 1000 == pytest.approx(one_token_ms, abs=0.05)  # the README's figure
    # more tokens never cost less; beyond the profiled range the last slope continues
    assert profile.linear_ops(4096) > profile.linear_ops(512) > profile.linear_ops(1)
    top = profile.tokens[-1]
    assert profile.linear_ops(2 * top) > profile.linear_ops(top)
    # decode reads the KV cache: a longer context costs more; prefill attention grows with context
    assert profile.decode_seconds(32, 32 * 4000) > profile.decode_seconds(32, 32 * 100)
    assert profile.prefill_seconds([(512, 8000)]) > profile.prefill_seconds([(512, 0)])
    assert "assumptions" in profile.describe() and profile.describe()["kv_tokens"] == GPU_SPECS[name].kv_tokens


def test_the_linear_fit_recovers_a_known_cost_and_reports_its_error(tmp_path):
    rows = []
    for batch in (1, 2, 4, 8, 16):
        for ctx in (100, 1000, 3000):
            rows.append({"mode": "decode", "batch_size": batch, "context_tokens": ctx * batch,
                         "schedule_s": 0.001, "run_s": 0.05 + 0.004 * batch + 2e-6 * ctx * batch - 0.001,
                         "result_s": 0.0})
    for new in (1, 64, 512, 2048):
        rows.append({"mode": "prefill", "new_tokens": new, "cached_tokens": 0, "context_tokens": new,
                     "batch_size": 1, "schedule_s": 0.0, "run_s": 0.02 + 0.0005 * new + 1e-4 * new * new / 2000,
                     "result_s": 0.0})
    path = tmp_path / "steps.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cost, fit = fit_linear(read_steps([path]), "cpu-test", "synthetic")
    assert cost.decode_fixed_s == pytest.approx(0.05) and cost.decode_per_request_s == pytest.approx(0.004)
    assert cost.decode_per_kv_token_s == pytest.approx(2e-6) and cost.prefill_per_token_s == pytest.approx(0.0005)
    assert fit["decode"]["median_error"] < 1e-6 and fit["ranges"]["decode_batch"] == [1, 16]
    (tmp_path / "profile.json").write_text(json.dumps({"profile": cost.describe()}))
    assert load_linear(tmp_path / "profile.json") == cost


def test_the_fit_refuses_a_log_without_both_kinds(tmp_path):
    with pytest.raises(ValueError, match="at least 3"):
        fit_linear([{"mode": "decode", "batch_size": 1, "context_tokens": 5, "schedule_s": 0, "run_s": 0.1,
                     "result_s": 0}], "x", "y")


def test_wall_timing_gives_each_step_the_interval_after_its_line():
    from dynasor.sim.fit import wall_timed

    rows = [{"t": t, "mode": "decode", "batch_size": 1, "context_tokens": 10} for t in (0.0, 0.1, 0.3, 0.6, 9.0, 9.1)]
    timed = wall_timed(rows, max_gap_s=5.0)
    # line 1 is timed by the interval to line 2 (0.2 s), line 2 by 0.3 s; idle gaps drop the rest
    assert [round(r["seconds"], 6) for r in timed] == [0.2, 0.3]
