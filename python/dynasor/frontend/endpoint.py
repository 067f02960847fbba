"""``DynasorEndpoint``: SGLang's ``RuntimeEndpoint`` that makes each ``sgl.function`` run one program.

SGLang's frontend sends no program identity (docs/frontend.md): every ``gen``, fork branch and
``select`` is an independent ``/generate`` call. This subclass adds the Dynasor tag
(``sampling_params.custom_params["dynasor"]``) to every request a run sends, so the server's
scheduler sees the run as one program (gang scheduling, SJF, one-call abort).

Which program a request belongs to, for a ``StreamExecutor`` ``s`` (written against sglang==0.5.23):

- an endpoint made by ``bind(program)`` (what ``dynasor.frontend.run_program`` uses) tags every
  request with that program; fork children inherit the bound endpoint (``StreamExecutor.fork``
  passes ``self.backend`` on);
- an unbound endpoint (``func.run(backend=ep)``, ``sgl.set_default_backend(ep)``, ``run_batch``)
  gives each run a fresh program. A run is recognised by its arguments dict: ``run_program`` makes
  one dict per run (one per ``run_batch`` item) and ``fork`` hands the same dict object to every
  child. Executors hold that dict, so while one of them lives its ``id`` cannot be reused.

Requests are tagged without copying SGLang's request building: ``generate``/``generate_stream``
get sampling params whose ``to_srt_kwargs`` adds ``custom_params``; ``select`` and the prefix
commit of ``fork`` go through ``_generate_http_request``, which is overridden to tag its body.
``cache_prefix`` (``run_batch``'s shared precache) stays untagged: it belongs to no single run.
Every tagged request also carries the program's routing key (``routing_header``), so behind
SGLang's router a run reaches one worker whole.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from sglang.lang.backend.runtime_endpoint import RuntimeEndpoint
from sglang.lang.interpreter import StreamExecutor
from sglang.lang.ir import SglSamplingParams

from dynasor.client import DynasorClient, DynasorHTTPError
from dynasor.core.routing import routing_key
from dynasor.core.tag import (
    ProgramTag,
    new_program_id,
    tag_sampling_params,
    validate_program_id,
    validate_remaining_work,
)
from dynasor.frontend.routing_header import install, sending_routing_key


class ProgramHandle:
    """The client side of one program: its id and the hints its next requests carry.

    Mutable on purpose: ``set_remaining_work`` changes what every later request of the run says,
    whichever executor (fork branch) sends it.
    """

    def __init__(self, program_id: str | None = None, remaining_work: float | None = None,
                 return_entropy: bool = False) -> None:
        self.program_id = validate_program_id(program_id) if program_id is not None else new_program_id()
        self.return_entropy = return_entropy
        self.remaining_work: float | None = None
        self.set_remaining_work(remaining_work)

    def set_remaining_work(self, tokens: float | None) -> None:
        """Tokens the whole program still has to generate (None: let the server estimate)."""
        self.remaining_work = validate_remaining_work(tokens, "remaining work")

    def tag(self) -> ProgramTag:
        return ProgramTag(self.program_id, self.return_entropy, self.remaining_work)

    def __repr__(self) -> str:
        return f"ProgramHandle({self.program_id!r}, remaining_work={self.remaining_work})"


@dataclasses.dataclass
class _TaggedSamplingParams(SglSamplingParams):
    """SGLang's sampling params plus ``custom_params``, which ``to_srt_kwargs`` then sends."""

    custom_params: dict[str, Any] | None = None

    @classmethod
    def of(cls, params: SglSamplingParams, tag: ProgramTag) -> _TaggedSamplingParams:
        fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(SglSamplingParams)}
        return cls(**fields, custom_params=tag.to_custom_params())

    def to_srt_kwargs(self) -> dict[str, Any]:
        return {**super().to_srt_kwargs(), "custom_params": self.custom_params}


class DynasorEndpoint(RuntimeEndpoint):
    """A ``RuntimeEndpoint`` for a Dynasor server: every request of a run carries its program tag.

    Drop-in for SGLang's endpoint (same constructor; it reads ``/get_model_info`` once)::

        backend = DynasorEndpoint("http://127.0.0.1:30000")
        state = my_program.run(question="...", backend=backend)   # one program per run

    ``router=True``: ``base_url`` is SGLang's router (``smg``). Its ``/generate`` takes one prompt per
    request, so a batch (``select`` scores its choices as one) goes as one request per prompt, and
    program aborts go to the router's workers (``DynasorClient(router=True)``).
    """

    def __init__(self, base_url: str, api_key: str | None = None, verify: str | None = None,
                 chat_template_name: str | None = None, return_entropy: bool = False, router: bool = False) -> None:
        install()
        super().__init__(base_url.rstrip("/"), api_key=api_key, verify=verify, chat_template_name=chat_template_name)
        self.return_entropy = return_entropy
        self.router = router
        self._bound: ProgramHandle | None = None
        self._lock = threading.Lock()
        self._by_executor: weakref.WeakKeyDictionary[StreamExecutor, ProgramHandle] = weakref.WeakKeyDictionary()
        self._by_arguments: weakref.WeakValueDictionary[int, ProgramHandle] = weakref.WeakValueDictionary()

    def bind(self, program: ProgramHandle | str | None = None) -> DynasorEndpoint:
        """A copy of this endpoint (no new HTTP call) whose requests all belong to ``program``."""
        bound = copy.copy(self)
        if not isinstance(program, ProgramHandle):
            program = ProgramHandle(program, return_entropy=self.return_entropy)
        bound._bound = program
        return bound

    @property
    def bound_program(self) -> ProgramHandle | None:
        return self._bound

    def program_of(self, s: StreamExecutor) -> ProgramHandle:
        """The program a state's requests belong to (created on first use for unbound runs)."""
        if self._bound is not None:
            return self._bound
        with self._lock:
            handle = self._by_executor.get(s)
            if handle is None:
                handle = self._by_arguments.get(id(s.arguments))
                if handle is None:
                    handle = ProgramHandle(return_entropy=self.return_entropy)
                    self._by_arguments[id(s.arguments)] = handle
                self._by_executor[s] = handle
            return handle

    def abort_program(self, program_id: str) -> int:
        """Abort the program's waiting and running requests server side, with one call.

        Returns how many requests were aborted (0 when none of them is still in the engine).
        """
        with DynasorClient(self.base_url, api_key=self.api_key, router=self.router) as client:
            try:
                return int(client.abort_program(program_id).get("aborted_requests", 0))
            except DynasorHTTPError as err:
                if err.status == 404:  # nothing live, and the program already expired from the table
                    return 0
                raise

    def generate(self, s: StreamExecutor, sampling_params: SglSamplingParams) -> tuple[Any, dict[str, Any]]:
        program = self.program_of(s)
        with sending_routing_key(routing_key(program.program_id)):
            return super().generate(s, _TaggedSamplingParams.of(sampling_params, program.tag()))

    def generate_stream(self, s: StreamExecutor, sampling_params: SglSamplingParams
                        ) -> Iterator[tuple[str, dict[str, Any]]]:
        program = self.program_of(s)
        stream = super().generate_stream(s, _TaggedSamplingParams.of(sampling_params, program.tag()))
        with sending_routing_key(routing_key(program.program_id)):  # the request goes out at the first item
            first = next(stream, None)
        if first is not None:
            yield first
            yield from stream

    def commit_lazy_operations(self, s: StreamExecutor) -> None:
        """The prefix prefill ``fork`` sends first; tagged so it joins the program too."""
        self._generate_http_request(s, {"text": s.text_, "sampling_params": {"max_new_tokens": 0}})

    def fill_image(self, s: StreamExecutor) -> None:
        self.commit_lazy_operations(s)

    def _generate_http_request(self, s: StreamExecutor, data: dict[str, Any]) -> Any:
        """Every ``select`` request passes here (prefix cache, choice logprobs, unconditional)."""
        program = self.program_of(s)
        tagged = {**data, "sampling_params": tag_sampling_params(data.get("sampling_params"), program.tag())}
        items = _batch_items(tagged) if self.router else None
        with sending_routing_key(routing_key(program.program_id)):
            if items is None:
                return super()._generate_http_request(s, tagged)
            return [super(DynasorEndpoint, self)._generate_http_request(s, item) for item in items]


def _batch_items(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The one-prompt requests of a batched ``/generate`` body (None: not a batch)."""
    for field in ("text", "input_ids"):
        value = data.get(field)
        if isinstance(value, list) and (field == "text" or (value and isinstance(value[0], list))):
            return [{**data, field: one} for one in value]
    return None
