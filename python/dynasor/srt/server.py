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

from dynasor.core.instance import instance_of
from dynasor.modes.job import ModeRunner
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.server_defaults import bind_cpu_ranks, cpu_env
from dynasor.srt.server_state import ServerState, activate_server_state
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
    state = ServerState(config, mode_runner, dp_size=server_args.dp_size)
    activate_server_state(state)
    install_routes(http_server.app, state)
    url = f"http://{server_args.host}:{server_args.port}"

    def announce_ready() -> None:
        answering = instance_of(url)
        if answering != config.instance_id:
            print(f"dynasor serve: the server answering at {url} is not this one (instance {answering!r}, this "
                  f"launch {config.instance_id!r}); stopping", file=sys.stderr, flush=True)
            from sglang.srt.utils import kill_process_tree

            kill_process_tree(os.getpid(), include_parent=True)
            return
        print(f"Dynasor server ready at {url} (model {server_args.model_path})", flush=True)

    try:
        http_server.launch_server(server_args, launch_callback=announce_ready)
    finally:
        from sglang.srt.utils import kill_process_tree

        kill_process_tree(os.getpid(), include_parent=False)
