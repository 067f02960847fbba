"""A stand-in server process for ServerProcess tests: answers /health and /dynasor/instance with
the launch id in $FAKE_INSTANCE_ID, and starts a child in its process group (pid written to
$FAKE_CHILD_PID_FILE), as SGLang's server starts its scheduler.

$FAKE_MODE picks a start-up that never becomes ready: ``hang`` (silent, as a start-up stuck on a
socket) or ``bind-error`` (logs uvicorn's failed bind and stays alive, as SGLang's server did)."""

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/health":
            body = b"ok"
        elif self.path == "/dynasor/instance":
            body = json.dumps({"instance_id": os.environ.get("FAKE_INSTANCE_ID"), "pid": os.getpid()}).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["FAKE_CHILD_PID_FILE"], "w") as f:
        f.write(str(child.pid))
    mode = os.environ.get("FAKE_MODE", "serve")
    if mode == "bind-error":
        print(f"ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', {sys.argv[1]}): "
              "address already in use", flush=True)
        print("INFO:     Waiting for application shutdown.", flush=True)
    if mode != "serve":
        child.wait()
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
