"""dynasor.frontend on the live server: an ``sgl.function`` run (gen, fork branches, select) is ONE
program holding all its requests; ``fork_until_certain`` stops early on an easy problem and its
aborted branches show in the program's summary; the examples run.

Programs are read right after they finish: the test server keeps done programs for 10 s only."""

import subprocess
import sys
import time
from pathlib import Path

import sglang as sgl

from dynasor.client import DynasorClient
from dynasor.frontend import DynasorEndpoint, fork_until_certain, program_id, run_program, set_remaining_work

from .conftest import MAX_RUNNING

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
THREE_SHOT = (
    "Q: What is 2 + 3?\nA: 2 + 3 = 5. The answer is \\boxed{5}.\n\n"
    "Q: What is 7 - 4?\nA: 7 - 4 = 3. The answer is \\boxed{3}.\n\n"
    "Q: What is 6 + 1?\nA: 6 + 1 = 7. The answer is \\boxed{7}.\n\n"
)


@sgl.function
def reason_then_branch(s, question):
    s += THREE_SHOT + question
    s += sgl.gen("first", max_tokens=12, stop="\n")
    set_remaining_work(s, 3 * 12)
    branches = s.fork(3)
    branches += "\nQ: Check it again.\nA:" + sgl.gen("check", max_tokens=12, stop="\n")
    branches.join()
    s += "\nQ: Is that right?\nA:" + sgl.select("verdict", choices=[" yes", " no"])


# the gen and the 3 branches; the fork's prefix commit and select's scoring are prefill-only
# requests (max_new_tokens 0), which the program table does not count as work
DONE_4 = {"waiting": 0, "running": 0, "finished": 4, "aborted": 0, "total": 4}


def test_frontend_program_with_fork_and_select_is_one_program(url):
    started = time.time()
    state, pid = run_program(reason_then_branch, backend=DynasorEndpoint(url), question="Q: What is 2 + 2?\nA:",
                             temperature=0.5)
    assert state["verdict"] in (" yes", " no") and len(state["check"]) == 3
    with DynasorClient(url) as client:
        summary = client.program(pid)
        fresh = [p["program_key"] for p in client.programs() if p["first_arrival"] >= started]
    print(f"\n[frontend] program {summary['program_key']}: {summary['requests']}, "
          f"{summary['generated_tokens']} tokens, hint {summary['remaining_work_hint']}")
    assert summary["requests"] == DONE_4 and summary["state"] == "done"
    assert summary["remaining_work_hint"] == 36.0
    assert fresh == [summary["program_key"]]  # the branches made no programs of their own


def test_run_batch_on_the_endpoint_makes_each_run_one_program(url):
    questions = ["Q: What is 3 + 3?\nA:", "Q: What is 5 - 1?\nA:"]
    states = reason_then_branch.run_batch([{"question": q} for q in questions], backend=DynasorEndpoint(url),
                                          temperature=0.5, num_threads=2)
    for state in states:
        state.sync()
    ids = [program_id(state) for state in states]
    assert len(set(ids)) == 2
    with DynasorClient(url) as client:
        assert [client.program(pid)["requests"] for pid in ids] == [DONE_4, DONE_4]


@sgl.function
def vote(s, question, n_max):
    s += THREE_SHOT + question
    s["result"] = fork_until_certain(s, n_max=n_max, detect_at=5, threshold=0.7, name="sample",
                                     max_tokens=24, stop="\n", temperature=0.1)


def test_fork_until_certain_stops_early_and_aborts_the_rest(url):
    n_max = MAX_RUNNING + 8  # more branches than running slots: some still wait at the detection
    started = time.monotonic()
    state, pid = run_program(vote, backend=DynasorEndpoint(url), question="Q: What is 4 + 1?\nA:", n_max=n_max)
    result = state["result"]
    with DynasorClient(url) as client:
        summary = client.program(pid)
    print(f"\n[fork_until_certain] answer {result.answer}, certaindex {result.certaindex:.2f}, "
          f"{len(result.answers)} answered / {result.aborted} aborted of {result.started}, "
          f"{result.completion_tokens} tokens, {time.monotonic() - started:.1f}s; engine: {summary['requests']}")
    assert result.stopped_early and result.answer is not None
    assert result.started == n_max and result.aborted > 0
    assert summary["requests"]["aborted"] == result.aborted
    assert summary["requests"]["finished"] == len(result.answers)
    assert summary["requests"]["total"] == n_max and summary["state"] == "done"


def test_examples_run_against_the_server(url):
    for script, args in (("self_consistency_fork.py", ["--n-max", "8", "--max-tokens", "24"]),
                         ("cot.py", ["--max-chunks", "6"])):
        done = subprocess.run([sys.executable, str(EXAMPLES / script), "--url", url, *args],
                              capture_output=True, text=True, timeout=120)
        print(f"\n[{script}]\n{done.stdout}")
        assert done.returncode == 0, done.stderr[-2000:]
        assert "answer:" in done.stdout


@sgl.function
def short_answer(s, question):
    s += THREE_SHOT + question
    s += sgl.gen("answer", max_tokens=12, stop="\n")


def test_a_streamed_run_is_one_program_and_streams_its_text(url):
    endpoint = DynasorEndpoint(url).bind()
    state = short_answer.run(question="Q: What is 1 + 1?\nA:", backend=endpoint, stream=True, temperature=0.5)
    pieces = list(state.text_iter("answer"))
    assert state.error() is None and "".join(pieces) == state["answer"] and pieces
    with DynasorClient(url) as client:
        summary = client.program(endpoint.bound_program.program_id)
    assert summary["requests"]["finished"] == 1 and summary["requests"]["total"] == 1
