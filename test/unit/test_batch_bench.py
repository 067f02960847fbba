"""Batch benchmark, pure parts: offline SC / CoT / Rebase points from hand-made recordings
(hand-computed), spread over seeds, savings at matched accuracy, the recorders over fake
engines, and the CLI end to end with the live part replaced by fixtures (no server)."""

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.batch import analysis, bench_batch, curves, offline, record
from benchmark.batch.offline import CoTTrace, Probe, RebaseTrace, Spec
from dynasor.core.generation import Generation
from dynasor.core.stats import quantile
from dynasor.datasets.labelled import Labelled
from dynasor.program_runtime.replay import Branch, Profile
from dynasor.programs.cot import PROBE_SUFFIX, DynasorCoT, ReasoningIds

ROOT = Path(__file__).resolve().parents[2]


def profile(pid, gold, answers, tokens, level=None):
    return Profile(pid, gold, tuple(Branch(a, t) for a, t in zip(answers, tokens)), level)


# detect at 2: P1 unanimous (H~ 1) and right; P2 split (H~ 0), right only with all 4;
# P3 unanimous on a wrong answer (tie 9/4 at the cap goes to the first seen: wrong too); P4 split, right.
P1 = profile("p1", "5", list("5535"), [10, 10, 10, 10], level=1)  # first two 20, all 40
P2 = profile("p2", "7", list("1277"), [5, 6, 7, 8], level=2)      # 11 / 26
P3 = profile("p3", "4", list("9944"), [20, 20, 20, 20], level=1)  # 40 / 80
P4 = profile("p4", "2", list("2322"), [4, 4, 4, 4], level=2)      # 8 / 16
SEEDS = {0: [P1, P2], 1: [P3, P4]}


def result(p, cap, spec):
    return offline.sc_result(p, cap, spec, resamples=5)


@pytest.mark.parametrize("spec, per_seed_acc, per_seed_tokens, stopped", [
    (Spec("even", "even"), [1.0, 0.5], [33.0, 48.0], [0.0, 0.0]),
    (Spec("certaindex", "c", 0.9, 2), [1.0, 0.5], [23.0, 28.0], [0.5, 0.5]),     # P1 and P3 stop
    (Spec("certaindex", "c", 0.0, 2), [0.5, 0.5], [15.5, 24.0], [1.0, 1.0]),     # all stop; ties: first seen
    (Spec("length", "l", 25, 2), [1.0, 0.5], [33.0, 28.0], [0.0, 0.5]),          # only P3 (40 >= 25) stops
    (Spec("length", "l", 15, 2), [1.0, 0.5], [23.0, 28.0], [0.5, 0.5]),          # P1 (20) and P3 stop
])
def test_sc_points_at_the_recorded_cap(spec, per_seed_acc, per_seed_tokens, stopped):
    (point,) = curves.evaluate(SEEDS, [4], [spec], result)
    assert point["accuracy"]["values"] == per_seed_acc
    assert point["tokens"]["values"] == per_seed_tokens
    assert point["stopped"]["values"] == stopped
    assert point["knob"] == 4 and point["family"] == spec.family


def test_spread_over_seeds():
    s = curves.spread([1.0, 0.5])
    assert (s["mean"], s["min"], s["max"], s["n"]) == (0.75, 0.5, 1.0, 2)
    assert s["std"] == pytest.approx(0.353553, abs=1e-6)  # sample std (n-1)
    assert curves.spread([3.0])["std"] == 0.0
    (even,) = curves.evaluate(SEEDS, [4], [Spec("even", "even")], result)
    assert even["tokens"]["mean"] == 40.5 and even["tokens"]["std"] == pytest.approx(10.6066, abs=1e-4)


def test_subsample_keeps_arrival_order_and_is_seeded():
    p = profile("x", "1", [str(i) for i in range(10)], list(range(10)))
    a = offline.subsample(p, 4, random.Random("s"))
    assert [b.tokens for b in a.branches] == sorted(b.tokens for b in a.branches) and len(a.branches) == 4
    assert a == offline.subsample(p, 4, random.Random("s"))
    assert offline.subsample(p, 12, random.Random(0)) is p


def test_sc_below_the_recorded_cap_averages_subsets():
    uniform = profile("u", "1", list("1111"), [3, 3, 3, 3])
    assert offline.sc_result(uniform, 2, Spec("even", "even")) == offline.Result(1.0, 6.0, 0.0, 0.0)
    mixed = profile("m", "1", list("1100"), [1, 1, 1, 1])
    r = offline.sc_result(mixed, 1, Spec("even", "even"), resamples=200)  # one branch: right half the time
    assert 0.35 < r.correct < 0.65 and r.tokens == 1.0
    assert offline.sc_result(mixed, 1, Spec("even", "even"), resamples=200) == r  # deterministic


def test_length_simulation_and_quantile():
    assert offline.replay_length_cap(P2, 11, 2).tokens == 11 and offline.replay_length_cap(P2, 12, 2).tokens == 26
    assert offline.replay_length_cap(P2, 0, 4).stopped is False  # no detection at the cap
    assert offline.detection_tokens(P3, 2) == 40
    assert quantile([8, 11, 20, 40], 0.5) == 15.5


def test_matched_tokens_interpolates_the_first_crossing():
    curve = [(30, 0.4), (10, 0.2), (40, 0.8), (20, 0.5)]
    assert curves.matched_tokens(curve, 0.35) == pytest.approx(15.0)
    assert curves.matched_tokens(curve, 0.5) == pytest.approx(20.0)
    assert curves.matched_tokens(curve, 0.6) == pytest.approx(35.0)  # after the dip at 30
    assert curves.matched_tokens(curve, 0.2) == 10
    assert curves.matched_tokens(curve, 0.1) is None and curves.matched_tokens(curve, 0.9) is None
    assert curves.matched_tokens([], 0.5) is None


def test_savings_rows():
    specs = [Spec("even", "even"), Spec("certaindex", "c", 0.9, 2), Spec("length", "l", 25, 2)]
    rows = curves.savings(curves.evaluate(SEEDS, [4], specs, result))
    c, ell = rows
    assert c["even_tokens_matched"] == 40.5 and c["saved_matched"] == pytest.approx(1 - 25.5 / 40.5)
    assert c["saved_same_knob"] == pytest.approx(1 - 25.5 / 40.5) and c["even_accuracy_same_knob"] == 0.75
    assert ell["saved_matched"] == pytest.approx(1 - 30.5 / 40.5)
    assert curves.best_saving(rows) is c and curves.best_saving(rows, "none") is None
    text = curves.format_savings(rows, "cap")
    assert "+37.0%" in text and "saved@acc" in text


T1 = CoTTrace("t1", "8", (4, 4, 4, 3), ("2", "8", "8", "8"),
              (Probe("8", "8}", 2), Probe("8", "8}", 2), Probe("8", "8}", 2), None))
T3 = CoTTrace("t3", "6", (4, 2), ("1", "6"), (Probe("5", "5}", 2), None))


@pytest.mark.parametrize("trace, budget, window, expected", [
    (T1, 1, None, (0.0, 4.0, 0.0, 0.0)),   # uniform budget: truncated reasoning, no probes
    (T1, 2, None, (1.0, 8.0, 0.0, 0.0)),
    (T1, 4, None, (1.0, 15.0, 0.0, 0.0)),
    (T1, 4, 2, (1.0, 16.0, 4.0, 1.0)),     # exit at probe 2: chunks 1-2 + chunk 3 in flight + 2 probes
    (T1, 2, 2, (1.0, 12.0, 4.0, 0.0)),     # the probe after the budget's last chunk is paid, not judged
    (T1, 9, 3, (1.0, 21.0, 6.0, 1.0)),
    (T3, 2, 1, (0.0, 8.0, 2.0, 1.0)),      # a one-probe window exits on the wrong early answer
    (T3, 2, 2, (1.0, 8.0, 2.0, 0.0)),      # the model finished: the reasoning's answer
])
def test_cot_replay(trace, budget, window, expected):
    assert offline.replay_cot(trace, budget, window) == offline.Result(*expected)


def test_cot_hesitant_probe_never_agrees_and_json_round_trip():
    hesitant = CoTTrace("h", "8", (4, 4, 4), ("8", "8", "8"), (Probe("8", "8} wait", 2), Probe("8", "8}", 2), None))
    assert offline.replay_cot(hesitant, 3, 2).stopped == 0.0
    assert CoTTrace.from_json(json.loads(json.dumps(T1.to_json()))) == T1


R1 = RebaseTrace("r1", "3", 4, 2, ("3", "5", "5", "5"), (0.9, 0.2, 0.3, 0.3), 2, 50, 2, 100, 4)
R2 = RebaseTrace("r2", "5", 4, 2, ("3", "5", "5", "5"), (0.9, 0.2, 0.6, 0.6), 2, 50, 2, 100, 4)


@pytest.mark.parametrize("trace, width, spec, expected", [
    (R1, 2, Spec("even", "e"), (1.0, 50.0, 2.0, 0.0)),     # a width-2 run, not a stop
    (R1, 4, Spec("even", "e"), (1.0, 100.0, 4.0, 0.0)),    # weighted vote: "3" 0.9 > "5" 0.8
    (R2, 4, Spec("even", "e"), (1.0, 100.0, 4.0, 0.0)),    # "5" 1.4 > "3" 0.9
    (R2, 4, Spec("certaindex", "c", 0.8, 2), (0.0, 50.0, 2.0, 1.0)),  # max reward 0.9 stops it, wrongly
    (R2, 4, Spec("certaindex", "c", 0.95, 2), (1.0, 100.0, 4.0, 0.0)),
    (R1, 4, Spec("length", "l", 40, 2), (1.0, 50.0, 2.0, 1.0)),
    (R1, 4, Spec("length", "l", 60, 2), (1.0, 100.0, 4.0, 0.0)),
])
def test_rebase_replay(trace, width, spec, expected):
    assert offline.rebase_result(trace, width, spec) == offline.Result(*expected)


def test_rebase_point_only_at_recorded_widths():
    assert offline.rebase_result(R1, 3, Spec("even", "e")) is None
    assert offline.rebase_result(R1, 2, Spec("certaindex", "c", 0.5, 2)) is None
    assert RebaseTrace.from_json(json.loads(json.dumps(R1.to_json()))) == R1


def test_cot_trace_matches_probes_to_chunks():
    prompt = "Q: 2+2?\nA:"
    calls = [(prompt, Generation("two ", 4, "length")),
             (prompt + "two ", Generation("plus two ", 4, "length")),
             (prompt + "two " + PROBE_SUFFIX, Generation("3} ok", 3, "length")),
             (prompt + "two plus two ", Generation("is \\boxed{4}", 5, "stop")),
             (prompt + "two plus two " + PROBE_SUFFIX, Generation("4}", 2, "stop"))]
    t = record.cot_trace(Labelled("q", prompt, "4", 1), DynasorCoT(prompt), calls)
    assert t.chunk_tokens == (4, 4, 5) and t.chunk_answers == (None, None, "4") and t.level == 1
    assert t.probes == (Probe("3", "3} ok", 3), Probe("4", "4}", 2), None)


def test_cot_trace_matches_probes_to_chunks_by_token_ids():
    prompt = "Q: 2+2?\nA:"
    program = DynasorCoT(prompt)
    program.ids = ReasoningIds(prompt=[1, 2], suffix=[9, 9])
    calls = [([1, 2], Generation("two ", 2, "length", output_ids=(5, 6))),
             ([1, 2, 5, 6], Generation("plus two ", 2, "length", output_ids=(7, 8))),
             ([1, 2, 5, 6, 9, 9], Generation("3} ok", 3, "length")),
             ([1, 2, 5, 6, 7, 8], Generation("is \\boxed{4}", 1, "stop", output_ids=(3,))),
             ([1, 2, 5, 6, 7, 8, 9, 9], Generation("4}", 2, "stop"))]
    t = record.cot_trace(Labelled("q", prompt, "4", 1), program, calls)
    assert t.chunk_tokens == (2, 2, 1) and t.chunk_answers == (None, None, "4")
    assert t.probes == (Probe("3", "3} ok", 3), Probe("4", "4}", 2), None)


class FakeEngine:
    """CoT: chunk k < 2 returns "step " (its full token budget), chunk 2 ends with an answer, every
    probe answers "4}"; Rebase steps answer "\\boxed{3}" in one 5-token step."""

    async def tokenize(self, text, add_special_tokens=True):
        return None  # no tokenizer: the program sends text

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        await asyncio.sleep(0)
        if prompt.endswith(PROBE_SUFFIX):
            return Generation("4} done", 3, "length")
        if "stop" in params and params.get("max_new_tokens") == 24:  # a Rebase step
            return Generation("x \\boxed{3}", 5, "stop", {"finish_reason": {"type": "stop", "matched": "\n"}})
        if prompt.count("step ") == 2:
            return Generation("so \\boxed{4}", 5, "stop")
        return Generation("step ", params["max_new_tokens"], "length")

    async def stop_program(self, program_id):
        raise AssertionError("recording never stops a program")


class FakeJudge:
    async def score(self, question, steps, program_id=None, usage=None):
        usage.calls += 1
        usage.completion_tokens += 1
        return 0.5


def test_recorders_over_a_fake_engine():
    items = [Labelled("a", "Q: a?\nA:", "4", 1), Labelled("b", "Q: b?\nA:", "3", 2)]
    traces, _ = asyncio.run(record.record_cot(FakeEngine(), items, 8, 48, {"stop": ["\n"]},
                                              {"max_new_tokens": 8}, concurrency=2))
    assert [t.chunk_tokens for t in traces] == [(8, 8, 5)] * 2
    assert traces[0].probes[:2] == (Probe("4", "4} done", 3),) * 2 and traces[0].probes[2] is None
    assert offline.replay_cot(traces[0], 6, None).correct == 1.0
    assert offline.replay_cot(traces[1], 6, 2) == offline.Result(0.0, 27.0, 6.0, 1.0)  # chunk 3 in flight
    step = {"temperature": 0.8, "max_new_tokens": 24, "stop": ["\n"]}
    rebase, _ = asyncio.run(record.record_rebase(FakeEngine(), FakeJudge(), items, 4, 2, step, 3, concurrency=2))
    r = rebase[1]
    assert (r.width, r.detect_at, r.first, len(r.answers)) == (4, 2, 2, 4)
    assert (r.tokens_first, r.judge_first, r.tokens, r.judge_tokens) == (12, 2, 24, 4) and r.gold == "3"
    assert offline.rebase_result(r, 4, Spec("certaindex", "c", 0.5, 2)) == offline.Result(1.0, 12.0, 2.0, 1.0)


def records_fixture():
    sc = [{"seed": s, **p.to_json()} for s, ps in SEEDS.items() for p in ps]
    cot = [{"seed": s, **t.to_json()} for s, t in ((0, T1), (1, T3))]
    rebase = [{"seed": s, **t.to_json()} for s, t in ((0, R1), (1, R2))]
    return {"sc": sc, "cot": cot, "rebase": rebase, "live_sc": None, "wall_seconds": {"sc": 1.0}, "sampling": {}}


def test_analysis_per_level_and_length_thresholds():
    w = analysis.analyse_sc(records_fixture()["sc"], [2, 4, 8], 2, [0.9], [0.5], resamples=4)
    assert w["config"]["caps"] == [2, 4] and w["config"]["length_thresholds"] == [16]  # median of 8, 11, 20, 40
    assert set(w["by_level"]) == {"1", "2"} and w["by_level"]["1"]["programs"] == 2
    assert {p["policy"] for p in w["points"]} == {"even", "certaindex H>=0.9@2", "length >=16 tok@2"}
    cot = analysis.analyse_cot(records_fixture()["cot"], 4, 16, [2])
    assert cot["config"]["budgets"] == [4, 8, 12, 16] and cot["by_level"] == {}
    rb = analysis.analyse_rebase(records_fixture()["rebase"], [0.8], [0.5])
    assert rb["config"]["widths"] == [2, 4] and len(rb["points"]) == 2 + 1 + 1


def test_cli_end_to_end_without_a_server(tmp_path, monkeypatch, capsys):
    async def fake_record(url, sets, args):
        assert url == "http://unused" and list(sets) == [0, 1] and all(len(v) == 3 for v in sets.values())
        return records_fixture()

    monkeypatch.setattr(bench_batch, "record", fake_record)
    report = bench_batch.main(["--quick", "--url", "http://unused", "--n", "3", "--seeds", "0,1", "--caps", "4",
                               "--detect-at", "2", "--cot-chunk", "4", "--cot-budget", "16",
                               "--rebase-widths", "4", "--out-dir", str(tmp_path), "--tag", "t"])
    saved = json.loads((tmp_path / "batch_t.json").read_text())
    assert saved["benchmark"] == "batch" and saved["quick"] and "SMALL-SCALE" in saved["label"]
    assert set(saved["workloads"]) == {"sc", "cot", "rebase"} and saved["seeds"] == [0, 1]
    third = 1 / 3  # the quick preset's level mix 0:1,1:1,2:1, written into the results
    assert saved["problems"]["0"]["levels"] == {"0": third, "1": third, "2": third} and saved["machine"]["cpu_count"]
    for name in ("sc", "cot", "rebase"):
        assert (tmp_path / f"batch_t_{name}.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "savings at matched accuracy" in out and "level 2" in out
    again = bench_batch.main(["--from-records", str(tmp_path / "batch_t.records.json"), "--out-dir", str(tmp_path),
                              "--tag", "t2", "--caps", "4", "--detect-at", "2", "--rebase-widths", "4",
                              "--cot-budget", "16"])
    assert again["workloads"]["sc"]["points"] == report["workloads"]["sc"]["points"]
    assert again["workloads"]["cot"]["config"]["chunk_tokens"] == 4  # the recorded chunk, not the preset's


def test_cli_help_runs_as_a_script():
    proc = subprocess.run([sys.executable, "-m", "benchmark.batch.bench_batch", "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--from-records" in proc.stdout and "--quick" in proc.stdout


class FakeClient:
    """Stands in for AsyncDynasorClient: every branch / step / chunk answers "\\boxed{4}" and ends its
    line, probes answer "4}", the judge says " Yes" with probability 0.9."""

    aborted: list = []

    def __init__(self, url, *args, **kwargs):
        self.url = url

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def tokenize(self, text, add_special_tokens=True):
        return None  # this fake answers by prompt text: CoT falls back to sending text

    async def generate(self, prompt, sampling_params=None, program=None, **kwargs):
        await asyncio.sleep(0)
        if kwargs.get("return_logprob"):
            meta = {"completion_tokens": 1, "prompt_tokens": 40, "finish_reason": {"type": "length"},
                    "output_top_logprobs": [[[-0.1053605, 1, " Yes"], [-2.3025851, 2, " No"]]]}
            return {"text": " Yes", "meta_info": meta}
        if prompt.endswith(PROBE_SUFFIX):
            return {"text": "4}", "meta_info": {"completion_tokens": 2, "finish_reason": {"type": "length"}}}
        return {"text": " 2 + 2 = 4. The answer is \\boxed{4}.",
                "meta_info": {"completion_tokens": 12, "finish_reason": {"type": "stop", "matched": "\n"}}}

    async def abort_program(self, program_id):
        FakeClient.aborted.append(program_id)
        return {}


def test_live_recording_plumbing_against_a_fake_server(tmp_path, monkeypatch):
    import dynasor.client

    monkeypatch.setattr(dynasor.client, "AsyncDynasorClient", FakeClient)
    report = bench_batch.main(["--quick", "--url", "http://fake", "--n", "2", "--seeds", "0,1,2", "--live-n", "2",
                               "--caps", "4,8,12,16", "--out-dir", str(tmp_path)])
    records = json.loads((tmp_path / "batch_quick.records.json").read_text())
    assert len(records["sc"]) == 6 and all(len(p["branches"]) == 16 for p in records["sc"])
    assert len(records["cot"]) == 6 and records["cot"][0]["chunk_tokens"] == [12]  # the line ended
    assert len(records["rebase"]) == 6 and records["rebase"][0]["judge_tokens"] == 4
    assert records["rebase"][0]["rewards"] == pytest.approx([0.9] * 4, abs=1e-6)
    live = records["live_sc"]
    # unanimous at 4: stopped (the fake answers at once, so no branch is left outstanding to abort)
    assert live["stopped"] == 1.0 and live["n"] == 2 and len(FakeClient.aborted) <= 2
    sc = report["workloads"]["sc"]
    even16 = next(p for p in sc["points"] if p["policy"] == "even" and p["knob"] == 16)
    golds = [[p["gold"] == "4" for p in records["sc"] if p["seed"] == s] for s in (0, 1, 2)]
    assert even16["tokens"]["mean"] == 16 * 12 and even16["accuracy"]["values"] == [sum(g) / 2 for g in golds]
    row = next(r for r in sc["savings"] if r["policy"] == "certaindex H>=0.7@4" and r["knob"] == 16)
    # unanimous at 4: a quarter of the cap-16 tokens, but even at cap 4 is as accurate (no saving there)
    assert row["saved_same_knob"] == pytest.approx(0.75) and row["saved_matched"] == pytest.approx(0.0)
    assert sc["live"][0]["policy"].startswith("live certaindex")
    assert report["server"] == {"url": "http://fake", "started_here": False}
