"""Entry point of the ``sglang.srt.plugins`` group (see setup.py).

SGLang calls ``register`` in every process it starts (main, scheduler, detokenizer) of every
server in this environment. It does nothing unless the Dynasor launcher armed it with
``DYNASOR_ENABLED=1``, so a stock ``python -m sglang.launch_server`` stays stock: that stock server
is the baseline of every benchmark. Armed, it installs the hooks of ``hooks.HOOKS``.
"""

from __future__ import annotations

from dynasor.srt.config import dynasor_enabled, process_config


def register() -> None:
    if not dynasor_enabled():
        return
    from dynasor.srt.hooks import install_hooks

    install_hooks(process_config())
