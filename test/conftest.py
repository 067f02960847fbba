"""Kernel tests run the Triton kernels through Triton's interpreter when there is no GPU.

Triton reads ``TRITON_INTERPRET`` when it is imported and when a kernel is decorated, so the
variable must be set before anything imports triton: this root conftest is loaded before every
test module (integration modules import SGLang, which imports triton). Servers started by the
tests do not inherit it (``dynasor.evaluation.server_process`` drops it).
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


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
