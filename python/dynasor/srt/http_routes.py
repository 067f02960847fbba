"""``/dynasor/...`` HTTP endpoints, added to SGLang's FastAPI app by the Dynasor launcher.

- ``GET  /dynasor/programs``: every program in the scheduler's table, by program key.
- ``GET  /dynasor/programs/{program_id}``: one program (the caller proves it holds the id).
- ``POST /dynasor/programs/{program_id}/abort``: abort every waiting and running request of the
  program, including requests still being tokenized (they are aborted once dispatched). Callers
  of those requests get finish reason ``abort``; SGLang frees their KV.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

from dynasor.core.tag import TagError, program_key, validate_program_id
from dynasor.scheduler.program_table import merge_summaries
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.dynasor_scheduler import STATE_KEY
from dynasor.srt.tokenizer_hooks import abort_program_requests


def _tokenizer_manager() -> Any:
    from sglang.srt.entrypoints import http_server

    return http_server._global_state.tokenizer_manager


def _error(status: int, message: str) -> ORJSONResponse:
    return ORJSONResponse({"error": {"message": message, "code": status}}, status_code=status)


async def _programs() -> dict[str, dict[str, Any]]:
    states = await _tokenizer_manager().get_internal_state()
    return merge_summaries([s.get(STATE_KEY, {}).get("programs", {}) for s in states])


class ProgramRoutes:
    """The ``/dynasor/programs`` routes of one server; ``key_secret`` is the server's program-key secret."""

    def __init__(self, key_secret: bytes) -> None:
        self.key_secret = key_secret

    def key(self, program_id: str) -> str:
        return program_key(program_id, self.key_secret)

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
        aborted = await abort_program_requests(_tokenizer_manager(), program_id)
        if not aborted and self.key(program_id) not in await _programs():
            return _error(404, "program not found (never seen, or done and expired)")
        return ORJSONResponse({"program_key": self.key(program_id), "aborted_requests": aborted})


def install_routes(app: FastAPI, config: DynasorServerConfig) -> None:
    routes = ProgramRoutes(config.key_secret_bytes)
    app.add_api_route("/dynasor/programs", routes.list_programs, methods=["GET"])
    app.add_api_route("/dynasor/programs/{program_id}", routes.get_program, methods=["GET"])
    app.add_api_route("/dynasor/programs/{program_id}/abort", routes.abort_program, methods=["POST"])
