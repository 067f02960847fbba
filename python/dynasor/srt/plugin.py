"""Entry point of the ``sglang.srt.plugins`` group (see setup.py).

SGLang calls ``register`` in every process it starts (main, scheduler, detokenizer) of every
server in this environment. It does nothing unless the Dynasor launcher armed it with
``DYNASOR_ENABLED=1``, so a stock ``python -m sglang.launch_server`` stays stock: that stock server
is the baseline of every benchmark.
"""

from __future__ import annotations

from dynasor.srt.config import DynasorServerConfig, dynasor_enabled


def register() -> None:
    if not dynasor_enabled():
        return
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    from dynasor.srt.eviction import record_holders, wrap_eviction_strategy
    from dynasor.srt.openai_hooks import add_chat_token_stats, add_completion_token_stats
    from dynasor.srt.sampler_hooks import collect_token_stats, sample_with_token_stats
    from dynasor.srt.scheduler import DynasorScheduler
    from dynasor.srt.scheduling import keep_deprioritized, order_with_programs, skip_lpm_sort
    from dynasor.srt.tokenizer_hooks import validate_request_tags

    HookRegistry.register("sglang.srt.managers.scheduler.Scheduler", DynasorScheduler, HookType.REPLACE)
    HookRegistry.register(
        "sglang.srt.managers.tokenizer_manager.TokenizerManager.generate_request",
        validate_request_tags,
        HookType.BEFORE,
    )
    HookRegistry.register("sglang.srt.layers.sampler.Sampler.forward", sample_with_token_stats, HookType.AROUND)
    HookRegistry.register(
        "sglang.srt.managers.scheduler_components.batch_result_processor."
        "SchedulerBatchResultProcessor._maybe_collect_customized_info",
        collect_token_stats,
        HookType.AFTER,
    )
    policy = "sglang.srt.managers.schedule_policy.SchedulePolicy."
    HookRegistry.register(policy + "calc_priority", order_with_programs, HookType.AROUND)
    HookRegistry.register(policy + "_compute_prefix_matches", keep_deprioritized, HookType.AFTER)
    HookRegistry.register(policy + "_sort_by_longest_prefix", skip_lpm_sort, HookType.AROUND)
    if DynasorServerConfig.from_env().eviction == "program":
        HookRegistry.register(
            "sglang.srt.mem_cache.unified_cache.unified_tree_core.UnifiedTreeCore.__init__",
            wrap_eviction_strategy,
            HookType.AFTER,
        )
        HookRegistry.register(
            "sglang.srt.mem_cache.unified_radix_cache.UnifiedRadixCache.checkpoint_into_tree",
            record_holders,
            HookType.AFTER,
        )
    openai = "sglang.srt.entrypoints.openai."
    HookRegistry.register(
        openai + "serving_chat.OpenAIServingChat._build_chat_response", add_chat_token_stats, HookType.AFTER
    )
    HookRegistry.register(
        openai + "serving_completions.OpenAIServingCompletion._build_completion_response",
        add_completion_token_stats,
        HookType.AFTER,
    )
    from dynasor.srt.openai_mode_hooks import handle_chat_request, handle_completion_request

    HookRegistry.register(openai + "serving_chat.OpenAIServingChat.handle_request", handle_chat_request,
                          HookType.AROUND)
    HookRegistry.register(openai + "serving_completions.OpenAIServingCompletion.handle_request",
                          handle_completion_request, HookType.AROUND)
