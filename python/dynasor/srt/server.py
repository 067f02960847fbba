"""Start SGLang's HTTP server with Dynasor armed (written against sglang==0.5.23).

``serve`` arms the plugin through the environment before SGLang is imported (spawned scheduler
processes inherit it), loads the plugins, adds the ``/dynasor`` routes and the dynasor modes'
runner, and runs SGLang's own ``launch_server``.
"""

from __future__ import annotations

import os

from dynasor.modes.job import ModeRunner
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.server_defaults import cpu_env


def serve(config: DynasorServerConfig, sglang_argv: list[str], on_cpu: bool, mode_runner: ModeRunner) -> None:
    os.environ.update(config.to_env())
    if on_cpu:
        for key, value in cpu_env().items():
            os.environ.setdefault(key, value)

    from sglang.srt.entrypoints import http_server
    from sglang.srt.plugins import load_plugins
    from sglang.srt.server_args import prepare_server_args

    from dynasor.srt.http_routes import install_routes
    from dynasor.srt.openai_mode_hooks import use_mode_runner

    load_plugins()
    server_args = prepare_server_args(sglang_argv)
    install_routes(http_server.app, config)
    use_mode_runner(mode_runner)
    url = f"http://{server_args.host}:{server_args.port}"

    def announce_ready() -> None:
        print(f"Dynasor server ready at {url} (model {server_args.model_path})", flush=True)

    try:
        http_server.launch_server(server_args, launch_callback=announce_ready)
    finally:
        from sglang.srt.utils import kill_process_tree

        kill_process_tree(os.getpid(), include_parent=False)
