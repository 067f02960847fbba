from dynasor.core.tag import program_key as hmac_key
from dynasor.scheduler.program_summary import merge_summaries
from dynasor.scheduler.program_table import ProgramTable


def program_key(pid):
    return hmac_key(pid, b"")  # ProgramTable() uses an empty secret

A = "program-a-0000000001"
B = "program-b-0000000002"


def counts(table, pid):
    return table.get(pid).summary()["requests"]


def test_lifecycle_counts_tokens_and_times():
    t = ProgramTable(ttl=10)
    t.on_arrival("r1", A, prompt_tokens=5, now=1.0)
    t.on_arrival("r2", A, prompt_tokens=5, now=2.0)
    t.on_arrival("r3", B, prompt_tokens=7, now=2.5)
    assert counts(t, A) == {"waiting": 2, "running": 0, "finished": 0, "aborted": 0, "total": 2}
    assert t.get(A).summary()["state"] == "waiting"

    t.on_admitted("r1", now=3.0)
    t.on_progress("r1", 4, now=3.5)
    t.on_progress("r1", 4, now=9.0)  # no new token: not a service event
    assert t.get(A).last_service == 3.5
    assert counts(t, A)["running"] == 1 and t.get(A).summary()["state"] == "running"

    t.on_finished("r1", aborted=False, now=4.0)
    t.on_finished("r2", aborted=True, now=4.5)  # aborted while waiting
    s = t.get(A).summary()
    assert s["requests"] == {"waiting": 0, "running": 0, "finished": 1, "aborted": 1, "total": 2}
    assert (s["prompt_tokens"], s["generated_tokens"], s["first_arrival"], s["state"]) == (10, 4, 1.0, "done")
    assert t.get(B).summary()["prompt_tokens"] == 7
    assert "r1" not in t.requests and t.program_of("r3") == B


def test_summary_reveals_no_ids():
    t = ProgramTable()
    t.on_arrival("secret-rid", A, 3, now=0.0)
    text = repr(t.snapshot(0.0))
    assert A not in text and "secret-rid" not in text
    assert program_key(A) in t.snapshot(0.0)


def test_requeue_after_retraction_and_idempotent_events():
    t = ProgramTable()
    t.on_arrival("r1", A, 3, now=0.0)
    t.on_admitted("r1", now=1.0)
    t.on_arrival("r1", A, 3, now=2.0)  # re-queued by the engine: not a second request
    assert counts(t, A) == {"waiting": 1, "running": 0, "finished": 0, "aborted": 0, "total": 1}
    assert t.get(A).prompt_tokens == 3
    t.on_admitted("r1", now=3.0)
    t.on_admitted("r1", now=4.0)
    t.on_finished("r1", aborted=False, now=5.0)
    t.on_finished("r1", aborted=False, now=6.0)
    t.on_progress("unknown", 3, now=6.0)
    assert counts(t, A)["finished"] == 1


def test_done_programs_expire_after_ttl_but_live_ones_stay():
    t = ProgramTable(ttl=10)
    t.on_arrival("r1", A, 1, now=0.0)
    t.on_arrival("r2", B, 1, now=0.0)
    t.on_finished("r1", aborted=False, now=1.0)
    assert t.expire(now=10.9) == 0 and t.get(A) is not None
    assert t.expire(now=11.0) == 1
    assert t.get(A) is None and t.get(B) is not None
    assert t.expire(now=1000.0) == 0 and t.get(B) is not None


def test_a_returning_program_is_not_expired():
    t = ProgramTable(ttl=10)
    t.on_arrival("r1", A, 1, now=0.0)
    t.on_finished("r1", aborted=False, now=1.0)
    t.on_arrival("r2", A, 1, now=5.0)
    assert t.expire(now=100.0) == 0
    assert t.get(A).summary()["requests"]["total"] == 2


def test_done_programs_are_capped():
    t = ProgramTable(ttl=1e9, max_done_programs=3)
    for i in range(10):
        pid = f"program-{i:012d}"
        t.on_arrival(f"r{i}", pid, 1, now=float(i))
        t.on_finished(f"r{i}", aborted=False, now=float(i))
    assert len(t) == 3
    assert t.get("program-000000000009") is not None and t.get("program-000000000000") is None


def test_merge_across_data_parallel_ranks():
    r0, r1 = ProgramTable(), ProgramTable()
    r0.on_arrival("x", A, 4, now=2.0)
    r0.on_admitted("x", now=3.0)
    r0.on_progress("x", 6, now=3.0)
    r1.on_arrival("y", A, 5, now=1.0)
    r1.on_arrival("z", B, 1, now=1.0)
    merged = merge_summaries([r0.snapshot(0.0), r1.snapshot(0.0)])
    a = merged[program_key(A)]
    assert a["requests"]["running"] == 1 and a["requests"]["waiting"] == 1 and a["requests"]["total"] == 2
    assert (a["prompt_tokens"], a["generated_tokens"], a["first_arrival"], a["last_service"]) == (9, 6, 1.0, 3.0)
    assert a["state"] == "running"
    assert merged[program_key(B)]["requests"]["waiting"] == 1
    assert r0.snapshot(0.0)[program_key(A)]["requests"]["waiting"] == 0  # inputs not mutated
    assert a["dp_ranks"] == [0, 1] and merged[program_key(B)]["dp_ranks"] == [1]
    by_rank_number = merge_summaries([r1.snapshot(0.0), r0.snapshot(0.0)], ranks=[1, 0])
    assert by_rank_number[program_key(B)]["dp_ranks"] == [1]


def test_token_stats_aggregates_mean_entropy_and_lowest_window_confidence():
    t = ProgramTable(confidence_window=3)
    t.on_arrival("r1", A, 2, now=0.0, token_stats=True)
    t.on_arrival("r2", A, 2, now=0.0)  # did not ask
    assert t.live_token_stats_requests == 1 and t.wants_token_stats("r1") and not t.wants_token_stats("r2")
    for entropy, conf in [(1.0, 5.0), (2.0, 4.0), (3.0, 3.0), (0.0, 1.0), (0.0, 8.0)]:
        t.on_token_stats("r1", entropy, conf)
        t.on_token_stats("r2", 9.0, 9.0)  # ignored
    rec = t.requests["r1"].token_stats
    assert rec.mean_entropy == 6.0 / 5
    # windows of 3: (5,4,3)=4, (4,3,1)=8/3, (3,1,8)=4 -> lowest 8/3
    assert rec.lowest_window_confidence == 8.0 / 3
    t.on_finished("r1", aborted=False, now=1.0)
    t.on_finished("r2", aborted=False, now=1.0)
    s = t.get(A).summary()
    assert s["mean_entropy"] == 6.0 / 5
    assert s["finished_request_token_stats"] == [
        {"tokens": 5, "mean_entropy": 6.0 / 5, "lowest_window_confidence": 8.0 / 3, "aborted": False}
    ]
    assert t.live_token_stats_requests == 0


def test_short_request_confidence_is_its_mean():
    t = ProgramTable(confidence_window=100)
    t.on_arrival("r", A, 1, now=0.0, token_stats=True)
    t.on_token_stats("r", 0.5, 2.0)
    t.on_token_stats("r", 0.5, 4.0)
    assert t.requests["r"].token_stats.lowest_window_confidence == 3.0


def test_remaining_work_from_history_prior_and_hint():
    t = ProgramTable(default_output_tokens=100.0)
    t.on_arrival("a1", A, 5, now=0.0, max_new_tokens=1000)
    t.on_arrival("a2", A, 5, now=0.0, max_new_tokens=30)
    # no history anywhere: the prior, capped by each request's max_new_tokens
    assert t.remaining_work(t.get(A)) == 100 + 30
    t.on_admitted("a1", now=1.0)
    t.on_progress("a1", 40, now=2.0)
    assert t.remaining_work(t.get(A)) == 60 + 30
    t.on_finished("a1", aborted=False, now=3.0)  # program locality: A's branches produce 40 tokens
    t.on_arrival("a3", A, 5, now=3.0, max_new_tokens=1000)
    assert t.remaining_work(t.get(A)) == 30 + 40
    # a new program with no history uses the server-wide mean (40)
    t.on_arrival("b1", B, 5, now=3.0, max_new_tokens=1000)
    assert t.remaining_work(t.get(B)) == 40
    # the client's hint wins and counts down with generated tokens
    t.on_arrival("b2", B, 5, now=4.0, remaining_work=500)
    t.on_admitted("b1", now=4.0)
    t.on_progress("b1", 120, now=5.0)
    assert t.remaining_work(t.get(B)) == 380
    view = t.view(B)
    assert view.remaining_work == 380 and view.in_service
    assert t.view(B) is view  # nothing changed: the cached view is reused
    t.on_progress("b1", 130, now=6.0)
    assert t.view(B).remaining_work == 370


def test_view_of_a_program_without_history_follows_the_server_prior():
    t = ProgramTable(default_output_tokens=100.0)
    t.on_arrival("a1", A, 5, now=0.0)
    assert t.view(A).remaining_work == 100
    t.on_arrival("b1", B, 5, now=0.0)
    t.on_admitted("b1", now=1.0)
    t.on_progress("b1", 40, now=2.0)
    t.on_finished("b1", aborted=False, now=3.0)  # the server-wide mean output is now 40
    assert t.view(A).remaining_work == 40


def test_snapshot_shows_estimates_waiting_time_and_escalations():
    t = ProgramTable(default_output_tokens=10.0)
    t.on_arrival("r1", A, 1, now=100.0, max_new_tokens=50)
    t.on_escalated(A)
    t.on_escalated(A)  # still the same escalation
    s = t.snapshot(now=130.0)[program_key(A)]
    assert (s["estimated_remaining_work"], s["waiting_time"], s["escalations"]) == (10.0, 30.0, 1)
    t.on_admitted("r1", now=131.0)
    t.on_escalated(A)
    assert t.snapshot(now=131.0)[program_key(A)]["escalations"] == 2


def test_merge_weights_mean_entropy_by_tokens_and_keeps_all_request_stats():
    r0, r1 = ProgramTable(), ProgramTable()
    for table, rid, values in ((r0, "x", [1.0, 1.0, 1.0]), (r1, "y", [4.0])):
        table.on_arrival(rid, A, 1, now=0.0, token_stats=True)
        for v in values:
            table.on_token_stats(rid, v, 1.0)
        table.on_finished(rid, aborted=False, now=1.0)
    merged = merge_summaries([r0.snapshot(1.0), r1.snapshot(1.0)])[program_key(A)]
    assert merged["mean_entropy"] == 7.0 / 4 and merged["entropy_tokens"] == 4
    assert sorted(s["tokens"] for s in merged["finished_request_token_stats"]) == [1, 3]


def test_events_report_program_start_done_and_new_escalations():
    t = ProgramTable()
    assert t.on_arrival("r1", A, 1, now=0.0) is True
    assert t.on_arrival("r2", A, 1, now=1.0) is False
    assert t.on_finished("r1", aborted=False, now=2.0) is None  # r2 still waits
    assert t.on_escalated(A) is True and t.on_escalated(A) is False
    done = t.on_finished("r2", aborted=True, now=5.0)
    assert done is t.get(A) and done.idle_since - done.first_arrival == 5.0
    assert t.on_finished("r2", aborted=True, now=6.0) is None


def test_live_program_count():
    t = ProgramTable()
    t.on_arrival("a1", A, 1, now=0.0)
    t.on_arrival("a2", A, 1, now=0.0)
    t.on_arrival("b1", B, 1, now=0.0)
    assert t.live_programs == 2
    t.on_finished("a1", aborted=False, now=1.0)
    t.on_finished("b1", aborted=False, now=1.0)
    assert t.live_programs == 1
    t.on_arrival("b2", B, 1, now=2.0)  # a done program comes back
    assert t.live_programs == 2


def test_kept_waiting_work_equals_a_fresh_sum_after_any_events():
    """The waiting part of the remaining-work estimate is kept up to date event by event; after every
    event it equals the sum computed afresh."""
    import random

    import pytest

    rng = random.Random(3)
    t = ProgramTable(default_output_tokens=40.0)
    rids: list[str] = []
    for step in range(400):
        action = rng.random()
        now = float(step)
        if action < 0.35 or not rids:
            rid = f"q{step}"
            t.on_arrival(rid, rng.choice([A, B]), 4, now=now, max_new_tokens=rng.choice([None, 8, 64, 512]))
            rids.append(rid)
        elif action < 0.55:
            t.on_admitted(rng.choice(rids), now=now)
        elif action < 0.7:
            rid = rng.choice(rids)
            rec = t.requests.get(rid)
            if rec is not None:
                t.on_progress(rid, rec.generated_tokens + rng.randrange(1, 30), now=now)
        elif action < 0.8:
            t.on_requeued(rng.choice(rids), now=now)
        else:
            rid = rng.choice(rids)
            t.on_finished(rid, aborted=rng.random() < 0.3, now=now)
            rids.remove(rid)
        for pid in (A, B):
            prog = t.get(pid)
            if prog is None:
                continue
            kept = t.remaining_work(prog)
            prog.waiting_work = None
            assert kept == pytest.approx(t.remaining_work(prog)), f"step {step}"


def test_a_program_defers_until_its_last_request_that_is_not_deferred_ends():
    table = ProgramTable()
    table.on_arrival("a1", "A" * 16, 4, now=0.0)
    table.on_arrival("a2", "A" * 16, 4, now=0.0, deferred=True)
    assert table.view("A" * 16).deferring and table.requests["a2"].deferred
    table.on_admitted("a1", now=1.0)
    assert table.view("A" * 16).deferring  # running still counts
    table.on_finished("a1", aborted=False, now=2.0)
    assert not table.view("A" * 16).deferring and "A" * 16 in table.drain_changed()
    table.on_arrival("a3", "A" * 16, 4, now=3.0)  # a new request that is not deferred: held back again
    assert table.view("A" * 16).deferring


def test_a_confidence_stop_fires_once_when_a_full_window_falls_below_the_threshold():
    table = ProgramTable(confidence_window=2048)
    pid = "P" * 16
    table.on_arrival("r", pid, 4, now=0.0, token_stats=True, confidence_window=3, stop_below_confidence=5.0)
    table.on_arrival("plain", pid, 4, now=0.0, token_stats=True)
    fired = [table.on_token_stats("r", 0.1, c) for c in (1.0, 9.0, 9.0, 9.0, 4.0, 1.0, 1.0, 1.0)]
    # windows of 3: (1,9,9) 6.33, (9,9,9) 9, (9,9,4) 7.33, (9,4,1) 4.67 < 5 -> fires once, never again
    assert fired == [False, False, False, False, False, True, False, False]
    assert not any(table.on_token_stats("plain", 0.1, 0.0) for _ in range(10))  # no threshold: never
    assert table.programs[pid].low_confidence_stops == 0  # counted when the stop has ended the request
    assert table.requests["plain"].token_stats.window == 2048  # the table's window unless the tag names one
    table.on_finished("r", aborted=True, now=1.0)
    assert table.programs[pid].low_confidence_stops == 1
    assert table.snapshot(1.0)[table.programs[pid].key]["low_confidence_stops"] == 1


def test_a_request_that_crossed_on_its_last_token_and_finished_is_not_a_stop():
    table = ProgramTable()
    pid = "Q" * 16
    table.on_arrival("r", pid, 4, now=0.0, token_stats=True, confidence_window=1, stop_below_confidence=5.0)
    assert table.on_token_stats("r", 0.1, 1.0)  # crossed: the engine is asked to end it ...
    table.on_finished("r", aborted=False, now=1.0)  # ... but it reached its last token first
    assert table.programs[pid].low_confidence_stops == 0 and table.programs[pid].finished == 1
