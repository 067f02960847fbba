"""Dynasor server settings: declared once, parsed once, passed to SGLang's spawned processes.

Each field of ``DynasorServerConfig`` is declared with ``setting(...)``: its default, its help, the
rule it must satisfy and its ``--dynasor-*`` flag. From that one declaration come the flags of
``dynasor serve`` (``add_flags``), their parsing (``from_args``), the validation (``__post_init__``,
so a config built in code is checked the same way) and the transport to SGLang's processes.

SGLang spawns the scheduler with ``multiprocessing`` (start method ``spawn``), so the only state
that reliably reaches it is the environment. The launcher sets ``DYNASOR_ENABLED=1`` (which arms
the plugin) and ``DYNASOR_SERVER_CONFIG`` (this dataclass as JSON); a stock
``python -m sglang.launch_server`` sets neither and stays stock. Each process reads it once
(``process_config``) and passes the object on.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import secrets
import typing
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from dynasor.core.instance import ENV_INSTANCE_ID
from dynasor.scheduler.ordering import QueuePolicy

ENV_ENABLED = "DYNASOR_ENABLED"
ENV_CONFIG = "DYNASOR_SERVER_CONFIG"
ENV_TREE_CORE = "SGLANG_UNIFIED_RADIX_TREE_CORE_BACKEND"
EVICTION_CHOICES = ("program", "sglang")
RETRACTION_CHOICES = ("program", "sglang")
DP_PLACEMENT_CHOICES = ("program", "sglang")
FLAG_PREFIX = "--dynasor-"


class ConfigError(ValueError):
    """A setting outside its rule; the message names the flag."""


@dataclass(frozen=True)
class Setting:
    """How one config field is exposed: help text, the rule it must satisfy, its flag."""

    help: str
    rule: Callable[[Any], bool] | None = None
    requirement: str = ""  # the rule in words, for the error message
    choices: tuple[str, ...] | None = None
    flag: str | None = ""  # "" = derived from the field name; None = not a flag


def setting(default: Any = MISSING, help: str = "", *, rule: Callable[[Any], bool] | None = None,
            requirement: str = "", choices: tuple[str, ...] | None = None, flag: str | None = "",
            default_factory: Callable[[], Any] | None = None) -> Any:
    meta = {"setting": Setting(help, rule, requirement, choices, flag)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DynasorServerConfig:
    program_ttl: float = setting(60.0, "seconds a finished program stays in /dynasor/programs",
                                 rule=lambda v: v >= 0, requirement=">= 0")
    max_done_programs: int = setting(1_000, "finished programs kept at most, oldest dropped first",
                                     rule=lambda v: v >= 0, requirement=">= 0")
    entropy_topk: int = setting(20, "k of the per-token top-k confidence", rule=lambda v: 0 <= v <= 20,
                                requirement="in [0, 20]")
    confidence_window: int = setting(2048, "tokens per sliding window of the lowest-window confidence",
                                     rule=lambda v: v >= 1, requirement=">= 1")
    schedule_policy: str = setting(
        QueuePolicy.GANG_SJF.value, "waiting-queue order: stock SGLang fcfs / lpm (SGLang's own code path), "
        "program-fifo (application FIFO), gang, gang-sjf, sjf (gang-sjf without the gang)",
        choices=tuple(p.value for p in QueuePolicy))
    starvation_factor: float = setting(4.0, "escalate a program waiting longer than this many times its "
                                       "estimated service time", rule=lambda v: v > 0, requirement="> 0")
    starvation_floor_s: float = setting(5.0, "lower bound of the escalation wait, seconds", rule=lambda v: v > 0,
                                        requirement="> 0", flag="starvation-floor")
    starvation_cap_s: float = setting(60.0, "absolute cap of the escalation wait, seconds", rule=lambda v: v > 0,
                                      requirement="> 0", flag="starvation-cap")
    eviction: str = setting("sglang", "radix-cache eviction: 'sglang' keeps SGLang's own (its Rust tree core); "
                            "'program' evicts prefixes held only by done programs before those of live programs "
                            "(switches SGLang to its slower Python tree core: for a KV pool that programs "
                            "outgrow)", choices=EVICTION_CHOICES)
    retraction: str = setting("sglang", "when a decode step runs out of KV: 'sglang' retracts requests with the fewest "
                              "output tokens first (SGLang's order); 'program' retracts program by program, the one "
                              "with the most remaining work first (dynasor.scheduler.kv_gang)",
                              choices=RETRACTION_CHOICES)
    dp_placement: str = setting("program", "with --dp-size > 1: 'program' serves every request of a program on one "
                                "rank (new programs on the rank with fewest outstanding requests); 'sglang' leaves "
                                "every request to SGLang's --load-balance-method", choices=DP_PLACEMENT_CHOICES)
    step_log: str = setting("", "append one JSON line per scheduling step to this file (time in scheduling, forward, "
                            "queue ordering and radix cache; for finding where throughput goes; off when empty)")
    allow_unsupported_sglang: bool = setting(False, "start even if the installed SGLang is not the version Dynasor's "
                                             "hooks were written against (logged)")
    # Per-server secret of the program keys shown in listings (see dynasor.core.tag.program_key).
    # It travels in the environment, which SGLang does not expose (/server_info omits it).
    key_secret: str = setting(help="program-key secret", flag=None, default_factory=lambda: secrets.token_hex(16))
    # Names this launch: served at GET /dynasor/instance, so a readiness check knows that the server
    # answering is the one it started (a taken port can answer for another). $DYNASOR_INSTANCE_ID or random.
    instance_id: str = setting(help="launch nonce", flag=None,
                               default_factory=lambda: os.environ.get(ENV_INSTANCE_ID) or secrets.token_hex(8))

    def __post_init__(self) -> None:
        for f in fields(self):
            spec: Setting = f.metadata["setting"]
            value = getattr(self, f.name)
            if spec.choices is not None and value not in spec.choices:
                raise ConfigError(f"{flag_of(f.name)} must be one of {list(spec.choices)}, got {value!r}")
            if spec.rule is not None and not spec.rule(value):
                raise ConfigError(f"{flag_of(f.name)} must be {spec.requirement}, got {value!r}")
        if self.starvation_floor_s > self.starvation_cap_s:
            raise ConfigError(f"{flag_of('starvation_floor_s')} must be <= {flag_of('starvation_cap_s')}")

    @property
    def key_secret_bytes(self) -> bytes:
        return bytes.fromhex(self.key_secret)

    @property
    def queue_policy(self) -> QueuePolicy:
        return QueuePolicy(self.schedule_policy)

    # --- flags ------------------------------------------------------------------------------
    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        defaults = cls()
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            spec: Setting = f.metadata["setting"]
            if spec.flag is None:
                continue
            extra = f" ({spec.requirement})" if spec.requirement else ""
            if hints[f.name] is bool:
                parser.add_argument(flag_of(f.name), dest=f.name, action="store_true", help=spec.help)
                continue
            parser.add_argument(flag_of(f.name), dest=f.name, type=hints[f.name], choices=spec.choices,
                                default=getattr(defaults, f.name), help=f"{spec.help}{extra} (default %(default)s)")

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> DynasorServerConfig:
        """From parsed flags; raises ``ConfigError`` naming the flag of a bad value."""
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})

    # --- transport to SGLang's processes ----------------------------------------------------
    def to_env(self) -> dict[str, str]:
        env = {ENV_ENABLED: "1", ENV_CONFIG: json.dumps(asdict(self))}
        if self.eviction == "program":
            env[ENV_TREE_CORE] = "python"  # program-aware eviction ranks leaves in Python (srt/eviction_hooks.py)
        return env

    @classmethod
    def from_env(cls) -> DynasorServerConfig:
        raw = os.environ.get(ENV_CONFIG)
        if not raw:
            return cls()
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def flag_of(name: str) -> str:
    """The ``--dynasor-*`` flag of a config field."""
    spec: Setting = next(f for f in fields(DynasorServerConfig) if f.name == name).metadata["setting"]
    return FLAG_PREFIX + (spec.flag or name.replace("_", "-"))


def dynasor_enabled() -> bool:
    return os.environ.get(ENV_ENABLED) == "1"


@functools.cache
def process_config() -> DynasorServerConfig:
    """This process's config, read from the environment once (scheduler and main process alike)."""
    return DynasorServerConfig.from_env()
