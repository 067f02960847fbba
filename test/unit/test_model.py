from dynasor.model import dynasor_home, find_embedded_gguf


def test_embedded_gguf_is_installed():
    gguf = find_embedded_gguf()
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    assert "SmolLM2-135M-Instruct" in gguf.name


def test_dynasor_home_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DYNASOR_HOME", str(tmp_path))
    assert dynasor_home() == tmp_path
