"""Launch a Dynasor server: the real SGLang server with Dynasor's plugin armed.

    python -m dynasor.launch_server [any sglang server flag] [--dynasor-* flags]
    dynasor serve ...                (the same)

Without ``--model-path`` it serves the embedded default model. On a machine without CUDA it fills
in the CPU defaults of ``dynasor.srt.server_defaults``; explicit flags always win.
"""

from __future__ import annotations

import argparse
import os
import sys

from dynasor.scheduler.ordering import Policy
from dynasor.srt.config import EVICTION_CHOICES, DynasorServerConfig
from dynasor.srt.server_defaults import cpu_env, flag_given, has_cuda, with_defaults


def dynasor_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynasor serve",
        description="Dynasor server. Every SGLang server flag is accepted as well "
        "(python -m sglang.launch_server --help lists them).",
        add_help=False,
    )
    defaults = DynasorServerConfig()
    parser.add_argument(
        "--dynasor-program-ttl", type=float, default=defaults.program_ttl,
        help="seconds a finished program stays in /dynasor/programs (default %(default)s)",
    )
    parser.add_argument(
        "--dynasor-max-done-programs", type=int, default=defaults.max_done_programs,
        help="finished programs kept at most, oldest dropped first (default %(default)s)",
    )
    parser.add_argument(
        "--dynasor-entropy-topk", type=int, default=defaults.entropy_topk,
        help="k of the per-token top-k confidence, 0 to 20 (default %(default)s)",
    )
    parser.add_argument(
        "--dynasor-confidence-window", type=int, default=defaults.confidence_window,
        help="tokens per sliding window of the lowest-window confidence (default %(default)s)",
    )
    parser.add_argument(
        "--dynasor-schedule-policy", choices=[p.value for p in Policy], default=defaults.schedule_policy,
        help="waiting-queue order: stock SGLang fcfs / lpm (SGLang's own code path), program-fifo "
        "(application FIFO), gang, gang-sjf (default %(default)s)",
    )
    parser.add_argument("--dynasor-starvation-factor", type=float, default=defaults.starvation_factor,
                        help="escalate a program waiting longer than this many times its estimated "
                        "service time (default %(default)s)")
    parser.add_argument("--dynasor-starvation-floor", type=float, default=defaults.starvation_floor_s,
                        help="lower bound of the escalation wait, seconds (default %(default)s)")
    parser.add_argument("--dynasor-starvation-cap", type=float, default=defaults.starvation_cap_s,
                        help="absolute cap of the escalation wait, seconds (default %(default)s)")
    parser.add_argument(
        "--dynasor-eviction", choices=list(EVICTION_CHOICES), default=defaults.eviction,
        help="radix-cache eviction: 'program' evicts prefixes held only by done programs before those of "
             "live programs (uses SGLang's Python tree core); 'sglang' keeps SGLang's own (default %(default)s)",
    )
    return parser


def split_args(argv: list[str]) -> tuple[DynasorServerConfig, list[str]]:
    """Dynasor's own flags and the SGLang argv that remains."""
    ns, sglang_argv = dynasor_arg_parser().parse_known_args(argv)
    if ns.dynasor_program_ttl < 0:
        raise SystemExit("--dynasor-program-ttl must be >= 0")
    if ns.dynasor_max_done_programs < 0:
        raise SystemExit("--dynasor-max-done-programs must be >= 0")
    if not 0 <= ns.dynasor_entropy_topk <= 20:
        raise SystemExit("--dynasor-entropy-topk must be in [0, 20]")
    if ns.dynasor_confidence_window < 1:
        raise SystemExit("--dynasor-confidence-window must be >= 1")
    if not 0 < ns.dynasor_starvation_floor <= ns.dynasor_starvation_cap or ns.dynasor_starvation_factor <= 0:
        raise SystemExit("need --dynasor-starvation-factor > 0 and 0 < floor <= cap")
    config = DynasorServerConfig(
        program_ttl=ns.dynasor_program_ttl, max_done_programs=ns.dynasor_max_done_programs,
        entropy_topk=ns.dynasor_entropy_topk, confidence_window=ns.dynasor_confidence_window,
        schedule_policy=ns.dynasor_schedule_policy, starvation_factor=ns.dynasor_starvation_factor,
        starvation_floor_s=ns.dynasor_starvation_floor, starvation_cap_s=ns.dynasor_starvation_cap,
        eviction=ns.dynasor_eviction,
    )
    if flag_given(sglang_argv, "--schedule-policy"):
        raise SystemExit("dynasor serve: use --dynasor-schedule-policy (fcfs and lpm are SGLang's own policies)")
    policy = Policy(config.schedule_policy)
    # Program policies run on top of SGLang's lpm (prefix matching + in-batch prefix dedup);
    # the stock ones are SGLang's own policies.
    sglang_argv = [*sglang_argv, "--schedule-policy", policy.value if policy.is_stock else "lpm"]
    return config, sglang_argv


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        dynasor_arg_parser().print_help()
        print()
    config, sglang_argv = split_args(argv)
    on_cpu = not has_cuda()
    if not flag_given(sglang_argv, "--model-path") and "-h" not in argv and "--help" not in argv:
        from dynasor.model import default_model_path

        sglang_argv = ["--model-path", str(default_model_path()), *sglang_argv]
    sglang_argv = with_defaults(sglang_argv, on_cpu)

    # Arm the plugin before SGLang is imported; spawned scheduler processes inherit the env.
    os.environ.update(config.to_env())
    if on_cpu:
        for key, value in cpu_env().items():
            os.environ.setdefault(key, value)

    from sglang.srt.entrypoints import http_server
    from sglang.srt.plugins import load_plugins
    from sglang.srt.server_args import prepare_server_args

    from dynasor.srt.http_routes import install_routes

    load_plugins()
    server_args = prepare_server_args(sglang_argv)
    install_routes(http_server.app)
    url = f"http://{server_args.host}:{server_args.port}"

    def announce_ready() -> None:
        print(f"Dynasor server ready at {url} (model {server_args.model_path})", flush=True)

    try:
        http_server.launch_server(server_args, launch_callback=announce_ready)
    finally:
        from sglang.srt.utils import kill_process_tree

        kill_process_tree(os.getpid(), include_parent=False)


if __name__ == "__main__":
    main()
