"""Entry point of the ``sglang.srt.plugins`` group (see setup.py).

SGLang calls ``register`` in every process it starts (main, scheduler, detokenizer) of every
server in this environment. It does nothing unless the Dynasor launcher armed it with
``DYNASOR_ENABLED=1``, so a stock ``python -m sglang.launch_server`` stays stock: that stock server
is the baseline of every benchmark. Armed, it installs the hooks of ``hooks.HOOKS`` and leaves the
hook self-check for the process to run once SGLang has applied them (``context.run_startup_checks``).
"""

from __future__ import annotations

from dynasor.srt.config import dynasor_enabled, process_config


def register() -> None:
    if not dynasor_enabled():
        return
    from functools import partial

    from dynasor.srt.context import add_startup_check
    from dynasor.srt.hooks import install_hooks, verify_hooks

    config = process_config()
    install_hooks(config)
    add_startup_check(partial(verify_hooks, config))
