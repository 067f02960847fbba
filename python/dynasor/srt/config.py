"""Dynasor server settings, passed from the launcher to SGLang's spawned processes.

SGLang spawns the scheduler with ``multiprocessing`` (start method ``spawn``), so the only state
that reliably reaches it is the environment. The launcher sets ``DYNASOR_ENABLED=1`` (which arms
the plugin) and ``DYNASOR_SERVER_CONFIG`` (this dataclass as JSON); a stock
``python -m sglang.launch_server`` sets neither and stays stock.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, fields

ENV_ENABLED = "DYNASOR_ENABLED"
ENV_CONFIG = "DYNASOR_SERVER_CONFIG"
ENV_TREE_CORE = "SGLANG_UNIFIED_RADIX_TREE_CORE_BACKEND"
EVICTION_CHOICES = ("program", "sglang")


@dataclass(frozen=True)
class DynasorServerConfig:
    program_ttl: float = 60.0
    max_done_programs: int = 1_000
    entropy_topk: int = 20
    confidence_window: int = 2048
    schedule_policy: str = "gang-sjf"
    starvation_factor: float = 4.0
    starvation_floor_s: float = 5.0
    starvation_cap_s: float = 60.0
    eviction: str = "program"  # "program" (Python TreeCore + program-aware strategy) or "sglang"
    # Per-server secret of the program keys shown in listings (see dynasor.tags.program_key).
    # It travels in the environment, which SGLang does not expose (/server_info omits it).
    key_secret: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def key_secret_bytes(self) -> bytes:
        return bytes.fromhex(self.key_secret)

    def to_env(self) -> dict[str, str]:
        env = {ENV_ENABLED: "1", ENV_CONFIG: json.dumps(asdict(self))}
        if self.eviction == "program":
            env[ENV_TREE_CORE] = "python"  # program-aware eviction ranks leaves in Python (srt/eviction.py)
        return env

    @classmethod
    def from_env(cls) -> "DynasorServerConfig":
        raw = os.environ.get(ENV_CONFIG)
        if not raw:
            return cls()
        data = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def dynasor_enabled() -> bool:
    return os.environ.get(ENV_ENABLED) == "1"
