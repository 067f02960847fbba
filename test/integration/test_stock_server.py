"""A stock `python -m sglang.launch_server` in the same environment does not load Dynasor's hooks."""

from importlib.metadata import entry_points

import httpx

from dynasor.evaluation.ports import free_port
from dynasor.evaluation.server_process import ServerProcess
from dynasor.model import default_model_path

from .conftest import LOG_DIR, SMALL_KV

ACTIVE_LINE = "Dynasor active in scheduler"


def test_dynasor_server_has_the_hooks(dynasor_server):
    assert ACTIVE_LINE in dynasor_server.log_text()
    info = httpx.get(dynasor_server.url + "/server_info", timeout=30).json()
    assert all("dynasor" in state for state in info["internal_states"])
    assert httpx.get(dynasor_server.url + "/dynasor/programs", timeout=30).status_code == 200


def test_dynasor_plugin_is_installed_for_every_server_in_this_environment():
    """SGLang discovers the plugin in any server here, so staying stock must be the plugin's doing."""
    plugins = entry_points(group="sglang.srt.plugins")
    assert [ep.value for ep in plugins if ep.name == "dynasor"] == ["dynasor.srt.plugin:register"]


def test_stock_sglang_server_stays_stock():
    stock = ServerProcess.stock_sglang(str(default_model_path()), free_port(), LOG_DIR / "stock-sglang.log",
                                       SMALL_KV)
    with stock:
        tagged = {"text": "Hello", "sampling_params": {
            "max_new_tokens": 3, "custom_params": {"dynasor": {"program_id": 12345}}}}
        response = httpx.post(stock.url + "/generate", json=tagged, timeout=120)
        assert response.status_code == 200  # the tag is opaque custom_params to stock SGLang
        assert httpx.get(stock.url + "/dynasor/programs", timeout=30).status_code == 404
        info = httpx.get(stock.url + "/server_info", timeout=30).json()
        assert info["internal_states"] and all("dynasor" not in state for state in info["internal_states"])
        assert ACTIVE_LINE not in stock.log_text()
