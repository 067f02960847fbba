#!/usr/bin/env bash
# The whole suite as `make test` runs it: the static checks (scripts/check.sh) beside the unit tests,
# then the kernel and integration tests, which start real servers on CPU.
#   usage: scripts/test.sh [VENV_DIR] [pytest args...]
#
# Neither the checks nor the unit tests start a server, and each keeps one core busy, so on two
# cores they run side by side (about a minute less than one after the other). The server tests run
# alone: two busy engines on two cores would slow each other. The checks' output is printed once
# they end; a failing check or unit test stops the run before any server starts.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(cd "${1:-$ROOT/.venv}" && pwd)
shift || true
cd "$ROOT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STARTED=$(date +%s)

CHECK_LOG=$(mktemp)
setsid bash scripts/check.sh "$VENV" >"$CHECK_LOG" 2>&1 &
CHECK=$!  # setsid makes it the leader of its own process group
stop_check() { kill -- -"$CHECK" 2>/dev/null; rm -f "$CHECK_LOG"; }
trap stop_check EXIT

"$VENV/bin/python" -m pytest test/unit "$@"
UNIT=$?
wait "$CHECK"
CHECKED=$?
cat "$CHECK_LOG"
if [ "$CHECKED" -ne 0 ]; then echo "[test] static checks failed (scripts/check.sh)"; exit 1; fi
if [ "$UNIT" -ne 0 ]; then echo "[test] unit tests failed"; exit "$UNIT"; fi
echo "[test] checks and unit tests done in $(( $(date +%s) - STARTED ))s"

"$VENV/bin/python" -m pytest test --ignore=test/unit "$@"
SERVERS=$?
echo "[test] kernel and integration tests done; suite in $(( $(date +%s) - STARTED ))s"
exit "$SERVERS"
