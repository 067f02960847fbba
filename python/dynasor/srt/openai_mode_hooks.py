"""Dynasor modes on SGLang's OpenAI endpoints (written against sglang==0.5.23).

AROUND hooks on ``OpenAIServingChat.handle_request`` and ``OpenAIServingCompletion.handle_request``
(both inherit ``OpenAIServingBase.handle_request``, serving_base.py:89, which the FastAPI routes
call with the parsed request and the raw ``Request``: http_server.py:1860-1880). The request models
(protocol.py:365 ``CompletionRequest``, :909 ``ChatCompletionRequest``) are plain pydantic models
that drop unknown fields, so the ``dynasor`` object is read from the raw body, which FastAPI has
already parsed and Starlette caches (``Request.json``). Without it, or when there is no HTTP body
(the gRPC bridge), the original method runs untouched.

With it, the request goes through SGLang's own ``_validate_request`` and ``_convert_to_internal_request``
(chat template, stop strings, generation-config defaults, as the plain request would get them) and
then to the installed ``ModeRunner`` (``dynasor.modes.job``; the launcher installs
``dynasor.modes.runner.ProgramModeRunner`` in the server state), which runs the program on the
TokenizerManager (``tokenizer_engine``). Shapes and options: ``dynasor.modes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from dynasor.modes.job import ModeJob, ModeRunner
from dynasor.modes.options import (
    DynasorOptionError,
    ModeOptions,
    check_request,
    explicit_max_tokens,
    parse_options,
    program_sampling_params,
    token_budget,
)
from dynasor.modes.outcome import ModeOutcome
from dynasor.modes.responses import ResponseMeta, chunk_body, response_body, sse, usage_chunk_body
from dynasor.srt.main_process_state import current_main_process_state
from dynasor.srt.tokenizer_engine import TokenizerManagerEngine

logger = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.25
_MISSING = object()
_DONE = object()


def _mode_runner() -> ModeRunner:
    state = current_main_process_state()
    if state is None or state.mode_runner is None:
        raise RuntimeError("dynasor modes are not available: no mode runner installed (start the server with "
                           "`dynasor serve`)")
    return state.mode_runner


async def _dynasor_field(raw_request: Any) -> Any:
    """The body's ``dynasor`` value, or ``_MISSING`` (absent, null, or no JSON body to read)."""
    read = getattr(raw_request, "json", None)
    if read is None:
        return _MISSING
    try:
        body = await read()
    except Exception:
        return _MISSING
    if not isinstance(body, dict) or body.get("dynasor") is None:
        return _MISSING
    return body["dynasor"]


def _prompt(serving: Any, adapted: Any, param: str) -> tuple[str, int]:
    """The prompt as text and its length. Chat prompts arrive as the template's token ids: decoded
    without the specials the tokenizer adds by itself (re-encoding adds them back)."""
    tokenizer = serving.tokenizer_manager.tokenizer
    if tokenizer is None:
        raise DynasorOptionError("dynasor", "needs the server's tokenizer (it runs with --skip-tokenizer-init)")
    if isinstance(adapted.text, str):
        return adapted.text, len(tokenizer.encode(adapted.text))
    ids = adapted.input_ids
    if not (isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids)):
        raise DynasorOptionError(param, "must be one text prompt with dynasor")
    if getattr(serving, "_prompt_text_round_trip_is_lossy", False):
        raise DynasorOptionError(param, "cannot be rendered as text for this model's chat template; "
                                        "use /v1/completions with dynasor")
    auto = list(tokenizer.encode(""))
    body = ids[len(auto):] if auto and ids[:len(auto)] == auto else ids
    return tokenizer.decode(body, skip_special_tokens=False), len(ids)


def prepare_job(serving: Any, request: Any, raw_request: Any, options: ModeOptions, endpoint: str,
                runner: ModeRunner) -> ModeJob:
    """Blocking (template rendering, tokenisation): run off the event loop, as SGLang does."""
    adapted, _ = serving._convert_to_internal_request(request, raw_request)
    param = "messages" if endpoint == "chat" else "prompt"
    if any(getattr(adapted, key, None) for key in ("image_data", "video_data", "audio_data")):
        raise DynasorOptionError(param, "with images, video or audio are not supported with dynasor")
    prompt, prompt_tokens = _prompt(serving, adapted, param)
    sampling = adapted.sampling_params or {}
    params = program_sampling_params(sampling, options.mode)
    tokenizer = serving.tokenizer_manager.tokenizer
    reserve = runner.reserved_tokens(options, lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
    room = serving.tokenizer_manager.context_len - prompt_tokens - reserve
    explicit = explicit_max_tokens(request, sampling)
    return ModeJob(options, prompt, params, token_budget(explicit, room, param), explicit)


async def _unless_disconnected(run: Awaitable[ModeOutcome], raw_request: Any,
                                poll_s: float = DISCONNECT_POLL_S) -> ModeOutcome:
    """Await the run, but cancel it (the runner then aborts its program in the engine) as soon as
    the HTTP client is gone: SGLang itself notices a disconnect only every few seconds."""
    task = asyncio.ensure_future(run)
    is_disconnected = getattr(raw_request, "is_disconnected", None)
    if is_disconnected is None:
        return await task
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await is_disconnected():
                raise ValueError("the client disconnected; the dynasor program was aborted")
    finally:
        if not task.done():
            task.cancel()


def _include_usage(request: Any) -> bool:
    from sglang.srt.entrypoints.openai.utils import should_include_usage
    from sglang.srt.runtime_context import get_serving

    include, _ = should_include_usage(request.stream_options, get_serving().stream_response_default_include_usage)
    return bool(include)


async def _events(job: ModeJob, meta: ResponseMeta, serving: Any, raw_request: Any,
                  include_usage: bool) -> AsyncIterator[str]:
    """SSE: the role (chat), the kept reasoning chunk by chunk (cot), the rest of the final text
    (cot: the answer statement; sc: the chosen sample), the finish chunk with the ``dynasor``
    report, the usage chunk if asked, ``[DONE]``. Errors after the start go in-stream, as SGLang's."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    engine = TokenizerManagerEngine(serving.tokenizer_manager, raw_request)
    task = asyncio.create_task(_mode_runner().run(job, engine, on_text=queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(_DONE))
    streamed = 0
    try:
        if meta.endpoint == "chat":
            yield sse(chunk_body(meta, "", role="assistant"))
        while (piece := await queue.get()) is not _DONE:
            streamed += len(piece)
            yield sse(chunk_body(meta, piece))
        outcome = task.result()
        if outcome.text[streamed:]:
            yield sse(chunk_body(meta, outcome.text[streamed:]))
        yield sse(chunk_body(meta, None, outcome.finish_reason, dynasor=outcome.dynasor))
        if include_usage:
            yield sse(usage_chunk_body(meta, outcome.usage))
    except Exception as e:
        logger.exception("dynasor %s stream failed", job.options.mode)
        yield f"data: {serving.create_streaming_error_response(str(e))}\n\n"
    finally:
        if not task.done():
            task.cancel()
    yield "data: [DONE]\n\n"


async def _handle(endpoint: str, original: Callable[..., Awaitable[Any]], serving: Any, request: Any,
                  raw_request: Any, *args: Any, **kwargs: Any) -> Any:
    """SGLang's own handler unless the body has a ``dynasor`` object; then validate everything
    before any generation (bad options: 400 naming the field) and run the mode."""
    raw = await _dynasor_field(raw_request)
    if raw is _MISSING:
        return await original(serving, request, raw_request, *args, **kwargs)
    runner = _mode_runner()
    try:
        options = parse_options(raw)
        check_request(request, endpoint)
        error = serving._validate_request(request)
        if error:
            return serving.create_error_response(error)
        job = await asyncio.get_running_loop().run_in_executor(
            None, prepare_job, serving, request, raw_request, options, endpoint, runner)
    except DynasorOptionError as e:
        return serving.create_error_response(str(e), param=e.param)
    except ValueError as e:
        return serving.create_error_response(str(e))
    except HTTPException as e:
        return serving.create_error_response(e.detail, err_type=str(e.status_code), status_code=e.status_code)
    meta = ResponseMeta(f"{serving._request_id_prefix()}{uuid.uuid4().hex}", int(time.time()), request.model, endpoint)
    if request.stream:
        events = _events(job, meta, serving, raw_request, _include_usage(request))
        return StreamingResponse(events, media_type="text/event-stream")
    try:
        run = runner.run(job, TokenizerManagerEngine(serving.tokenizer_manager, raw_request))
        outcome = await _unless_disconnected(run, raw_request)
    except ValueError as e:  # a request of the program was rejected, or the client disconnected
        return serving.create_error_response(str(e))
    except Exception as e:
        logger.exception("dynasor %s request failed", options.mode)
        return serving.create_error_response(f"Internal server error: {e}", "InternalServerError", 500)
    return JSONResponse(response_body(meta, outcome))


def handle_chat_request(original: Callable[..., Awaitable[Any]], serving: Any, request: Any, raw_request: Any,
                        *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """AROUND hook on ``OpenAIServingChat.handle_request``."""
    return _handle("chat", original, serving, request, raw_request, *args, **kwargs)


def handle_completion_request(original: Callable[..., Awaitable[Any]], serving: Any, request: Any,
                              raw_request: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """AROUND hook on ``OpenAIServingCompletion.handle_request``."""
    return _handle("completions", original, serving, request, raw_request, *args, **kwargs)
