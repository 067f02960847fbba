"""The hook table and its self-check (the SGLang side is the integration test that removes a
hook target from SGLang and expects `dynasor serve` to refuse to start)."""

import pytest

from dynasor.srt import hooks
from dynasor.srt.config import DynasorServerConfig


def test_the_table_names_every_target_once_per_kind_and_eviction_hooks_follow_the_config():
    targets = [(h.target, h.kind) for h in hooks.HOOKS]
    assert len(targets) == len(set(targets))
    on = {h.target for h in hooks.active_hooks(DynasorServerConfig(eviction="program"))}
    off = {h.target for h in hooks.active_hooks(DynasorServerConfig(eviction="sglang"))}
    assert {t for t in on - off} == {h.target for h in hooks.HOOKS if h.applies is hooks._program_eviction}


def test_self_check_names_the_targets_that_did_not_apply(monkeypatch):
    from sglang.srt.plugins.hook_registry import HookRegistry

    config = DynasorServerConfig()
    targets = {h.target for h in hooks.active_hooks(config)}
    lost = "sglang.srt.managers.schedule_policy.SchedulePolicy._sort_by_longest_prefix"
    monkeypatch.setattr(HookRegistry, "_patched", targets - {lost})
    # the REPLACE target is patched but not to DynasorScheduler here (nothing was applied in this process)
    missing = hooks.missing_hooks(config)
    assert lost in missing and "sglang.srt.managers.scheduler.Scheduler" in missing
    with pytest.raises(hooks.HookCheckError, match="_sort_by_longest_prefix"):
        hooks.verify_hooks(config)


def _defined_overrides(cls: type, base: type) -> set[str]:
    return {name for name, value in vars(cls).items() if callable(value) and hasattr(base, name)}


def test_the_table_lists_every_sglang_method_dynasor_overrides_with_process_and_stage():
    from sglang.srt.managers.scheduler_components.output_streamer import SchedulerOutputStreamer

    from dynasor.srt.dynasor_scheduler import DynasorScheduler, ProgramAwareOutputStreamer

    listed = {h.target.rpartition(".")[2] for h in hooks.HOOKS if h.kind == "OVERRIDE"}
    assert _defined_overrides(DynasorScheduler, DynasorScheduler.__mro__[1]) | \
        _defined_overrides(ProgramAwareOutputStreamer, SchedulerOutputStreamer) == listed
    assert all(h.process in ("launcher", "scheduler", "client") and h.stage for h in hooks.HOOKS)
    assert any(h.kind == "PATCH" and h.process == "client" for h in hooks.HOOKS)


def test_self_check_passes_on_the_installed_sglang_for_overrides_and_the_frontend_patch():
    config = DynasorServerConfig()
    missing = hooks.missing_hooks(config)
    assert not [t for t in missing if t in {h.target for h in hooks.HOOKS if h.kind in ("OVERRIDE", "PATCH")}]


def test_self_check_fails_when_an_overridden_method_or_the_frontend_target_is_gone(monkeypatch):
    import sglang.lang.backend.runtime_endpoint as endpoint
    from sglang.srt.managers import scheduler

    config = DynasorServerConfig()
    monkeypatch.delattr(scheduler.Scheduler, "_get_new_batch_prefill_raw")  # as if SGLang renamed it
    assert "sglang.srt.managers.scheduler.Scheduler._get_new_batch_prefill_raw" in hooks.missing_hooks(config)

    def http_request(url, json=None, stream=False, headers=None):  # a release with other parameters
        return None

    monkeypatch.setattr(endpoint, "http_request", http_request)
    missing = hooks.missing_hooks(config)
    assert "sglang.lang.backend.runtime_endpoint.http_request" in missing
    with pytest.raises(hooks.HookCheckError, match="runtime_endpoint.http_request"):
        hooks.verify_hooks(config)
