"""Calibration: the offline replay (program_runtime/replay.py) on hand-made profiles, threshold choice, splits, profile
files, the recording backend over a fake engine, the CLI, and quick_sc's pure parts."""

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dynasor.certaindex import answer_certaindex, majority_vote
from dynasor.core.generation import Generation
from dynasor.datasets.labelled import Labelled, read_labelled_jsonl
from dynasor.program_runtime import calibrate as cal
from dynasor.program_runtime import replay as rp
from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold

ROOT = Path(__file__).resolve().parents[2]


def profile(pid, gold, answers, tokens, **kw):
    return rp.Profile(pid, gold, tuple(rp.Branch(a, t) for a, t in zip(answers, tokens)), **kw)


# certaindex over the first 5 answers (hand-computed, checked below):
#   p1 1.0 (unanimous), p2 0.4096 (3,1,1), p3 0.1723 (2,1,1,1), p4 0.6891 (4,1)
P1 = profile("p1", "4", list("4444455555"), [10] * 10)           # first 5: 50, all: 100
P2 = profile("p2", "7", list("3337977777"), [20] * 10)           # 100 / 200; early majority 3 is wrong
P3 = profile("p3", "5", list("1123455555"), [5] * 5 + [7] * 5)   # 25 / 60; early majority "1" is wrong
P4 = profile("p4", "8", list("8888278888"), list(range(1, 11)))  # 15 / 55
HAND = [P1, P2, P3, P4]


def test_hand_certaindex_values():
    values = [answer_certaindex([b.answer for b in p.branches[:5]]) for p in HAND]
    assert values == pytest.approx([1.0, 0.40956, 0.17227, 0.68908], abs=1e-4)


@pytest.mark.parametrize("threshold, correct, tokens, stopped", [
    (None, 4, 415, 0),   # even: 100 + 200 + 60 + 55
    (1.0, 4, 365, 1),    # only p1 stops
    (0.7, 4, 365, 1),
    (0.5, 4, 325, 2),    # p1, p4 stop
    (0.4, 3, 225, 3),    # p2 stops too, on the wrong answer
    (0.1, 2, 190, 4),    # everything stops; p3's early answers vote "1"
])
def test_simulated_accuracy_and_tokens(threshold, correct, tokens, stopped):
    e = rp.evaluate(HAND, threshold, 5)
    assert (e.correct, e.tokens, e.stopped, e.n) == (correct, tokens, stopped, 4)
    assert e.accuracy == correct / 4


def test_simulate_details():
    assert rp.replay_profile(P2, 0.4, 5) == rp.ReplayOutcome("3", False, 100, True)
    assert rp.replay_profile(P2, None, 5) == rp.ReplayOutcome("7", True, 200, False)
    assert rp.replay_profile(P1, 0.0, 10).stopped is False  # detection only before the cap
    assert rp.replay_profile(P1, 0.0, 3).tokens == 30
    none = profile("n", "1", [None, None, "1", None], [3, 3, 3, 3])
    assert rp.replay_profile(none, None, 2) == rp.ReplayOutcome("1", True, 12, False)
    assert majority_vote([None, None]) is None
    assert majority_vote(["0.5", "7", "1/2"]) == "0.5"  # equivalent answers vote together


def test_choice_respects_epsilon_and_minimises_tokens():
    thresholds = [0.1, 0.4, 0.45, 0.5, 0.7, 1.0]
    candidates, even = rp.grid(HAND, thresholds, [5]), rp.evaluate(HAND, None, None)
    chosen = rp.choose(candidates, even, 0.0)
    assert (chosen.threshold, chosen.tokens, chosen.correct) == (0.5, 325, 4)  # 0.45 ties; higher wins
    assert rp.choose(candidates, even, 0.25).threshold == 0.4
    assert rp.choose(candidates, even, 0.5).threshold == 0.1
    assert rp.choose([rp.evaluate(HAND, 0.1, 5)], even, 0.0).threshold is None  # nothing qualifies: even
    with pytest.raises(ValueError, match="empty"):
        rp.choose(candidates, rp.evaluate([], None, None), 0.0)


def test_choice_over_detection_steps():
    chosen = rp.choose(rp.grid(HAND, [0.5, 1.0], [3, 5]), rp.evaluate(HAND, None, None), 0.0)
    assert chosen.detect_at in (3, 5) and chosen.correct == 4
    assert chosen.tokens == min(e.tokens for e in rp.grid(HAND, [0.5, 1.0], [3, 5]) if e.correct == 4)


def many(n):
    return [profile(f"q{i:02d}", str(i % 3), [str(i % 3)] * 5 + [str(i % 2)] * 5, [i + 1] * 10) for i in range(n)]


def test_split_is_seeded_and_independent_of_order():
    profiles = many(20)
    calib, held = rp.split_profiles(profiles, 0.25, seed=3)
    assert len(held) == 5 and len(calib) == 15
    assert {p.problem_id for p in calib} | {p.problem_id for p in held} == {p.problem_id for p in profiles}
    assert (calib, held) == rp.split_profiles(list(reversed(profiles)), 0.25, seed=3)
    assert held != rp.split_profiles(profiles, 0.25, seed=4)[1]


def test_calibrate_report_uses_held_out_for_the_result():
    profiles = many(12) + HAND
    report = rp.calibrate(profiles, [0.0, 0.5, 1.0], [5], epsilon=0.0, holdout_fraction=0.5, seed=1)
    calib, held = rp.split_profiles(profiles, 0.5, 1)
    chosen = rp.choose(rp.grid(calib, [0.0, 0.5, 1.0], [5]), rp.evaluate(calib, None, None), 0.0)
    assert report["chosen"] == {"threshold": chosen.threshold, "detect_at": 5}
    out = report["splits"]["held_out"]
    assert out["ids"] == [p.problem_id for p in held]
    assert out["chosen"] == rp.evaluate(held, chosen.threshold, 5).to_json()
    assert out["even"] == rp.evaluate(held, None, None).to_json()
    assert out["tokens_saved"] == pytest.approx(1 - out["chosen"]["tokens"] / out["even"]["tokens"])
    assert len(out["grid"]) == 3
    json.dumps(report)
    assert "held_out" in rp.format_report({**report, "cap": 10})


def test_profiles_jsonl_round_trip(tmp_path):
    extra = profile("x", "1", [None, "1"], [4, 5], level=2, source="arithmetic", aborted=1, aborted_tokens=3)
    profiles = HAND + [extra]
    rp.save_profiles(tmp_path / "p.jsonl", profiles)
    assert rp.load_profiles(tmp_path / "p.jsonl") == profiles


def test_threshold_grid():
    grid = cal.threshold_grid("0:1:0.05")
    assert len(grid) == 21 and grid[0] == 0.0 and grid[-1] == 1.0 and grid[3] == 0.15
    assert cal.threshold_grid("0.5,0.7") == [0.5, 0.7]


def test_labelled_jsonl(tmp_path):
    rows = [{"question": "1+1?", "answer": "so 2\n#### 2,000"}, {"problem": "p", "answer": 3.0, "unique_id": "u"},
            {"question": "q", "answer": "4", "prompt": "FULL", "id": 9, "level": 1}]
    (tmp_path / "l.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    items = read_labelled_jsonl(tmp_path / "l.jsonl", "Q: {question}\nA:")
    assert items == [Labelled("0", "Q: 1+1?\nA:", "2000"), Labelled("u", "Q: p\nA:", "3.0"),
                     Labelled("9", "FULL", "4", 1)]
    assert len(read_labelled_jsonl(tmp_path / "l.jsonl", limit=1)) == 1


class FakeBackend:
    """Branch i of a program answers ``answers[i]`` with i + 1 tokens, finishing in reverse launch
    order (so arrival order differs from launch order); stop_program aborts the rest."""

    def __init__(self, answers):
        self.answers, self.counters, self.stopped = answers, {}, set()

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        i = next(self.counters.setdefault(program_id, itertools.count()))
        await asyncio.sleep(0.03 * (len(self.answers[prompt]) - i))
        if program_id in self.stopped:
            return Generation("", 1, "abort")
        return Generation(f"x \\boxed{{{self.answers[prompt][i]}}}", i + 1, "stop")

    async def stop_program(self, program_id):
        self.stopped.add(program_id)


def test_recording_keeps_arrival_order_and_tokens():
    backend = FakeBackend({"a": list("1234512345"), "b": list("9999999999")})
    items = [Labelled("A", "a", "5"), Labelled("B", "b", "9")]
    run = asyncio.run(cal.run_programs(backend, items, EvenAllocation(), 10, 10, {}, concurrency=2))
    pa, pb = run.profiles
    assert [b.answer for b in pa.branches] == list("5432154321")  # last launched finishes first
    assert [b.tokens for b in pa.branches] == list(range(10, 0, -1))
    assert [b.answer for b in pa.branches] == run.results[0].extra["answers"]
    assert pb.gold == "9" and pb.aborted == 0 and sum(b.tokens for b in pb.branches) == run.results[1].generated_tokens


def test_recording_a_live_stop_counts_aborted_branches():
    backend = FakeBackend({"a": list("7777777777")})
    run = asyncio.run(cal.run_programs(backend, [Labelled("A", "a", "7")], StaticThreshold(0.7), 10, 5, {}))
    (p,), (r,) = run.profiles, run.results
    assert r.stopped_early and len(p.branches) == 5 and p.aborted == 5 and p.aborted_tokens == 5
    assert sum(b.tokens for b in p.branches) + p.aborted_tokens == r.generated_tokens


def test_cli_help_exits_zero():
    proc = subprocess.run([sys.executable, "-m", "dynasor.cli", "calibrate", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--profiles" in proc.stdout and "--epsilon" in proc.stdout


def test_cli_from_profiles(tmp_path, capsys):
    rp.save_profiles(tmp_path / "p.jsonl", HAND)
    out = tmp_path / "cal.json"
    cal.main(["--profiles", str(tmp_path / "p.jsonl"), "--holdout", "0", "--thresholds", "0:1:0.05",
              "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["chosen"] == {"threshold": 0.65, "detect_at": 5} and report["cap"] == 10
    assert report["splits"]["calibration"]["chosen"]["tokens"] == 325
    assert report["splits"]["held_out"]["even"]["n"] == 0 and report["splits"]["held_out"]["tokens_saved"] is None
    assert "certaindex>=0.65@5" in capsys.readouterr().out


def test_cli_live_run_needs_url(tmp_path):
    with pytest.raises(SystemExit):
        cal.main(["--generate", "3", "--out", str(tmp_path / "c.json")])


def test_generated_items_from_the_checkout():
    items, meta = cal._generated_items(4, "1:1,2:1", 0)
    assert len(items) == 4 and meta["level_counts"] == {"1": 2, "2": 2}
    assert all(i.prompt.endswith("\nA:") and i.source == "arithmetic" for i in items)


def test_quick_sc_help_and_pure_parts(monkeypatch):
    proc = subprocess.run([sys.executable, "-m", "benchmark.batch.quick_sc", "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--url" in proc.stdout
    from benchmark.batch import quick_sc

    async def fake_run(url, items, policy, cap, detect_at, params, concurrency, desc):
        answers = {i.prompt: [i.gold] * 6 + ["0"] * 4 for i in items}
        return await cal.run_programs(FakeBackend(answers), items, policy, cap, detect_at, params, concurrency, desc)

    monkeypatch.setattr(cal, "run_self_consistency", fake_run)
    args = argparse.Namespace(cap=10, detect_at=5, threshold=0.7, concurrency=4, temperature=0.8,
                                       max_new_tokens=32, stop=None, skip_live_certaindex=False)
    items = [Labelled(f"i{k}", f"prompt {k}", str(k + 1)) for k in range(3)]
    out = asyncio.run(quick_sc.run_policies("http://unused", items, args))
    even, simulated, live = out["rows"]
    assert out["sampling_params"]["stop"] == ["\n"]
    assert (even["accuracy"], even["tokens"], even["tokens_saved"]) == (1.0, 3 * 55, None)
    # arrival order is reversed: the first five to arrive are branches 10..6, i.e. "0000" + gold
    assert simulated["stopped"] == 0 and simulated["tokens_saved"] == 0.0
    assert live["mode"] == "live" and live["n"] == 3
    table = quick_sc.format_table(out["rows"])
    assert "even (cap 10) (live)" in table and "certaindex>=0.70@5 (simulated)" in table
    assert set(quick_sc.machine_info()) >= {"platform", "cpu_count", "torch", "sglang"}


def test_quick_sc_main_writes_results(tmp_path, monkeypatch, capsys):
    from benchmark.batch import quick_sc

    async def fake_run(url, items, policy, cap, detect_at, params, concurrency, desc):
        answers = {i.prompt: [i.gold] * 10 for i in items}
        return await cal.run_programs(FakeBackend(answers), items, policy, cap, detect_at, params, concurrency, desc)

    monkeypatch.setattr(cal, "run_self_consistency", fake_run)
    out = tmp_path / "q.json"
    quick_sc.main(["--url", "http://unused", "--n", "3", "--seed", "4", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["problems"]["seed"] == 4 and report["problems"]["n"] == 3 and report["cap"] == 10
    assert [r["mode"] for r in report["rows"]] == ["live", "simulated", "live"]
    even, simulated, live = report["rows"]
    assert even["tokens"] == 3 * 55 and simulated["tokens"] == 3 * (10 + 9 + 8 + 7 + 6)  # arrival order reversed
    assert simulated["tokens_saved"] == pytest.approx(1 - 120 / 165) and live["stopped"] == 3
    assert len(rp.load_profiles(out.with_suffix(".profiles.jsonl"))) == 3
    assert "tokens saved %" in capsys.readouterr().out
