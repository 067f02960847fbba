"""``dynasor chat``: a terminal chat with a Dynasor server, showing the tokens each answer saved.

    dynasor chat [--url http://127.0.0.1:30000] [--effort low|mid|high] [--mode cot|plain]

It streams from the server's OpenAI-compatible ``/v1/chat/completions`` with the ``openai`` client.
In ``cot`` mode (the default) the request carries ``extra_body={"dynasor": {"mode": "cot", "effort":
...}}``, so the server runs Dynasor-CoT and stops the reasoning once its probed answer settles; the
closing usage chunk (``stream_options.include_usage``) then reports ``completion_tokens``,
``probe_tokens`` and, when the server knows it, ``baseline_tokens`` (what a plain run would have
used). After each answer one line shows them and the saving, baseline − completion. ``plain`` sends
SGLang's request unchanged (the comparison point).

On a terminal the chat keeps the conversation (``/reset`` forgets it, ``/exit`` or Ctrl-D leaves).
With stdin not a terminal it is a scripting tool: every non-blank line is one independent prompt,
the answer is printed as plain text followed by its tokens line, and it exits 0 at EOF (1 on the
first failed request).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:30000"
DEFAULT_MAX_TOKENS = 1024
SUMMARY_PREFIX = "[tokens]"
PROMPT = "you> "


@dataclass(frozen=True)
class AnswerStats:
    """Token accounting of one answer; None where the server did not say."""

    completion_tokens: int | None = None
    probe_tokens: int | None = None
    baseline_tokens: int | None = None
    exit: str | None = None

    @property
    def saved(self) -> int | None:
        if self.baseline_tokens is None or self.completion_tokens is None:
            return None
        return self.baseline_tokens - self.completion_tokens


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dynasor chat", description="Chat with a Dynasor server; shows the "
                                     "tokens each answer saved. Reads one prompt per line when stdin is piped.")
    parser.add_argument("--url", default=os.environ.get("DYNASOR_URL", DEFAULT_URL),
                        help=f"server address (default: $DYNASOR_URL or {DEFAULT_URL})")
    parser.add_argument("--mode", choices=("cot", "plain"), default="cot",
                        help="cot: Dynasor-CoT early exit (default); plain: SGLang's request unchanged")
    parser.add_argument("--effort", choices=("low", "mid", "high"), default="mid",
                        help="how hard cot mode tries to save tokens: high exits earliest (default: mid)")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                        help=f"token budget of an answer (default: {DEFAULT_MAX_TOKENS})")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (server default)")
    parser.add_argument("--model", default=None, help="model name (default: the first one the server lists)")
    parser.add_argument("--system", default=None, help="a system message to start every conversation with")
    parser.add_argument("--api-key", default=os.environ.get("DYNASOR_API_KEY") or os.environ.get("OPENAI_API_KEY"),
                        help="bearer key if the server requires one (default: $DYNASOR_API_KEY)")
    args = parser.parse_args(argv)
    if args.max_tokens < 1:
        parser.error("--max-tokens must be >= 1")
    return args


def build_request(args: argparse.Namespace, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    """Keyword arguments of ``client.chat.completions.create`` for one streamed answer."""
    request: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": args.max_tokens,
                               "stream": True, "stream_options": {"include_usage": True}}
    if args.temperature is not None:
        request["temperature"] = args.temperature
    if args.mode == "cot":
        request["extra_body"] = {"dynasor": {"mode": "cot", "effort": args.effort}}
    return request


def prompts_from(lines: Iterable[str]) -> Iterator[str]:
    """The prompts of piped input: every non-blank line, stripped."""
    for line in lines:
        prompt = line.strip()
        if prompt:
            yield prompt


def _field(obj: Any, key: str) -> Any:
    """A field of a dict or of an openai model (extra fields live in ``model_extra``)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    value = getattr(obj, key, None)
    if value is None:
        value = (getattr(obj, "model_extra", None) or {}).get(key)
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def usage_stats(usage: Any, report: Any = None) -> AnswerStats:
    """``AnswerStats`` from the final usage and the ``dynasor`` report, tolerating missing fields."""
    probe = _field(usage, "probe_tokens")
    return AnswerStats(completion_tokens=_int(_field(usage, "completion_tokens")),
                       probe_tokens=_int(probe if probe is not None else _field(report, "probe_tokens")),
                       baseline_tokens=_int(_field(usage, "baseline_tokens")),
                       exit=_field(report, "exit") if isinstance(_field(report, "exit"), str) else None)


def format_summary(stats: AnswerStats, mode: str = "cot") -> str:
    """The one-line token report printed after each answer (plain mode is the baseline: no saving)."""
    parts = [f"completion {stats.completion_tokens if stats.completion_tokens is not None else 'unknown'}"]
    if stats.probe_tokens is not None:
        parts.append(f"probe {stats.probe_tokens}")
    if stats.baseline_tokens is not None:
        parts.append(f"baseline {stats.baseline_tokens}")
    saved = stats.saved
    if mode != "plain" and saved is None:
        parts.append("saved unknown (no baseline)")
    elif mode != "plain" and saved is not None and stats.baseline_tokens is not None:
        share = f" ({saved / stats.baseline_tokens:.0%})" if stats.baseline_tokens else ""
        parts.append(f"saved {saved}{share}")
    if stats.exit:
        parts.append(f"exit {stats.exit}")
    return f"{SUMMARY_PREFIX} " + ", ".join(parts)


def stream_answer(client: Any, request: dict[str, Any], out: TextIO) -> tuple[str, AnswerStats]:
    """Stream one answer to ``out`` as it arrives; its full text and token accounting."""
    pieces: list[str] = []
    usage = report = None
    stream = client.chat.completions.create(**request)
    try:
        for chunk in stream:
            usage = _field(chunk, "usage") or usage
            report = _field(chunk, "dynasor") or report
            for choice in _field(chunk, "choices") or []:
                delta = _field(choice, "delta")
                for key in ("reasoning_content", "content"):
                    piece = _field(delta, key)
                    if piece:
                        pieces.append(piece)
                        out.write(piece)
                        out.flush()
    finally:
        stream.close()  # on Ctrl-C too: the server sees the disconnect and aborts the request
    return "".join(pieces), usage_stats(usage, report)


def _answer(client: Any, args: argparse.Namespace, model: str, messages: list[dict[str, str]],
            out: TextIO) -> str:
    text, stats = stream_answer(client, build_request(args, model, messages), out)
    out.write(("" if text.endswith("\n") or not text else "\n") + format_summary(stats, args.mode) + "\n")
    out.flush()
    return text


def _start(args: argparse.Namespace) -> list[dict[str, str]]:
    return [{"role": "system", "content": args.system}] if args.system else []


def run_piped(client: Any, args: argparse.Namespace, model: str, lines: Iterable[str], out: TextIO) -> int:
    """One independent single-turn conversation per prompt line."""
    for prompt in prompts_from(lines):
        _answer(client, args, model, [*_start(args), {"role": "user", "content": prompt}], out)
    return 0


def run_interactive(client: Any, args: argparse.Namespace, model: str, read: Callable[[str], str],
                    out: TextIO) -> int:
    """A conversation with history until ``/exit`` or EOF; Ctrl-C drops the answer being streamed."""
    out.write(f"dynasor chat · {args.url} · {model} · mode {args.mode}"
              + (f", effort {args.effort}" if args.mode == "cot" else "") + " · /reset, /exit\n")
    messages = _start(args)
    while True:
        try:
            prompt = read(PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        if prompt in ("/exit", "/quit"):
            return 0
        if prompt == "/reset":
            messages = _start(args)
            out.write("(conversation cleared)\n")
            continue
        if not prompt:
            continue
        messages.append({"role": "user", "content": prompt})
        try:
            text = _answer(client, args, model, messages, out)
        except KeyboardInterrupt:
            out.write("\n(interrupted)\n")
            messages.pop()
            continue
        except Exception as err:
            if _is_connection_error(err):
                raise
            out.write(f"\nerror: {err}\n")
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": text})


def _is_connection_error(err: BaseException) -> bool:
    import openai

    return isinstance(err, openai.APIConnectionError)


def _model(client: Any) -> str:
    """The server's first listed model (SGLang accepts any name, but this is the honest one)."""
    import openai

    try:
        models = client.models.list().data
    except openai.APIStatusError:
        return "default"
    return models[0].id if models else "default"


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    args = parse_args(argv)
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    import openai

    client = openai.OpenAI(base_url=args.url.rstrip("/") + "/v1", api_key=args.api_key or "EMPTY", max_retries=0)
    try:
        model = args.model or _model(client)
        if stdin.isatty():
            import readline  # noqa: F401  (line editing and history for input())

            code = run_interactive(client, args, model, input, stdout)
        else:
            code = run_piped(client, args, model, stdin, stdout)
    except openai.APIConnectionError:
        raise SystemExit(f"dynasor chat: cannot reach {args.url} (is `dynasor serve` running?)") from None
    except openai.APIError as err:
        raise SystemExit(f"dynasor chat: {err}") from None
    finally:
        client.close()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
