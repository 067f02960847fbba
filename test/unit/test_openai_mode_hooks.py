"""The AROUND hooks of the OpenAI endpoints (``dynasor.srt.openai_mode_hooks``): pass-through
without a ``dynasor`` object, errors naming the field before any generation, and the mode runner
they depend on."""

from types import SimpleNamespace

import pytest

from dynasor.modes.runner import ProgramModeRunner
from dynasor.srt import openai_mode_hooks
from dynasor.srt.config import DynasorServerConfig
from dynasor.srt.main_process_state import MainProcessState, activate_main_process_state


@pytest.fixture(autouse=True)
def runner():
    """The launcher activates the server state with the mode runner; so do these tests."""
    activate_main_process_state(MainProcessState(DynasorServerConfig(), ProgramModeRunner()))
    yield
    activate_main_process_state(None)


def _chat(**fields):
    base = dict(n=1, logprobs=False, top_logprobs=None, tools=None, tool_choice="auto", response_format=None)
    return SimpleNamespace(**{**base, **fields})


class FakeRequest:
    def __init__(self, body):
        self.body = body

    async def json(self):
        return self.body


async def test_without_dynasor_the_original_runs_untouched():
    sentinel, calls = object(), []

    async def original(serving, request, raw_request):
        calls.append((serving, request, raw_request))
        return sentinel

    raws = [FakeRequest({"prompt": "x"}), FakeRequest({"prompt": "x", "dynasor": None}), object(), None]
    for raw in raws:
        assert await openai_mode_hooks.handle_completion_request(original, "serving", "request", raw) is sentinel
    assert calls == [("serving", "request", raw) for raw in raws]


async def test_bad_options_become_an_error_response_naming_the_field():
    serving = SimpleNamespace(create_error_response=lambda message, **kw: ("error", message, kw))

    async def original(*args):
        raise AssertionError("a dynasor request must not reach SGLang's handler")

    out = await openai_mode_hooks.handle_chat_request(original, serving, _chat(), FakeRequest(
        {"dynasor": {"mode": "sc", "n": 2, "detect_at": 3}}))
    assert out[0] == "error" and out[1].startswith("dynasor.detect_at") and out[2] == {"param": "dynasor.detect_at"}




async def test_a_dynasor_request_without_an_installed_runner_fails_loudly():
    activate_main_process_state(None)

    async def original(*args):
        raise AssertionError("a dynasor request must not reach SGLang's handler")

    serving = SimpleNamespace(create_error_response=lambda message, **kw: ("error", message, kw))
    with pytest.raises(RuntimeError, match="no mode runner installed"):
        await openai_mode_hooks.handle_chat_request(original, serving, _chat(), FakeRequest({"dynasor": {}}))
