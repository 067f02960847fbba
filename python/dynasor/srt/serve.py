"""Start SGLang's HTTP server with Dynasor armed (written against sglang==0.5.23).

``serve`` checks the installed SGLang release, arms the plugin through the environment before
SGLang is imported (spawned scheduler processes inherit it), loads the plugins and runs the hook
self-check (a server whose hooks did not all apply refuses to start), adds the ``/dynasor`` routes
and the dynasor modes' runner, and runs SGLang's own ``launch_server``. Once SGLang says it is
ready, the launch checks that the server answering is this one (``GET /dynasor/instance``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, NoReturn

from dynasor.core.instance import instance_of
from dynasor.modes.job import ModeRunner
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.cpu_defaults import bind_cpu_ranks, cpu_env
from dynasor.srt.http_listener import HttpListener, reserved_listener
from dynasor.srt.main_process_state import MainProcessState, activate_main_process_state
from dynasor.srt.sglang_version import UnsupportedSGLangError, check_sglang_version

logger = logging.getLogger(__name__)


def serve(config: DynasorServerConfig, sglang_argv: list[str], on_cpu: bool, mode_runner: ModeRunner) -> None:
    try:
        check_sglang_version(config.allow_unsupported_sglang)
    except UnsupportedSGLangError as e:
        raise SystemExit(f"dynasor serve: {e}") from None
    os.environ.update(config.to_env())
    if on_cpu:
        for key, value in cpu_env().items():
            os.environ.setdefault(key, value)

    from sglang.srt.entrypoints import http_server
    from sglang.srt.plugins import load_plugins
    from sglang.srt.server_args import prepare_server_args

    from dynasor.srt.context import run_startup_checks
    from dynasor.srt.hooks import HookCheckError
    from dynasor.srt.http_routes import install_routes

    load_plugins()
    try:
        run_startup_checks()
    except HookCheckError as e:
        raise SystemExit(f"dynasor serve: {e}") from None
    server_args = prepare_server_args(sglang_argv)
    if on_cpu:
        try:
            bind_cpu_ranks(server_args.dp_size * server_args.tp_size * server_args.pp_size)
        except ValueError as e:
            raise SystemExit(f"dynasor serve: {e}") from None
    state = MainProcessState(config, mode_runner, dp_size=server_args.dp_size)
    activate_main_process_state(state)
    install_routes(http_server.app, state)
    url = f"http://{server_args.host}:{server_args.port}"

    ready = False

    def announce_ready() -> None:
        nonlocal ready
        answering = instance_of(url)
        if answering != config.instance_id:
            print(f"dynasor serve: the server answering at {url} is not this one (instance {answering!r}, this "
                  f"launch {config.instance_id!r}); stopping", file=sys.stderr, flush=True)
            from sglang.srt.utils import kill_process_tree

            kill_process_tree(os.getpid(), include_parent=True)
            return
        ready = True
        print(f"Dynasor server ready at {url} (model {server_args.model_path})", flush=True)

    listener = reserved_listener()
    if listener is not None and not serves_on_one_uvicorn(server_args):
        raise SystemExit("dynasor serve: --enable-http2, --enable-ssl-refresh and --tokenizer-worker-num > 1 "
                         "serve HTTP another way; Dynasor serves through one uvicorn server")
    try:
        http_server.launch_server(server_args, launch_callback=announce_ready)
    except BaseException as e:
        end_server(e, listener, ready)
    end_server(None, listener, ready)


def serves_on_one_uvicorn(server_args: Any) -> bool:
    """SGLang serves HTTP through one ``uvicorn.Server`` (the port reserved at launch) unless one of
    these modes is on."""
    return not (getattr(server_args, "enable_http2", False) or getattr(server_args, "enable_ssl_refresh", False)
                or getattr(server_args, "tokenizer_worker_num", 1) > 1)


def end_server(error: BaseException | None, listener: HttpListener | None, was_ready: bool) -> NoReturn:
    """Leave no engine process behind and exit now. A failure says so in one line on stderr;
    ``os._exit`` because SGLang's non-daemon threads (the warm-up's readiness poll) would otherwise
    keep a server that gave up alive."""
    from sglang.srt.utils import kill_process_tree

    code = 0
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    elif isinstance(error, KeyboardInterrupt):
        code = 130
    elif error is not None:
        code = 1
    left = ""
    try:
        kill_process_tree(os.getpid(), include_parent=False, wait_timeout=30)
    except Exception as e:
        left = f"; could not end every engine process: {e}"
    if error is not None and code != 0:  # the last line on stderr
        stage = "after it was ready" if was_ready else "before it was ready"
        detail = f": {error}" if not isinstance(error, SystemExit) or isinstance(error.code, str) else ""
        if not isinstance(error, SystemExit):
            detail = f": {type(error).__name__}{detail}"
        ended = left or "; its engine processes are ended"
        print(f"dynasor serve: the server stopped {stage} (exit code {code}{detail}){ended}",
              file=sys.stderr, flush=True)
    if listener is not None:
        listener.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
