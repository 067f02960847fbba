#!/usr/bin/env bash
# The whole suite as `make test` runs it: the static checks (scripts/check.sh) beside the unit tests,
# then the kernel and integration tests, which start real servers on CPU, in two lanes side by side.
#   usage: [TEST_STAGES=servers] scripts/test.sh [VENV_DIR] [pytest args...]
#          (TEST_STAGES=servers: the server tests alone, as `make test-integration` runs them)
#
# Neither the checks nor the unit tests start a server, and each keeps one core busy, so on two
# cores they run side by side. A failing check or unit test stops the run before any server starts.
# The server tests then run as two pytest processes, one per lane (test/conftest.py): the tests of
# the shared Dynasor server, and the tests that start servers of their own. One engine at work keeps
# about one core busy, so the two lanes fill both cores. The first lane prints as it goes; the output
# of the other two (checks, second lane) is printed once they end.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${1:-$ROOT/.venv}" && pwd)
shift || true
cd "$ROOT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STARTED=$(date +%s)
PYTEST=("$VENV/bin/python" -m pytest)

BACKGROUND=""  # the process group running beside the foreground step (setsid: it leads its own group)
BACKGROUND_LOG=$(mktemp)
stop_background() {
  if [ -n "$BACKGROUND" ]; then kill -TERM -- -"$BACKGROUND" 2>/dev/null; wait "$BACKGROUND" 2>/dev/null; fi
  rm -f "$BACKGROUND_LOG"
}
trap stop_background EXIT
trap 'exit 130' INT TERM
# beside CMD...: run CMD in its own process group, output to BACKGROUND_LOG; `joined` waits for it.
beside() { : >"$BACKGROUND_LOG"; setsid "$@" >"$BACKGROUND_LOG" 2>&1 & BACKGROUND=$!; }
joined() { wait "$BACKGROUND"; local code=$?; BACKGROUND=""; cat "$BACKGROUND_LOG"; return "$code"; }

server_lanes() {
  beside "${PYTEST[@]}" test --ignore=test/unit --lane own-servers "$@"
  "${PYTEST[@]}" test --ignore=test/unit --lane shared-server "$@"
  local shared=$?
  echo "[test] lane shared-server done (exit $shared); lane own-servers:"
  joined
  local own=$?
  [ "$shared" -eq 0 ] && [ "$own" -eq 0 ]
}

if [ "${TEST_STAGES:-all}" = servers ]; then
  server_lanes "$@"
  exit $?
fi

beside bash scripts/check.sh "$VENV"
"${PYTEST[@]}" test/unit "$@"
UNIT=$?
joined
CHECKED=$?
if [ "$CHECKED" -ne 0 ]; then echo "[test] static checks failed (scripts/check.sh)"; exit 1; fi
if [ "$UNIT" -ne 0 ]; then echo "[test] unit tests failed"; exit "$UNIT"; fi
echo "[test] checks and unit tests done in $(( $(date +%s) - STARTED ))s"

server_lanes "$@"
SERVERS=$?
echo "[test] kernel and integration tests done; suite in $(( $(date +%s) - STARTED ))s"
exit "$SERVERS"
