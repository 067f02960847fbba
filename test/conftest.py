"""The whole suite's conftest: Triton's interpreter for the kernel tests when there is no GPU, the
two lanes `scripts/test.sh` runs side by side, and the time spent per test file.

Kernel tests run the Triton kernels through Triton's interpreter when there is no GPU.

Triton reads ``TRITON_INTERPRET`` when it is imported and when a kernel is decorated, so the
variable must be set before anything imports triton: this root conftest is loaded before every
test module (integration modules import SGLang, which imports triton). Servers started by the
tests do not inherit it (``dynasor.evaluation.server_process`` drops it).
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


# --- two lanes for the server tests (`pytest --lane NAME`; scripts/test.sh runs both side by side) ---
SHARED_SERVER_LANE = "shared-server"  # the tests of the session's shared Dynasor server, and the kernel tests
OWN_SERVERS_LANE = "own-servers"  # the integration tests that start servers of their own (or need none)
LANES = (SHARED_SERVER_LANE, OWN_SERVERS_LANE)


def pytest_addoption(parser):
    parser.addoption("--lane", choices=LANES, default=None,
                     help="run only this lane's tests (default: every test)")


def pytest_configure(config):
    """Servers of the two lanes take ports from disjoint slices (dynasor.evaluation.ports), so two
    pytest processes starting servers at the same moment never pick the same port."""
    lane = config.getoption("lane")
    if lane:
        os.environ["DYNASOR_PORT_SLICE"] = f"{LANES.index(lane)}/{len(LANES)}"


def lane_of(item) -> str:
    """The kernel tests need no server; they go with the shared server's tests, the lighter lane."""
    own = "integration" in item.path.parts and "dynasor_server" not in getattr(item, "fixturenames", ())
    return OWN_SERVERS_LANE if own else SHARED_SERVER_LANE


def pytest_collection_modifyitems(config, items):
    """A server test either asks for the shared server or starts its own. One pytest process per lane
    starts the shared server once while the other starts the rest: one engine at work keeps about
    one core busy, so on two cores the lanes side by side take well under the sum of their times."""
    lane = config.getoption("lane")
    if not lane:
        return
    kept, deselected = [], []
    for item in items:
        (kept if lane_of(item) == lane else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


# --- time per test file, printed at the end (where a slow suite spends its time) ----------------
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Setup, call and teardown of every test, summed per file (a module fixture's server start
    counts in the file that starts it)."""
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _FILE_SECONDS:
        return
    total = sum(_FILE_SECONDS.values())
    terminalreporter.section("seconds per test file (slowest 20)")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])[:20]:
        terminalreporter.write_line(f"{seconds:8.1f} s {100 * seconds / total:5.1f}%  {path}")
    terminalreporter.write_line(f"{total:8.1f} s in {len(_FILE_SECONDS)} files")
