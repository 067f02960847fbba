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
