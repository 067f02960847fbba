"""What a Dynasor server keeps in its main process (the one with SGLang's TokenizerManager and HTTP
routes), owned by one object: the config, the dynasor modes' runner, the programs aborted
through ``POST /dynasor/programs/{id}/abort``, and with ``--dp-size`` > 1 the rank of every program
(``dp_placement.py``).

``serve`` builds and activates the ``MainProcessState``; the main-process hooks and routes reach it
through ``current_main_process_state()``, which is None where no Dynasor server was launched (then the
hooks leave SGLang alone, and dynasor-mode requests fail loudly).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from dynasor.modes.job import ModeRunner
from dynasor.scheduler.program_placement import ProgramPlacement
from dynasor.srt.config import DynasorServerConfig


class AbortedPrograms:
    """Program ids aborted on this server, remembered ``ttl`` seconds (the program table's TTL) and
    at most ``max_entries`` (oldest forgotten first): a request of one of them that arrives later
    is ended at once instead of served, so an abort is final."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max(max_entries, 1)
        self._aborted: OrderedDict[str, float] = OrderedDict()

    def add(self, program_id: str, now: float | None = None) -> None:
        self._aborted[program_id] = time.monotonic() if now is None else now
        self._aborted.move_to_end(program_id)
        while len(self._aborted) > self.max_entries:
            self._aborted.popitem(last=False)

    def contains(self, program_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        while self._aborted:
            at = next(iter(self._aborted.values()))
            if now - at < self.ttl:
                break
            self._aborted.popitem(last=False)
        return program_id in self._aborted

    def __len__(self) -> int:
        return len(self._aborted)


class MainProcessState:
    def __init__(self, config: DynasorServerConfig, mode_runner: ModeRunner | None = None, dp_size: int = 1) -> None:
        self.config = config
        self.mode_runner = mode_runner
        self.aborted = AbortedPrograms(config.program_ttl, config.max_done_programs)
        affinity = dp_size > 1 and config.dp_placement == "program"
        self.placement = ProgramPlacement(dp_size, config.program_ttl) if affinity else None


_current: MainProcessState | None = None


def activate_main_process_state(state: MainProcessState | None) -> None:
    global _current
    _current = state


def current_main_process_state() -> MainProcessState | None:
    return _current
