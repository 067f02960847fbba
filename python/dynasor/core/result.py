"""What a reasoning program answers when it ends (paper App. D.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProgramResult:
    answer: str | None
    knob_used: int
    generated_tokens: int
    stopped_early: bool
    certaindex: float | None
    extra: dict[str, Any] = field(default_factory=dict)
