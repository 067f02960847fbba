"""What one finished request gives a program, and the interface programs send requests through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Generation:
    """One finished request: its text, generated tokens, finish reason type and SGLang's meta_info."""

    text: str
    completion_tokens: int
    finish_reason: str
    meta_info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def aborted(self) -> bool:
        return self.finish_reason == "abort"

    @classmethod
    def from_response(cls, out: Mapping[str, Any]) -> Generation:
        """From a ``/generate`` (or ``Engine.async_generate``) response."""
        meta = out["meta_info"]
        return cls(out["text"], meta["completion_tokens"], meta["finish_reason"]["type"], meta)


class Backend(Protocol):
    """Where a program's requests go. Implementations tag requests with the program (or not, for a
    stock server) and stop a program by aborting whatever it still has in the engine."""

    async def generate(self, prompt: str, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None, deferred: bool = False) -> Generation:
        """One request of the program; ``deferred``: optional work (the tag's ``deferred``)."""
        ...

    async def stop_program(self, program_id: str) -> None: ...
