"""A one-minute soak on the shared server (the 30-minute one is `python -m benchmark.soak.soak`):
the mixed load ends with no 5xx, nothing stuck, the KV back to idle and the program table bounded."""

from benchmark.soak import soak

from .conftest import PROGRAM_TTL


def test_one_minute_mixed_load_leaves_the_server_clean(url, tmp_path):
    report = soak.main(["--url", url, "--duration", "60", "--sample-every", "15", "--warmup", "0",
                        "--out", str(tmp_path / "soak.json")])
    kinds = {kind for kind, row in report["latency"].items() if row["n"]}
    assert {"openai_sc", "openai_cot", "program", "program_abort", "untagged"} <= kinds
    assert report["server_errors"] == 0 and report["failed_requests"] == 0, report["errors"]
    assert report["stuck_requests"] == 0 and report["kv_idle_at_end"]
    # done programs leave the table PROGRAM_TTL seconds after they went idle: with a few programs a
    # second, the table holds tens of them at most, never the run's total
    started = sum(report["latency"][k]["n"] for k in ("program", "program_abort", "openai_sc", "openai_cot"))
    assert report["max_programs"] <= max(40, started // 2) and PROGRAM_TTL <= 10
    assert (tmp_path / "soak.png").stat().st_size > 0
