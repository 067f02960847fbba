"""Offline Dynasor: an in-process ``sglang.Engine`` with the Dynasor plugin armed (sglang==0.5.23).

    from dynasor.srt.engine import launch_engine
    from dynasor.program_runtime.backends import EngineBackend

    engine = launch_engine()                       # default model, CPU defaults where there is no GPU
    runtime = ProgramRuntime(EngineBackend(engine), StaticThreshold(0.7))
    ...
    engine.shutdown()

SGLang loads plugins in ``Engine.__init__`` and spawns the scheduler with the current environment,
so arming means setting ``DYNASOR_ENABLED`` / ``DYNASOR_SERVER_CONFIG`` (and, on CPU, the CPU
environment of ``dynasor.srt.cpu_defaults``) while the Engine is built; the caller's
environment is restored afterwards. Plugins load once per
process: an Engine built earlier in the same process without Dynasor keeps the process stock.
"""

from __future__ import annotations

import os
from typing import Any

from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.context import run_startup_checks
from dynasor.srt.cpu_defaults import cpu_default_flags, cpu_env, has_cuda
from dynasor.srt.sglang_version import check_sglang_version


def engine_defaults(on_cpu: bool) -> dict[str, Any]:
    """The server's CPU defaults as ``sglang.Engine`` keyword arguments."""
    out: dict[str, Any] = {"sleep_on_idle": True}
    if on_cpu:
        for flag, value in cpu_default_flags():
            key = flag[2:].replace("-", "_")
            out[key] = True if value is None else (int(value) if value.isdigit() else value)
    return out


def launch_engine(model_path: str | None = None, config: DynasorServerConfig | None = None,
                  **engine_kwargs: Any) -> Any:
    """Build an ``sglang.Engine`` whose scheduler is Dynasor's (program table, ordering, entropy).

    Refuses an unsupported SGLang release (unless ``config.allow_unsupported_sglang``) and an engine
    whose hooks did not all apply (the hook self-check, in this process and in the scheduler's)."""
    from sglang.srt import plugins

    config = config or DynasorServerConfig()
    check_sglang_version(config.allow_unsupported_sglang)
    policy = config.queue_policy
    if "schedule_policy" in engine_kwargs:
        raise ValueError("set the policy with DynasorServerConfig(schedule_policy=...), not schedule_policy")
    if getattr(plugins, "_plugins_loaded", False) and os.environ.get("DYNASOR_ENABLED") != "1":
        raise RuntimeError("SGLang plugins were already loaded in this process without Dynasor: "
                           "launch the Dynasor engine before any stock sglang.Engine")
    on_cpu = not has_cuda()
    if model_path is None:
        from dynasor.model import default_model_path

        model_path = str(default_model_path())
    kwargs = {**engine_defaults(on_cpu), **engine_kwargs,
              "model_path": model_path, "schedule_policy": policy.value if policy.is_stock else "lpm"}
    saved = dict(os.environ)
    os.environ.update(config.to_env())
    if on_cpu:
        for key, value in cpu_env().items():
            os.environ.setdefault(key, value)
    try:
        import sglang

        engine = sglang.Engine(**kwargs)
    finally:
        # The scheduler process has its environment now; servers started later from this
        # process (e.g. a stock baseline) must not inherit Dynasor's settings.
        os.environ.clear()
        os.environ.update(saved)
    try:
        run_startup_checks()  # the hook self-check of this process (the scheduler ran its own)
    except Exception:
        engine.shutdown()
        raise
    return engine
