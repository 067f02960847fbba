"""dynasor.frontend against a fake SGLang HTTP server (real sockets, real sgl.function programs).

The fake records every request body and answers like SGLang's ``/get_model_info``, ``/generate``
(single, batch for ``select``, SSE stream) and Dynasor's program abort. The live test of the same
programs is test/integration/test_frontend.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
import sglang as sgl
from sglang.lang.backend.runtime_endpoint import RuntimeEndpoint
from sglang.srt.entrypoints.api_contract import generate_contract_error

from dynasor.certaindex import majority_vote
from dynasor.core.tag import TagError, parse_tag
from dynasor.frontend import (
    DynasorEndpoint,
    ProgramHandle,
    abort_program,
    as_endpoint,
    fork_until_certain,
    program_id,
    run_program,
    set_remaining_work,
)


class FakeSGLang:
    """Generation ``i`` (counting requests with ``max_new_tokens > 0``) answers ``reply(i, body)``:
    ``(text, finish_type)``, or ``None`` to block until the program is aborted (then ``abort``),
    or an int to fail with that HTTP status. Every ``/generate`` body must also pass SGLang's own
    HTTP contract gate (``generate_contract_error``), as on the real server."""

    def __init__(self, reply: Callable[[int, dict], Any] | None = None) -> None:
        self.reply = reply or (lambda i, body: (f" gen{i}", "length"))
        self.bodies: list[dict[str, Any]] = []
        self.aborts: list[str] = []
        self.aborted = threading.Event()
        self.lock = threading.Lock()
        self.generations = 0
        self.blocked = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, obj: Any, status: int = 200) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._json({"model_path": "fake/model", "is_generation": True})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.startswith("/dynasor/programs/"):
                    fake.aborts.append(self.path.split("/")[3])
                    fake.aborted.set()
                    return self._json({"aborted_requests": fake.blocked})
                error = generate_contract_error(body)
                if error is not None:
                    return self._json({"error": error}, 400)
                with fake.lock:
                    fake.bodies.append(body)
                fake.answer(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, handler: Any, body: dict[str, Any]) -> None:
        if isinstance(body.get("text"), list):  # select: logprobs of every choice, the one with "Paris" best
            return handler._json([{"meta_info": {
                "prompt_tokens": 4, "output_token_logprobs": [],
                "input_token_logprobs": [[-1.0, 1, "zz"], [-0.1 if "Paris" in t else -3.0, 2, "yy"]],
            }} for t in body["text"]])
        if body["sampling_params"].get("max_new_tokens") == 0:
            return handler._json({"text": "", "meta_info": {"prompt_tokens": 4, "completion_tokens": 0,
                                                            "finish_reason": {"type": "length"}}})
        with self.lock:
            i, self.generations = self.generations, self.generations + 1
        out = self.reply(i, body)
        if out is None:
            with self.lock:
                self.blocked += 1
            self.aborted.wait(10)
            out = (" partial", "abort")
        if isinstance(out, int):
            return handler._json({"error": {"message": "bad request"}}, out)
        text, finish = out
        meta = {"prompt_tokens": 4, "completion_tokens": 3, "finish_reason": {"type": finish}}
        if not body.get("stream"):
            return handler._json({"text": text, "meta_info": meta})
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        for end in range(1, len(text) + 1):
            handler.wfile.write(b"data: " + json.dumps({"text": text[:end], "meta_info": meta}).encode() + b"\n\n")
        handler.wfile.write(b"data: [DONE]\n\n")

    def tags(self) -> list[dict[str, Any]]:
        return [body["sampling_params"].get("custom_params", {}).get("dynasor") for body in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeSGLang]:
    server = FakeSGLang()
    yield server
    server.close()


@sgl.function
def reason_and_pick(s, question):
    s += question
    s += sgl.gen("thought", max_tokens=8)
    set_remaining_work(s, 40)
    forks = s.fork(2)
    forks += sgl.gen("idea", max_tokens=4)
    forks.join()
    s += " So the capital is" + sgl.select("city", choices=[" Paris", " Rome"])


def test_run_program_tags_every_request_with_one_program(fake):
    state, pid = run_program(reason_and_pick, backend=DynasorEndpoint(fake.url), question="Q: capital of France?")
    assert state["city"] == " Paris" and len(state["idea"]) == 2
    tags = fake.tags()
    # thought, fork prefix commit, 2 branches, select prefix + choice batch
    assert len(tags) == 6 and all(t is not None for t in tags)
    assert {t["program_id"] for t in tags} == {pid}
    assert all(parse_tag(t).program_id == pid for t in tags)
    assert "remaining_work" not in tags[0] and all(t["remaining_work"] == 40.0 for t in tags[1:])
    branch_bodies = [b for b in fake.bodies if b["sampling_params"].get("max_new_tokens") == 4]
    assert len(branch_bodies) == 2 and all(b["text"].endswith(" gen0") for b in branch_bodies)
    assert program_id(state) == pid


def test_run_program_takes_a_given_id_and_a_first_hint(fake):
    pid = "my-program-0123456789"
    run = run_program(reason_and_pick, backend=fake.url, program_id=pid, remaining_work=100, question="Q:")
    assert run.program_id == pid and run.state["city"] == " Paris"
    assert fake.tags()[0] == {"program_id": pid, "return_entropy": False, "remaining_work": 100.0}


def test_unbound_endpoint_makes_each_run_and_batch_item_its_own_program(fake):
    endpoint = DynasorEndpoint(fake.url)
    first = reason_and_pick.run(question="Q1", backend=endpoint)
    second = reason_and_pick.run(question="Q2", backend=endpoint)
    batch = reason_and_pick.run_batch([{"question": f"B{i}"} for i in range(3)], backend=endpoint, num_threads=3)
    ids = [program_id(s) for s in (first, second, *batch)]
    assert len(set(ids)) == 5
    by_prompt: dict[str, set[str]] = {}
    for body, tag in zip(fake.bodies, fake.tags()):
        text = body["text"][0] if isinstance(body["text"], list) else body["text"]
        by_prompt.setdefault(text[:2], set()).add(tag["program_id"])
    assert by_prompt == {"Q1": {ids[0]}, "Q2": {ids[1]}, "B0": {ids[2]}, "B1": {ids[3]}, "B2": {ids[4]}}


def test_run_batch_precache_stays_untagged_and_a_hint_does_not_end_the_trace(fake):
    prefix = "You are a careful calculator. Answer in one line, then stop.\n" * 2

    @sgl.function
    def hinted(s, q):
        set_remaining_work(s, 10)
        s += prefix + q + sgl.gen("a", max_tokens=2)

    for state in hinted.run_batch([{"q": "1"}, {"q": "2"}], backend=DynasorEndpoint(fake.url), num_threads=2):
        state.sync()
    untagged = [body["text"] for body, tag in zip(fake.bodies, fake.tags()) if tag is None]
    assert untagged == [prefix]  # run_batch's shared prefix (traced past the hint) belongs to no program
    assert sorted(tag["remaining_work"] for tag in fake.tags() if tag) == [10.0, 10.0]


def test_streaming_gen_is_tagged(fake):
    @sgl.function
    def story(s):
        s += "Once"
        s += sgl.gen("more", max_tokens=4)

    state, pid = run_program(story, backend=DynasorEndpoint(fake.url), stream=True)
    assert "".join(state.text_iter()) == "Once gen0"
    assert fake.bodies[0]["stream"] is True and fake.tags() == [{"program_id": pid, "return_entropy": False}]


def test_return_entropy_off_and_hint_cleared(fake):
    @sgl.function
    def two(s):
        set_remaining_work(s, 7)
        s += "a" + sgl.gen("x", max_tokens=2)
        set_remaining_work(s, None)
        s += sgl.gen("y", max_tokens=2)

    state, pid = run_program(two, backend=DynasorEndpoint(fake.url, return_entropy=False))
    state.sync()
    assert fake.tags() == [{"program_id": pid, "return_entropy": False, "remaining_work": 7.0},
                           {"program_id": pid, "return_entropy": False}]


def boxed(i: int, body: dict) -> tuple[str, str]:
    return (" so \\boxed{5}.", "stop")


@sgl.function
def vote(s, n_max, detect_at, width=None):
    s += "Q: What is 2 + 3?\nA:"
    s["result"] = fork_until_certain(s, n_max=n_max, detect_at=detect_at, threshold=0.7, width=width,
                                     max_tokens=16, temperature=0.1)


def test_fork_until_certain_stops_at_detection_and_aborts_the_rest():
    fake = FakeSGLang(lambda i, body: boxed(i, body) if i < 5 else None)
    try:
        state, pid = run_program(vote, backend=DynasorEndpoint(fake.url), n_max=8, detect_at=5)
    finally:
        fake.close()
    result = state["result"]
    assert result.stopped_early and result.answer == "5" and result.certaindex == 1.0
    assert result.started == 8 and result.aborted == 3 and result.answers == ["5"] * 5
    assert result.completion_tokens == 8 * 3 and result.program_id == pid
    assert fake.aborts == [pid]
    assert {t["program_id"] for t in fake.tags()} == {pid}


def test_fork_until_certain_runs_to_n_max_when_answers_scatter():
    fake = FakeSGLang(lambda i, body: (f" \\boxed{{{i}}}", "stop"))
    try:
        state, _ = run_program(vote, backend=DynasorEndpoint(fake.url), n_max=6, detect_at=3)
    finally:
        fake.close()
    result = state["result"]
    assert not result.stopped_early and result.started == 6 and result.aborted == 0
    assert sorted(result.answers) == [str(i) for i in range(6)] and result.certaindex == pytest.approx(0.0)
    assert fake.aborts == []


def test_fork_until_certain_grows_within_its_width(fake):
    fake.reply = boxed
    state, pid = run_program(vote, backend=DynasorEndpoint(fake.url), n_max=6, detect_at=3, width=2)
    result = state["result"]
    # 2 at first, one more per answer below detect_at, so the third answer stops with a fourth in flight
    assert result.stopped_early and result.started == 4
    assert len(result.answers) + result.aborted == 4 and fake.aborts == [pid]


@pytest.mark.filterwarnings("ignore:Error in stream_executor")  # SGLang's own report of the failed branch
def test_a_failing_branch_raises_after_aborting_the_rest():
    fake = FakeSGLang(lambda i, body: 400 if i == 0 else None)
    try:
        with pytest.raises(RuntimeError, match="branch failed"):
            run_program(vote, backend=DynasorEndpoint(fake.url), n_max=3, detect_at=2)
    finally:
        fake.close()
    assert len(fake.aborts) == 1


def test_abort_program_and_argument_checks(fake):
    @sgl.function
    def stop_me(s):
        s += "x" + sgl.gen("y", max_tokens=2)
        s["aborted"] = abort_program(s)

    state, pid = run_program(stop_me, backend=DynasorEndpoint(fake.url))
    assert state["aborted"] == 0 and fake.aborts == [pid]
    with pytest.raises(ValueError, match="detect_at"):
        run_program(vote, backend=DynasorEndpoint(fake.url), n_max=2, detect_at=3)
    with pytest.raises(TypeError, match="DynasorEndpoint"):
        as_endpoint(RuntimeEndpoint(fake.url))
    with pytest.raises(ValueError):
        ProgramHandle(remaining_work=-1)
    with pytest.raises(TagError):
        ProgramHandle("short")
    assert majority_vote(["4", None, "4.0", "5"]) == "4" and majority_vote([None]) is None


def test_a_batch_for_the_router_splits_into_one_request_per_prompt():
    from dynasor.frontend.endpoint import _batch_items

    tag = {"custom_params": {"dynasor": {"program_id": "p"}}}
    texts = _batch_items({"text": ["a yes", "a no"], "sampling_params": tag, "return_logprob": True})
    ids = _batch_items({"input_ids": [[1, 2], [1, 3]], "sampling_params": tag})
    assert texts == [{"text": "a yes", "sampling_params": tag, "return_logprob": True},
                     {"text": "a no", "sampling_params": tag, "return_logprob": True}]
    assert ids == [{"input_ids": [1, 2], "sampling_params": tag}, {"input_ids": [1, 3], "sampling_params": tag}]
    assert _batch_items({"text": "one", "sampling_params": tag}) is None
    assert _batch_items({"input_ids": [1, 2, 3], "sampling_params": tag}) is None
