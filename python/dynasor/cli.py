"""The ``dynasor`` command."""

from __future__ import annotations

import sys

USAGE = """usage: dynasor <command> [args]

commands:
  serve      launch a Dynasor server (SGLang server flags + --dynasor-* flags)
  model      materialize the embedded default model and print its folder
  calibrate  choose a certaindex threshold from labelled problems (records on a server, or --profiles)
  chat       chat with a running server, streaming, with the tokens each answer saved (pipe prompts for scripts)
  simulate   SIMULATED attainment-vs-rate sweeps of serving systems on a CPU or GPU profile (no server)
"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command == "serve":
        from dynasor.launch_server import main as serve

        serve(rest)
    elif command == "calibrate":
        from dynasor.program_runtime.calibrate import main as calibrate

        calibrate(rest)
    elif command == "chat":
        from dynasor.chat import main as chat

        chat(rest)
    elif command == "simulate":
        from dynasor.sim.cli import main as simulate

        simulate(rest)
    elif command == "model":
        from dynasor.model import main as model

        model()
    else:
        print(USAGE, end="", file=sys.stderr)
        raise SystemExit(f"dynasor: unknown command {command!r}")


if __name__ == "__main__":
    main()
