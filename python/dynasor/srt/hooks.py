"""Every place Dynasor changes SGLang (written against sglang==0.5.23), declared in one table: the map.

``HOOKS`` is the whole list. Each row names the SGLang target (a dotted path), how it is changed,
the process it acts in and the request's lifecycle stage there, and when it applies:

- ``BEFORE`` / ``AFTER`` / ``AROUND`` / ``REPLACE``: SGLang's ``HookType``; ``install_hooks``
  registers them with SGLang's ``HookRegistry`` (the plugin calls it in every process of a server);
- ``OVERRIDE``: a method ``DynasorScheduler`` (which REPLACEs SGLang's scheduler class) or its
  output streamer overrides; the method must exist on SGLang's class;
- ``PATCH``: the frontend function ``dynasor.frontend.routing_header`` wraps in a client process
  (``sgl.function`` programs); it must exist with the parameters it was written against.

``verify_hooks`` checks every active row against the installed SGLang, so a release that renamed
any of them stops the server before it loads a model. ``docs/request-lifecycle.md`` walks one
request through these rows in order.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynasor.core.routing import FRONTEND_POST_MODULE, FRONTEND_POST_PARAMETERS
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.dynasor_scheduler import DynasorScheduler, ProgramAwareOutputStreamer
from dynasor.srt.eviction_hooks import record_holders, wrap_eviction_strategy
from dynasor.srt.http_listener import serve_on_reserved_port
from dynasor.srt.openai_hooks import add_chat_token_stats, add_completion_token_stats
from dynasor.srt.openai_mode_hooks import handle_chat_request, handle_completion_request
from dynasor.srt.queue_order_hooks import keep_deprioritized, order_with_programs, skip_lpm_sort
from dynasor.srt.response_hooks import keep_token_stats_to_those_that_asked
from dynasor.srt.retraction_hooks import order_retraction_by_program
from dynasor.srt.sampler_hooks import collect_token_stats, sample_with_token_stats, select_token_stats_rows
from dynasor.srt.sglang_version import SUPPORTED_SGLANG_VERSION
from dynasor.srt.tokenizer_hooks import abort_program_when_client_leaves, check_and_route_request

REGISTERED_KINDS = ("BEFORE", "AFTER", "AROUND", "REPLACE")  # what SGLang's HookRegistry applies


def _always(config: DynasorServerConfig) -> bool:
    return True


def _program_eviction(config: DynasorServerConfig) -> bool:
    return config.eviction == "program"


def _program_retraction(config: DynasorServerConfig) -> bool:
    return config.retraction == "program"


@dataclass(frozen=True)
class Hook:
    target: str  # dotted path of the SGLang attribute
    kind: str  # HookType name (BEFORE, AFTER, AROUND, REPLACE), OVERRIDE or PATCH
    function: Callable[..., Any] | type | None
    process: str  # where it acts: launcher (main process: HTTP, TokenizerManager), scheduler, client
    stage: str  # the request's lifecycle stage there (docs/request-lifecycle.md)
    applies: Callable[[DynasorServerConfig], bool] = _always


_MANAGERS = "sglang.srt.managers."
_SCHEDULER = _MANAGERS + "scheduler.Scheduler"
_STREAMER = _MANAGERS + "scheduler_components.output_streamer.SchedulerOutputStreamer"
_POLICY = _MANAGERS + "schedule_policy.SchedulePolicy."
_OPENAI = "sglang.srt.entrypoints.openai."


def _override(name: str, stage: str) -> Hook:
    return Hook(f"{_SCHEDULER}.{name}", "OVERRIDE", getattr(DynasorScheduler, name), "scheduler", stage)


HOOKS: tuple[Hook, ...] = (
    # launcher: serving, arrival, response
    Hook("uvicorn.server.Server.serve", "AROUND", serve_on_reserved_port, "launcher", "start-up"),
    Hook(_MANAGERS + "tokenizer_manager.TokenizerManager.generate_request", "BEFORE", check_and_route_request,
         "launcher", "arrival"),
    Hook(_MANAGERS + "tokenizer_manager.TokenizerManager.generate_request", "AROUND",
         abort_program_when_client_leaves, "launcher", "client leaves"),
    Hook(_OPENAI + "serving_chat.OpenAIServingChat.handle_request", "AROUND", handle_chat_request,
         "launcher", "arrival"),
    Hook(_OPENAI + "serving_completions.OpenAIServingCompletion.handle_request", "AROUND", handle_completion_request,
         "launcher", "arrival"),
    Hook(_MANAGERS + "tokenizer_manager.TokenizerManager.update_request_meta_info", "AROUND",
         keep_token_stats_to_those_that_asked, "launcher", "response"),
    Hook(_OPENAI + "serving_chat.OpenAIServingChat._build_chat_response", "AFTER", add_chat_token_stats,
         "launcher", "response"),
    Hook(_OPENAI + "serving_completions.OpenAIServingCompletion._build_completion_response", "AFTER",
         add_completion_token_stats, "launcher", "response"),
    # scheduler: the class, then its overrides in lifecycle order
    Hook(_SCHEDULER, "REPLACE", DynasorScheduler, "scheduler", "start-up"),
    _override("__init__", "start-up"),
    _override("get_output_streamer_class", "start-up"),
    _override("init_output_streamer", "start-up"),
    _override("_create_generation_req", "arrival"),
    _override("_add_request_to_queue", "queue"),
    Hook(_POLICY + "calc_priority", "AROUND", order_with_programs, "scheduler", "queue"),
    Hook(_POLICY + "_compute_prefix_matches", "AFTER", keep_deprioritized, "scheduler", "queue"),
    Hook(_POLICY + "_sort_by_longest_prefix", "AROUND", skip_lpm_sort, "scheduler", "queue"),
    _override("_get_new_batch_prefill_raw", "admission"),
    Hook("sglang.srt.model_executor.model_runner.ModelRunner.sample", "AROUND", select_token_stats_rows,
         "scheduler", "sampling"),
    Hook("sglang.srt.layers.sampler.Sampler.forward", "AROUND", sample_with_token_stats, "scheduler", "sampling"),
    Hook(_MANAGERS + "scheduler_components.batch_result_processor.SchedulerBatchResultProcessor."
         "_maybe_collect_customized_info", "AFTER", collect_token_stats, "scheduler", "result"),
    Hook(f"{_STREAMER}.stream_output", "OVERRIDE", ProgramAwareOutputStreamer.stream_output, "scheduler", "result"),
    _override("send_abort_output", "abort"),
    Hook("sglang.srt.mem_cache.unified_cache.unified_tree_core.UnifiedTreeCore.__init__", "AFTER",
         wrap_eviction_strategy, "scheduler", "eviction", _program_eviction),
    Hook("sglang.srt.mem_cache.unified_radix_cache.UnifiedRadixCache.checkpoint_into_tree", "AFTER",
         record_holders, "scheduler", "eviction", _program_eviction),
    Hook(_MANAGERS + "schedule_batch.ScheduleBatch._get_decode_retraction_order", "AROUND",
         order_retraction_by_program, "scheduler", "retraction", _program_retraction),
    _override("get_internal_state", "introspection"),
    # client: sgl.function programs behind SGLang's router (dynasor.frontend.routing_header)
    Hook(f"{FRONTEND_POST_MODULE}.http_request", "PATCH", None, "client", "request"),
)


class HookCheckError(RuntimeError):
    """Some Dynasor hooks did not apply (their SGLang targets changed): the server must not start."""


def active_hooks(config: DynasorServerConfig) -> list[Hook]:
    return [hook for hook in HOOKS if hook.applies(config)]


def missing_hooks(config: DynasorServerConfig) -> list[str]:
    """Targets of the active rows that are not in place in this process: a registered hook that
    SGLang's HookRegistry did not patch, a class replacement not in place, an overridden method or a
    patched function SGLang no longer has (or whose parameters changed). Call after
    ``load_plugins()`` applied the hooks."""
    from sglang.srt.plugins.hook_registry import HookRegistry

    missing = []
    for hook in active_hooks(config):
        if hook.kind in REGISTERED_KINDS:
            if hook.target not in HookRegistry._patched:
                missing.append(hook.target)
            elif hook.kind == "REPLACE" and isinstance(hook.function, type):
                resolved = _resolve(hook.target)
                if resolved is not hook.function:
                    missing.append(hook.target)
        elif hook.kind == "OVERRIDE":
            owner, _, name = hook.target.rpartition(".")
            base = _sglang_class(owner)
            if base is None or not callable(getattr(base, name, None)):
                missing.append(hook.target)
        elif hook.kind == "PATCH" and not _patchable(hook.target):
            missing.append(hook.target)
    return missing


def _resolve(target: str) -> Any:
    try:
        return pkgutil.resolve_name(target)
    except (ImportError, AttributeError, ValueError):
        return None


def _sglang_class(path: str) -> type | None:
    """SGLang's own class at ``path`` (behind Dynasor's replacement of it, if any)."""
    found = _resolve(path)
    if found is DynasorScheduler:
        return DynasorScheduler.__mro__[1]
    return found if isinstance(found, type) else None


def _patchable(target: str) -> bool:
    """The frontend function is there, with the parameters it was written against (or already
    wrapped by Dynasor, which keeps SGLang's original beside it)."""
    module_name, _, name = target.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return False
    function = getattr(function, "dynasor_wrapped", function)
    return callable(function) and tuple(inspect.signature(function).parameters) == FRONTEND_POST_PARAMETERS


def verify_hooks(config: DynasorServerConfig) -> None:
    """The hook self-check: raise ``HookCheckError`` naming every target that is not patched."""
    missing = missing_hooks(config)
    if missing:
        raise HookCheckError(
            f"Dynasor hook self-check failed: {len(missing)} of {len(active_hooks(config))} hooks did not apply "
            f"(SGLang changed these targets): {', '.join(missing)}. Dynasor was written against sglang=="
            f"{SUPPORTED_SGLANG_VERSION}; refusing to run half-way.")


def install_hooks(config: DynasorServerConfig) -> list[Hook]:
    """Register the rows SGLang's HookRegistry applies (under ``config``) with it."""
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    hooks = [hook for hook in active_hooks(config) if hook.kind in REGISTERED_KINDS]
    for hook in hooks:
        HookRegistry.register(hook.target, hook.function, HookType[hook.kind])
    return hooks
