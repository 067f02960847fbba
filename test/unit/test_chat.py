"""``dynasor chat``: argument parsing, prompt lines, token summaries, and the whole command against a
fake OpenAI-compatible server that streams SSE like the Dynasor server (live test: test/integration)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from dynasor.chat import (
    SUMMARY_PREFIX,
    AnswerStats,
    build_request,
    format_summary,
    main,
    parse_args,
    prompts_from,
    run_interactive,
    usage_stats,
)

USAGE = {"prompt_tokens": 9, "completion_tokens": 60, "total_tokens": 69, "probe_tokens": 20, "baseline_tokens": 200}


class FakeOpenAI:
    """Streams "The answer is N." (N = number of the request) split in two deltas, the ``dynasor``
    report on the last content chunk and ``usage`` in a closing chunk when asked for."""

    def __init__(self, usage: dict[str, Any] | None = None) -> None:
        self.usage = USAGE if usage is None else usage
        self.bodies: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = json.dumps({"object": "list", "data": [
                    {"id": "fake-model", "object": "model", "created": 0, "owned_by": "dynasor"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                n = len(fake.bodies)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": f"c{n}", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                chunks = [
                    {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "The answer"},
                                          "finish_reason": None}]},
                    {**base, "choices": [{"index": 0, "delta": {"content": f" is {n}."}, "finish_reason": "stop"}],
                     "dynasor": {"mode": "cot", "exit": "probe", "answer": str(n)}},
                ]
                if (body.get("stream_options") or {}).get("include_usage") and fake.usage:
                    chunks.append({**base, "choices": [], "usage": fake.usage})
                for chunk in chunks:
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.close()


def test_parse_args_defaults_and_choices():
    args = parse_args([])
    assert (args.mode, args.effort, args.max_tokens, args.temperature) == ("cot", "mid", 1024, None)
    args = parse_args(["--url", "http://h:1", "--effort", "high", "--mode", "plain", "--max-tokens", "64"])
    assert (args.url, args.effort, args.mode, args.max_tokens) == ("http://h:1", "high", "plain", 64)
    for bad in (["--effort", "max"], ["--mode", "sc"], ["--max-tokens", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_build_request_adds_dynasor_only_in_cot_mode():
    messages = [{"role": "user", "content": "hi"}]
    cot = build_request(parse_args(["--effort", "low", "--temperature", "0.2"]), "m", messages)
    assert cot["extra_body"] == {"dynasor": {"mode": "cot", "effort": "low"}}
    assert cot["stream"] and cot["stream_options"] == {"include_usage": True} and cot["temperature"] == 0.2
    plain = build_request(parse_args(["--mode", "plain"]), "m", messages)
    assert "extra_body" not in plain and "temperature" not in plain and plain["max_tokens"] == 1024


def test_prompts_from_skips_blank_lines():
    assert list(prompts_from(["What is 2+3?\n", "\n", "   \n", "  hello  \n", "last"])) == [
        "What is 2+3?", "hello", "last"]


def test_usage_stats_tolerates_missing_fields():
    from openai.types import CompletionUsage

    usage = CompletionUsage.model_validate(USAGE)  # the extras as the openai client parses them
    assert usage_stats(usage, {"exit": "probe"}) == AnswerStats(60, 20, 200, "probe")
    assert usage_stats({"completion_tokens": 7, "baseline_tokens": None}) == AnswerStats(7, None, None, None)
    assert usage_stats(None, {"probe_tokens": 4}) == AnswerStats(None, 4, None, None)
    assert usage_stats({"completion_tokens": "x", "baseline_tokens": True}) == AnswerStats()


def test_format_summary():
    assert format_summary(AnswerStats(60, 20, 200, "probe")) == (
        f"{SUMMARY_PREFIX} completion 60, probe 20, baseline 200, saved 140 (70%), exit probe")
    assert format_summary(AnswerStats(60)) == f"{SUMMARY_PREFIX} completion 60, saved unknown (no baseline)"
    assert format_summary(AnswerStats()) == f"{SUMMARY_PREFIX} completion unknown, saved unknown (no baseline)"
    assert format_summary(AnswerStats(250, 0, 200)) == (
        f"{SUMMARY_PREFIX} completion 250, probe 0, baseline 200, saved -50 (-25%)")
    assert format_summary(AnswerStats(60), "plain") == f"{SUMMARY_PREFIX} completion 60"
    assert AnswerStats(10, baseline_tokens=0).saved == -10


def test_piped_prompts_are_independent_answers_with_a_tokens_line(fake):
    out = io.StringIO()
    with pytest.raises(SystemExit) as done:
        main(["--url", fake.url, "--effort", "high"], stdin=io.StringIO("What is 2+3?\n\nAnd 4+4?\n"), stdout=out)
    assert done.value.code == 0
    assert out.getvalue() == (
        "The answer is 1.\n" f"{SUMMARY_PREFIX} completion 60, probe 20, baseline 200, saved 140 (70%), exit probe\n"
        "The answer is 2.\n" f"{SUMMARY_PREFIX} completion 60, probe 20, baseline 200, saved 140 (70%), exit probe\n")
    assert [b["messages"] for b in fake.bodies] == [[{"role": "user", "content": "What is 2+3?"}],
                                                    [{"role": "user", "content": "And 4+4?"}]]
    assert all(b["dynasor"] == {"mode": "cot", "effort": "high"} and b["model"] == "fake-model" for b in fake.bodies)


def test_interactive_keeps_history_until_reset(fake):
    args = parse_args(["--url", fake.url, "--system", "Be brief."])
    from openai import OpenAI

    lines = iter(["hi", "", "more", "/reset", "again", "/exit"])
    out = io.StringIO()
    with OpenAI(base_url=fake.url + "/v1", api_key="EMPTY") as client:
        assert run_interactive(client, args, "fake-model", lambda prompt: next(lines), out) == 0
    system = {"role": "system", "content": "Be brief."}
    assert [b["messages"] for b in fake.bodies] == [
        [system, {"role": "user", "content": "hi"}],
        [system, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "The answer is 1."},
         {"role": "user", "content": "more"}],
        [system, {"role": "user", "content": "again"}],
    ]
    assert out.getvalue().count(SUMMARY_PREFIX) == 3 and "(conversation cleared)" in out.getvalue()


def test_cli_chat_through_a_pipe_without_usage_from_the_server():
    server = FakeOpenAI(usage={})
    try:
        done = subprocess.run([sys.executable, "-m", "dynasor.cli", "chat", "--url", server.url, "--mode", "plain"],
                              input="What is 2+3?\n", capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"The answer is 1.\n{SUMMARY_PREFIX} completion unknown, exit probe\n"
    assert "dynasor" not in server.bodies[0]


def test_unreachable_server_exits_with_a_message():
    with pytest.raises(SystemExit, match="cannot reach"):
        main(["--url", "http://127.0.0.1:9"], stdin=io.StringIO("hi\n"), stdout=io.StringIO())
