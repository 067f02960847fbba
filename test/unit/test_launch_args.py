from dynasor.launch_server import split_args
from dynasor.srt.config import ENV_CONFIG, ENV_ENABLED, DynasorServerConfig
from dynasor.srt.server_defaults import flag_given, with_defaults


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
