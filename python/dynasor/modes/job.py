"""A validated dynasor-mode request, and the interface of whatever runs one.

The server's OpenAI hooks (``dynasor.srt.openai_mode_hooks``) build ``ModeJob`` objects and hand
them to a ``ModeRunner``; the launcher installs the implementation (``runner.ProgramModeRunner``),
so SGLang's side never imports programs, the runtime or a client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dynasor.modes.options import ModeOptions
from dynasor.modes.outcome import ModeOutcome


@dataclass(frozen=True)
class ModeJob:
    """A validated dynasor-mode request: the prompt text, per-chunk/sample params, token budget."""

    options: ModeOptions
    prompt: str
    sampling_params: dict[str, Any]
    budget: int
    explicit_max_tokens: int | None


class ModeRunner(Protocol):
    """Runs dynasor-mode requests (what the server's OpenAI hooks need of the application layer)."""

    def reserved_tokens(self, options: ModeOptions, count_tokens: Callable[[str], int]) -> int:
        """Context the program needs beyond the prompt and the budget (e.g. CoT's probe suffix)."""
        ...

    async def run(self, job: ModeJob, engine: Any, on_text: Callable[[str], None] | None = None) -> ModeOutcome:
        """Run the job's program on ``engine`` (``runtime.backends.InProcessEngine``) to its end;
        ``on_text`` (cot only) receives each piece of kept reasoning as it is kept."""
        ...
