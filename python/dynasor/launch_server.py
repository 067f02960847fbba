"""Launch a Dynasor server: the real SGLang server with Dynasor's plugin armed.

This is where the pieces meet: the flags become a ``DynasorServerConfig``, and the SGLang side
(``dynasor.srt.serve.serve``) gets the application's mode runner (``dynasor.modes.runner``) through
the ``ModeRunner`` interface, so ``srt/`` never imports the application layer.

    python -m dynasor.launch_server [any sglang server flag] [--dynasor-* flags]
    dynasor serve ...                (the same)

Without ``--model-path`` it serves the embedded default model. On a machine without CUDA it fills
in the CPU defaults of ``dynasor.srt.cpu_defaults``; explicit flags always win.
"""

from __future__ import annotations

import argparse
import sys

from dynasor.srt.config import ConfigError, DynasorServerConfig
from dynasor.srt.cpu_defaults import DEFAULT_HOST, flag_given, flag_value, has_cuda, with_defaults
from dynasor.srt.http_listener import HttpListener, PortTakenError, reserve_http_port


def dynasor_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynasor serve",
        description="Dynasor server. Every SGLang server flag is accepted as well "
        "(python -m sglang.launch_server --help lists them).",
        add_help=False,
    )
    DynasorServerConfig.add_flags(parser)
    return parser


def split_args(argv: list[str]) -> tuple[DynasorServerConfig, list[str]]:
    """Dynasor's own flags and the SGLang argv that remains."""
    ns, sglang_argv = dynasor_arg_parser().parse_known_args(argv)
    try:
        config = DynasorServerConfig.from_args(ns)
    except ConfigError as e:
        raise SystemExit(f"dynasor serve: {e}") from None
    if flag_given(sglang_argv, "--schedule-policy"):
        raise SystemExit("dynasor serve: use --dynasor-schedule-policy (fcfs and lpm are SGLang's own policies)")
    policy = config.queue_policy
    # Program policies run on top of SGLang's lpm (prefix matching + in-batch prefix dedup);
    # the stock ones are SGLang's own policies.
    sglang_argv = [*sglang_argv, "--schedule-policy", policy.value if policy.is_stock else "lpm"]
    return config, sglang_argv


def reserve_port(sglang_argv: list[str]) -> HttpListener:
    """Bind and listen on the server's port before anything else starts, or exit at once when it is
    taken: nothing (another server, the engine's own ephemeral sockets) can take it while the model
    loads, and uvicorn serves on this socket later (``dynasor.srt.http_listener``)."""
    host, port = flag_value(sglang_argv, "--host") or DEFAULT_HOST, int(flag_value(sglang_argv, "--port") or 0)
    try:
        return reserve_http_port(host, port)
    except (PortTakenError, OSError) as e:
        raise SystemExit(f"dynasor serve: {e}") from None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        dynasor_arg_parser().print_help()
        print()
    config, sglang_argv = split_args(argv)
    on_cpu = not has_cuda()
    sglang_argv = with_defaults(sglang_argv, on_cpu)
    wants_help = "-h" in argv or "--help" in argv
    if not wants_help:
        reserve_port(sglang_argv)
    if not flag_given(sglang_argv, "--model-path") and not wants_help:
        from dynasor.model import default_model_path

        sglang_argv = ["--model-path", str(default_model_path()), *sglang_argv]

    from dynasor.modes.runner import ProgramModeRunner
    from dynasor.srt.serve import serve

    serve(config, sglang_argv, on_cpu, ProgramModeRunner())


if __name__ == "__main__":
    main()
