"""Running an ``sgl.function`` as one Dynasor program, and the program-level hints inside it."""

from __future__ import annotations

from typing import Any, NamedTuple

from sglang.lang.global_config import global_config
from sglang.lang.interpreter import ProgramState
from sglang.lang.ir import SglFunction
from sglang.lang.tracer import TracerProgramState

from dynasor.frontend.endpoint import DynasorEndpoint, ProgramHandle


class ProgramRun(NamedTuple):
    """What ``run_program`` returns: SGLang's state and the program id (``state, pid = ...``)."""

    state: ProgramState
    program_id: str


def as_endpoint(backend: DynasorEndpoint | str | None) -> DynasorEndpoint:
    """A ``DynasorEndpoint`` from an endpoint, a server URL, or SGLang's default backend."""
    if isinstance(backend, str):
        return DynasorEndpoint(backend)
    chosen: Any = backend if backend is not None else global_config.default_backend
    chosen = getattr(chosen, "endpoint", chosen)  # sgl.Runtime wraps its endpoint
    if not isinstance(chosen, DynasorEndpoint):
        raise TypeError("Dynasor programs need a DynasorEndpoint backend (pass backend=DynasorEndpoint(url) "
                        f"or sgl.set_default_backend(DynasorEndpoint(url))), got {type(chosen).__name__}")
    return chosen


def run_program(func: SglFunction, *args: Any, backend: DynasorEndpoint | str | None = None,
                program_id: str | None = None, remaining_work: float | None = None, **kwargs: Any) -> ProgramRun:
    """``func.run(*args, **kwargs)`` as one program whose id is known before the first request.

    ``program_id`` reuses a given id (e.g. to add this run to a program driven elsewhere); the
    default is a fresh unguessable one. ``remaining_work`` is the first hint the requests carry
    (see ``set_remaining_work``). Every other keyword goes to ``SglFunction.run`` (function
    arguments, default sampling params, ``stream``); as there, ``run``'s own keywords
    (``temperature``, ``max_new_tokens``, ...) are sampling defaults, never function arguments.
    """
    endpoint = as_endpoint(backend)
    handle = ProgramHandle(program_id, remaining_work, endpoint.return_entropy)
    state = func.run(*args, backend=endpoint.bind(handle), **kwargs)
    return ProgramRun(state, handle.program_id)


def _endpoint_of(s: ProgramState) -> DynasorEndpoint:
    backend = s.stream_executor.backend
    if not isinstance(backend, DynasorEndpoint):
        raise TypeError(f"this state runs on {type(backend).__name__}, not on a DynasorEndpoint: "
                        "Dynasor hints need the program's requests to carry its tag")
    return backend


def program_of(s: ProgramState) -> ProgramHandle:
    """The program a state (or a fork branch of it) belongs to."""
    return _endpoint_of(s).program_of(s.stream_executor)


def program_id(s: ProgramState | ProgramRun) -> str:
    """The id of the program a state belongs to: for ``DynasorClient.program(id)`` or an abort."""
    if isinstance(s, ProgramRun):
        return s.program_id
    return program_of(s).program_id


def set_remaining_work(s: ProgramState, tokens: float | None) -> None:
    """Declare how many tokens the whole program still has to generate.

    Requests the program sends from now on carry ``remaining_work`` in their tag, and the server's
    shortest-job-first order uses it instead of its own estimate; ``None`` hands the estimate back
    to the server. The tag is read when a request is sent, so this first waits for the calls
    already queued on ``s`` (``s.sync()``): the hint then applies exactly to the calls made after
    it, from ``s`` and from any other branch of the program.
    """
    if isinstance(s, TracerProgramState):  # run_batch's prefix tracing: a hint is no text, keep tracing
        return
    handle = program_of(s)
    s.sync()
    handle.set_remaining_work(tokens)


def abort_program(s: ProgramState) -> int:
    """Abort every waiting and running request of the state's program, server side, in one call.

    Returns how many were aborted. Their ``gen`` calls end with ``finish_reason`` type ``abort``
    and the text generated so far; the program itself stays usable for new requests.
    """
    endpoint = _endpoint_of(s)
    return endpoint.abort_program(endpoint.program_of(s.stream_executor).program_id)
