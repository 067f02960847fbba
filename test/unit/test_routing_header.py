"""The routing key on the frontend's requests (``dynasor.frontend.routing_header``), against a real
local HTTP server that records what it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sglang.lang.backend import runtime_endpoint

from dynasor.core.routing import ROUTING_KEY_HEADER
from dynasor.frontend import routing_header
from dynasor.frontend.routing_header import install, sending_routing_key


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str], dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        reply = (b"data: {\"text\": \"ok\", \"meta_info\": {}}\n\ndata: [DONE]\n\n" if body.get("stream")
                 else json.dumps({"text": "ok"}).encode())
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_key_goes_only_with_requests_sent_inside_the_context(server):
    install()
    install()  # idempotent: one wrapper
    wrapped = runtime_endpoint.http_request
    assert wrapped.dynasor_wrapped.__module__ == "sglang.utils"
    Recorder.seen.clear()
    with sending_routing_key("k1"):
        assert runtime_endpoint.http_request(server + "/generate", json={"text": "a"}, api_key="sk").json() == {
            "text": "ok"}
        streamed = runtime_endpoint.http_request(server + "/generate", json={"text": "b", "stream": True}, stream=True)
        assert b"[DONE]" in b"".join(streamed.iter_lines())
    plain = runtime_endpoint.http_request(server + "/generate", json={"text": "c"})
    assert plain.status_code == 200 and plain.json() == {"text": "ok"}
    (_, first, a), (_, second, _), (_, third, c) = Recorder.seen
    assert first[ROUTING_KEY_HEADER] == "k1" and first["authorization"] == "Bearer sk" and a == {"text": "a"}
    assert second[ROUTING_KEY_HEADER] == "k1"
    assert ROUTING_KEY_HEADER not in third and c == {"text": "c"}


def test_an_unknown_http_request_fails_loudly(monkeypatch):
    def http_request(url, body):  # as if a release changed it
        raise AssertionError("not called")

    monkeypatch.setattr(runtime_endpoint, "http_request", http_request)
    with pytest.raises(RuntimeError, match="sglang==0.5.23"):
        routing_header.install()
