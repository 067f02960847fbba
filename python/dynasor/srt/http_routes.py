"""``/dynasor/...`` HTTP endpoints, added to SGLang's FastAPI app by the Dynasor launcher.

- ``GET  /dynasor/programs``: every program in the scheduler's table, by program key.
- ``GET  /dynasor/programs/{program_id}``: one program (the caller proves it holds the id); with
  ``--dp-size`` > 1 ``dp_ranks`` names the data-parallel ranks that serve it (one: ``dp_placement.py``).
- ``POST /dynasor/programs/{program_id}/abort``: abort every waiting and running request of the
  program, including requests still being tokenized (they are aborted once dispatched). Callers
  of those requests get finish reason ``abort``; SGLang frees their KV. The abort is final: a
  request of the program that arrives later, for as long as the server remembers the program
  (``--dynasor-program-ttl``), is ended at once with finish reason ``abort``.
- ``GET  /dynasor/load``: running and waiting requests, KV tokens in use, KV tokens the radix cache
  holds (evictable) and the KV capacity, taken now, summed over data-parallel ranks (SGLang's
  ``/v1/loads`` is a snapshot refreshed only now and then while busy); and how many scheduling
  steps wrote a new queue order, and how many of those ranked it from scratch.
- ``GET  /dynasor/instance``: this launch's id and the server's pid, so whoever started a server can
  tell that the one answering is theirs.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

from dynasor.core.instance import INSTANCE_ROUTE
from dynasor.core.scheduler_state import STATE_KEY, SchedulerLoad, SchedulerState
from dynasor.core.tag import TagError, program_key, validate_program_id
from dynasor.scheduler.program_summary import merge_summaries
from dynasor.srt.main_process_state import MainProcessState
from dynasor.srt.program_abort import abort_program_requests
from dynasor.srt.sglang_version import installed_sglang_version


def _tokenizer_manager() -> Any:
    from sglang.srt.entrypoints import http_server

    return http_server._global_state.tokenizer_manager


def _error(status: int, message: str) -> ORJSONResponse:
    return ORJSONResponse({"error": {"message": message, "code": status}}, status_code=status)


async def _scheduler_states() -> list[SchedulerState]:
    """One per data-parallel rank (a rank without Dynasor's scheduler is a launch error: it fails here)."""
    return [SchedulerState.from_json(s[STATE_KEY]) for s in await _tokenizer_manager().get_internal_state()]


async def _programs() -> dict[str, dict[str, Any]]:
    states = await _scheduler_states()
    return merge_summaries([s.programs for s in states], [s.dp_rank for s in states])


class ProgramRoutes:
    """The ``/dynasor`` routes of one server, over its main-process state."""

    def __init__(self, state: MainProcessState) -> None:
        self.state = state
        self.key_secret = state.config.key_secret_bytes

    def key(self, program_id: str) -> str:
        return program_key(program_id, self.key_secret)

    async def load(self) -> ORJSONResponse:
        loads = [asdict(s.load) for s in await _scheduler_states()]
        return ORJSONResponse({key: sum(load[key] for load in loads) for key in asdict(SchedulerLoad())}
                              | {"ranks": len(loads)})

    async def instance(self) -> ORJSONResponse:
        return ORJSONResponse({"instance_id": self.state.config.instance_id, "pid": os.getpid(),
                               "sglang_version": installed_sglang_version()})

    async def list_programs(self) -> ORJSONResponse:
        programs = await _programs()
        ordered = sorted(programs.values(), key=lambda p: p["first_arrival"])
        return ORJSONResponse({"programs": ordered, "count": len(ordered)})

    async def get_program(self, program_id: str) -> ORJSONResponse:
        try:
            validate_program_id(program_id)
        except TagError as e:
            return _error(400, str(e))
        summary = (await _programs()).get(self.key(program_id))
        if summary is None:
            return _error(404, "program not found (never seen, or done and expired)")
        return ORJSONResponse({**summary, "program_id": program_id})

    async def abort_program(self, program_id: str) -> ORJSONResponse:
        try:
            validate_program_id(program_id)
        except TagError as e:
            return _error(400, str(e))
        self.state.aborted.add(program_id)  # first: a request arriving from now on is ended at once
        aborted = await abort_program_requests(_tokenizer_manager(), program_id)
        if not aborted and self.key(program_id) not in await _programs():
            return _error(404, "program not found (never seen, or done and expired)")
        return ORJSONResponse({"program_key": self.key(program_id), "aborted_requests": aborted})


def install_routes(app: FastAPI, state: MainProcessState) -> None:
    routes = ProgramRoutes(state)
    app.add_api_route(INSTANCE_ROUTE, routes.instance, methods=["GET"])
    app.add_api_route("/dynasor/load", routes.load, methods=["GET"])
    app.add_api_route("/dynasor/programs", routes.list_programs, methods=["GET"])
    app.add_api_route("/dynasor/programs/{program_id}", routes.get_program, methods=["GET"])
    app.add_api_route("/dynasor/programs/{program_id}/abort", routes.abort_program, methods=["POST"])

