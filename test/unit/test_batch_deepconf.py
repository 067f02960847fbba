"""DeepConf replayed on recorded branches (``benchmark.batch.offline_deepconf``): hand-computable
profiles with per-token confidences, checked against the live program's rules."""

import pytest

from benchmark.batch.analysis import DeepConfGrid, analyse_sc
from benchmark.batch.offline import deepconf_specs, sc_result
from benchmark.batch.offline_deepconf import engine_stop_tokens, replay_deepconf
from dynasor.program_runtime.replay import Branch, Profile
from dynasor.programs.deepconf import DeepConf
from dynasor.scheduler.token_stats_aggregate import first_window_below

SURE, UNSURE = (5.0, 5.0, 5.0, 5.0), (5.0, 1.0, 1.0, 5.0)  # window 2: lowest means 5.0 and 1.0


def branch(answer, confidences):
    return Branch(answer, len(confidences), tuple(confidences))


def test_the_window_check_starts_at_a_full_window_and_fires_on_the_first_low_one():
    assert first_window_below([1.0, 5.0, 5.0], 2, 2.0) is None  # token 1 alone is not a window
    assert first_window_below([5.0, 5.0, 1.0, 1.0], 2, 3.5) == 3  # windows 5, 3 < 3.5
    assert first_window_below([5.0, 5.0, 1.0, 1.0], 2, 3.0) == 4  # 3 is not below 3; then 1
    assert first_window_below([5.0, 5.0], 2, 3.0) is None


def test_a_branch_is_charged_one_token_past_the_crossing_and_one_crossing_at_its_end_finishes():
    assert engine_stop_tokens((5.0, 1.0, 1.0, 5.0), 4, 2, 4.0) == 3  # crosses at token 2
    assert engine_stop_tokens((5.0, 5.0, 5.0, 1.0), 4, 2, 3.5) is None  # crosses at its last token
    assert engine_stop_tokens(None, 4, 2, 3.5) is None and engine_stop_tokens(SURE, 4, 2, None) is None


def test_online_warmup_sets_the_threshold_and_cuts_a_less_confident_later_branch():
    profile = Profile("p", "4", (branch("4", SURE), branch("4", (5.0, 4.0, 4.0, 5.0)), branch("9", UNSURE),
                                 branch("4", SURE)))
    conf = DeepConf("online", eta=0.5, warmup=2, window=2)  # threshold: median of 5.0 and 4.5 = 4.75
    out = replay_deepconf(profile, conf)
    assert out.cut_branches == 1 and out.answer == "4" and out.correct and not out.stopped
    assert out.tokens == 4 + 4 + 3 + 4  # the cut branch crossed at token 2
    assert replay_deepconf(profile, DeepConf("filter", 0.5, 2, 2)).tokens == 16  # offline runs everything


def test_offline_vote_is_the_programs_filtered_weighted_vote():
    branches = (branch("7", UNSURE), branch("7", UNSURE), branch("3", SURE))
    profile = Profile("p", "3", branches)
    assert replay_deepconf(profile, DeepConf("filter", eta=0.3, window=2)).answer == "3"  # keeps the sure one
    assert replay_deepconf(profile, DeepConf("filter", eta=1.0, window=2)).answer == "3"  # 5 vs 1 + 1
    assert replay_deepconf(profile, DeepConf("filter", eta=1.0, window=4)).answer == "7"  # means 3 + 3 vs 5


def test_certaindex_with_online_stops_at_the_detection_answer():
    profile = Profile("p", "4", tuple(branch("4", SURE) for _ in range(6)))
    conf = DeepConf("online", eta=0.5, warmup=2, window=2)
    out = replay_deepconf(profile, conf, threshold=0.7, detect_at=3)
    assert out.stopped and out.tokens == 12 and out.answer == "4"
    assert replay_deepconf(profile, conf, threshold=0.7, detect_at=6).tokens == 24  # detection at the cap: no stop


def test_specs_and_analysis_add_deepconf_only_for_recordings_with_confidences():
    specs = deepconf_specs([0.1, 0.9], 2, 2, [0.7], 3)
    assert [s.family for s in specs] == ["deepconf-offline"] * 2 + ["deepconf-online"] * 2 + ["certaindex+online"] * 2
    profile = Profile("p", "4", (branch("4", SURE), branch("9", UNSURE), branch("4", SURE), branch("4", SURE)), 1)
    assert sc_result(profile, 4, specs[2]).correct == 1.0
    rows = [{"seed": 0, **profile.to_json()}]
    grid = DeepConfGrid((0.5,), 2, 2)
    with_stats = analyse_sc(rows, [4], 3, [0.7], [0.5], 2, grid)
    assert {"deepconf-offline", "deepconf-online", "certaindex+online"} <= {p["family"] for p in with_stats["points"]}
    assert with_stats["config"]["deepconf"]["window"] == 2
    bare = Profile("p", "4", tuple(Branch(b.answer, b.tokens) for b in profile.branches), 1)
    without = analyse_sc([{"seed": 0, **bare.to_json()}], [4], 3, [0.7], [0.5], 2, grid)
    assert not any(p["family"].startswith("deepconf") for p in without["points"])
    assert without["config"]["deepconf"].startswith("not replayed")


def test_old_recordings_without_confidences_still_load():
    row = {"problem_id": "p", "gold": "4", "branches": [{"answer": "4", "tokens": 3}]}
    assert Profile.from_json(row).branches[0].confidences is None
    assert Profile.from_json(Profile("p", "4", (branch("4", SURE),)).to_json()).branches[0].confidences == SURE


@pytest.mark.parametrize("eta", [0.1, 0.9])
def test_online_with_warmup_at_the_cap_is_the_offline_filter(eta):
    profile = Profile("p", "3", (branch("7", UNSURE), branch("3", SURE), branch("7", UNSURE)))
    online = replay_deepconf(profile, DeepConf("online", eta, warmup=3, window=2))
    offline = replay_deepconf(profile, DeepConf("filter", eta, warmup=3, window=2))
    assert (online.answer, online.tokens, online.cut_branches) == (offline.answer, offline.tokens, 0)
