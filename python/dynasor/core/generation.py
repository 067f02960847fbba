"""What one finished request gives a program, and the interface programs send requests through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from dynasor.core.tag import NO_HINTS, RequestHints

# What a request continues from: text, or token ids (SGLang's ``input_ids``) that are sent as they are.
Prompt: TypeAlias = str | Sequence[int]


@dataclass(frozen=True)
class Generation:
    """One finished request: its text, generated tokens, finish reason type, SGLang's meta_info and
    the generated token ids (empty when the backend does not return them)."""

    text: str
    completion_tokens: int
    finish_reason: str
    meta_info: Mapping[str, Any] = field(default_factory=dict)
    output_ids: tuple[int, ...] = ()

    @property
    def aborted(self) -> bool:
        return self.finish_reason == "abort"

    @classmethod
    def from_response(cls, out: Mapping[str, Any]) -> Generation:
        """From a ``/generate`` (or ``Engine.async_generate``) response."""
        meta = out["meta_info"]
        return cls(out["text"], meta["completion_tokens"], meta["finish_reason"]["type"], meta,
                   tuple(out.get("output_ids") or ()))


class Backend(Protocol):
    """Where a program's requests go. Implementations tag requests with the program (or not, for a
    stock server) and stop a program by aborting whatever it still has in the engine."""

    async def generate(self, prompt: Prompt, params: Mapping[str, Any], program_id: str,
                       remaining_work: float | None = None, hints: RequestHints = NO_HINTS) -> Generation:
        """One request of the program; ``hints``: what else its tag asks (deferred, confidence stop)."""
        ...

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int] | None:
        """The ids the engine would make of ``text`` (as ``/generate`` does, with the tokenizer's
        special tokens unless told otherwise), or None when this backend cannot tell: programs
        then send text."""
        ...

    async def stop_program(self, program_id: str) -> None: ...
