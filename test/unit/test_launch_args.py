import pytest

from dynasor.launch_server import split_args
from dynasor.srt.config import ENV_CONFIG, ENV_ENABLED, DynasorServerConfig
from dynasor.srt.cpu_defaults import flag_given, flag_value, with_defaults


def test_flag_given_spellings():
    assert flag_given(["--max-total-tokens", "5"], "--max-total-tokens")
    assert flag_given(["--max_total_tokens=5"], "--max-total-tokens")
    assert not flag_given(["--max-total-tokens-extra", "5"], "--max-total-tokens")


def test_cpu_defaults_fill_gaps_and_user_flags_win():
    argv = with_defaults(["--model-path", "m", "--attention-backend", "triton", "--host=0.0.0.0"], on_cpu=True)
    assert argv.count("--attention-backend") == 1 and "triton" in argv
    assert "127.0.0.1" not in argv
    for flag in ("--device", "--sampling-backend", "--disable-cuda-graph", "--sleep-on-idle", "--port"):
        assert flag in argv
    assert "--device" not in with_defaults(["--model-path", "m"], on_cpu=False)


def test_dynasor_flags_are_split_off_and_travel_by_env(monkeypatch):
    config, rest = split_args(["--dynasor-program-ttl", "5", "--port", "1234", "--dynasor-max-done-programs=7"])
    assert rest == ["--port", "1234", "--schedule-policy", "lpm"]
    assert (config.program_ttl, config.max_done_programs) == (5.0, 7)
    assert len(config.key_secret_bytes) == 16 and config.key_secret != DynasorServerConfig().key_secret
    env = config.to_env()
    assert env[ENV_ENABLED] == "1"
    monkeypatch.setenv(ENV_CONFIG, env[ENV_CONFIG])
    assert DynasorServerConfig.from_env() == config


def test_bool_settings_are_switches_and_flag_values_parse_both_spellings():
    config, _ = split_args(["--dynasor-allow-unsupported-sglang"])
    assert config.allow_unsupported_sglang and not split_args([])[0].allow_unsupported_sglang
    assert flag_value(["--port", "9", "--host=h", "--port=10"], "--port") == "10"
    assert flag_value(["--host", "h"], "--host") == "h" and flag_value([], "--port") is None


def test_version_guard(monkeypatch):
    import sglang

    from dynasor.srt.sglang_version import SUPPORTED_SGLANG_VERSION, UnsupportedSGLangError, check_sglang_version

    assert check_sglang_version(False) == SUPPORTED_SGLANG_VERSION == sglang.__version__
    monkeypatch.setattr(sglang, "__version__", "9.9.9")
    with pytest.raises(UnsupportedSGLangError, match="--dynasor-allow-unsupported-sglang"):
        check_sglang_version(False)
    assert check_sglang_version(True) == "9.9.9"


def test_launch_id_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DYNASOR_INSTANCE_ID", "abc123")
    assert DynasorServerConfig().instance_id == "abc123"
    monkeypatch.delenv("DYNASOR_INSTANCE_ID")
    assert len(DynasorServerConfig().instance_id) == 16
