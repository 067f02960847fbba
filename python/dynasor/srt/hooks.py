"""Every hook Dynasor puts into SGLang (written against sglang==0.5.23), declared in one table.

``HOOKS`` is the whole list: target (a dotted path in SGLang), kind (SGLang's ``HookType``), the
function, and when it applies. ``install_hooks`` registers them with SGLang's ``HookRegistry``
(the plugin calls it in every process of a Dynasor server); anything that needs to know what
Dynasor changed in SGLang (docs, checks) reads this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.dynasor_scheduler import DynasorScheduler
from dynasor.srt.eviction_hooks import record_holders, wrap_eviction_strategy
from dynasor.srt.http_listener import serve_on_reserved_port
from dynasor.srt.openai_hooks import add_chat_token_stats, add_completion_token_stats
from dynasor.srt.openai_mode_hooks import handle_chat_request, handle_completion_request
from dynasor.srt.queue_order_hooks import keep_deprioritized, order_with_programs, skip_lpm_sort
from dynasor.srt.sampler_hooks import collect_token_stats, sample_with_token_stats, select_token_stats_rows
from dynasor.srt.sglang_version import SUPPORTED_SGLANG_VERSION
from dynasor.srt.tokenizer_hooks import abort_program_when_client_leaves, check_and_route_request


def _always(config: DynasorServerConfig) -> bool:
    return True


def _program_eviction(config: DynasorServerConfig) -> bool:
    return config.eviction == "program"


@dataclass(frozen=True)
class Hook:
    target: str  # dotted path of the SGLang attribute
    kind: str  # HookType name: BEFORE, AFTER, AROUND or REPLACE
    function: Callable[..., Any] | type
    applies: Callable[[DynasorServerConfig], bool] = _always


_MANAGERS = "sglang.srt.managers."
_POLICY = _MANAGERS + "schedule_policy.SchedulePolicy."
_OPENAI = "sglang.srt.entrypoints.openai."

HOOKS: tuple[Hook, ...] = (
    Hook(_MANAGERS + "scheduler.Scheduler", "REPLACE", DynasorScheduler),
    Hook(_MANAGERS + "tokenizer_manager.TokenizerManager.generate_request", "BEFORE", check_and_route_request),
    Hook(_MANAGERS + "tokenizer_manager.TokenizerManager.generate_request", "AROUND",
         abort_program_when_client_leaves),
    Hook("sglang.srt.model_executor.model_runner.ModelRunner.sample", "AROUND", select_token_stats_rows),
    Hook("sglang.srt.layers.sampler.Sampler.forward", "AROUND", sample_with_token_stats),
    Hook(_MANAGERS + "scheduler_components.batch_result_processor.SchedulerBatchResultProcessor."
         "_maybe_collect_customized_info", "AFTER", collect_token_stats),
    Hook(_POLICY + "calc_priority", "AROUND", order_with_programs),
    Hook(_POLICY + "_compute_prefix_matches", "AFTER", keep_deprioritized),
    Hook(_POLICY + "_sort_by_longest_prefix", "AROUND", skip_lpm_sort),
    Hook("sglang.srt.mem_cache.unified_cache.unified_tree_core.UnifiedTreeCore.__init__", "AFTER",
         wrap_eviction_strategy, _program_eviction),
    Hook("sglang.srt.mem_cache.unified_radix_cache.UnifiedRadixCache.checkpoint_into_tree", "AFTER",
         record_holders, _program_eviction),
    Hook(_OPENAI + "serving_chat.OpenAIServingChat._build_chat_response", "AFTER", add_chat_token_stats),
    Hook(_OPENAI + "serving_completions.OpenAIServingCompletion._build_completion_response", "AFTER",
         add_completion_token_stats),
    Hook(_OPENAI + "serving_chat.OpenAIServingChat.handle_request", "AROUND", handle_chat_request),
    Hook(_OPENAI + "serving_completions.OpenAIServingCompletion.handle_request", "AROUND", handle_completion_request),
    Hook("uvicorn.server.Server.serve", "AROUND", serve_on_reserved_port),
)


class HookCheckError(RuntimeError):
    """Some Dynasor hooks did not apply (their SGLang targets changed): the server must not start."""


def active_hooks(config: DynasorServerConfig) -> list[Hook]:
    return [hook for hook in HOOKS if hook.applies(config)]


def missing_hooks(config: DynasorServerConfig) -> list[str]:
    """Targets of the active hooks that SGLang's HookRegistry did not patch in this process, or
    whose class replacement is not in place. Call after ``load_plugins()`` applied the hooks."""
    import pkgutil

    from sglang.srt.plugins.hook_registry import HookRegistry

    missing = []
    for hook in active_hooks(config):
        if hook.target not in HookRegistry._patched:
            missing.append(hook.target)
        elif hook.kind == "REPLACE" and isinstance(hook.function, type):
            try:
                if pkgutil.resolve_name(hook.target) is not hook.function:
                    missing.append(hook.target)
            except (ImportError, AttributeError, ValueError):
                missing.append(hook.target)
    return missing


def verify_hooks(config: DynasorServerConfig) -> None:
    """The hook self-check: raise ``HookCheckError`` naming every target that is not patched."""
    missing = missing_hooks(config)
    if missing:
        raise HookCheckError(
            f"Dynasor hook self-check failed: {len(missing)} of {len(active_hooks(config))} hooks did not apply "
            f"(SGLang changed these targets): {', '.join(missing)}. Dynasor was written against sglang=="
            f"{SUPPORTED_SGLANG_VERSION}; refusing to run half-way.")


def install_hooks(config: DynasorServerConfig) -> list[Hook]:
    """Register the hooks that apply under ``config`` with SGLang's HookRegistry."""
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    hooks = active_hooks(config)
    for hook in hooks:
        HookRegistry.register(hook.target, hook.function, HookType[hook.kind])
    return hooks
