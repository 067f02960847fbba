"""Stock SGLang at its best for programs: priority scheduling driven by the client (the baseline
``sglang-priority`` of the online benchmark). What the server does with the field is SGLang's."""

import asyncio

from benchmark.online.systems import PRIORITY_FLAGS, SYSTEMS, make_backend
from dynasor.program_runtime.backends import StockSGLangBackend


class RecordingClient:
    def __init__(self):
        self.calls = []

    async def generate(self, prompt, sampling_params=None, program=None, rid=None, **extra):
        self.calls.append(extra)
        return {"text": "4", "meta_info": {"completion_tokens": 1, "finish_reason": {"type": "stop"}}}


def test_each_request_carries_its_programs_remaining_work_as_priority_only_when_asked():
    client = RecordingClient()
    for backend in (StockSGLangBackend(client, client_priority=True), StockSGLangBackend(client)):
        asyncio.run(backend.generate("2+2=", {"max_new_tokens": 4}, "p", remaining_work=1536.4))
        asyncio.run(backend.generate("2+2=", {"max_new_tokens": 4}, "p", remaining_work=None))
    assert client.calls == [{"priority": 1536}, {}, {}, {}]


def test_the_priority_system_starts_stock_sglang_with_priority_scheduling_low_values_first():
    system = SYSTEMS["sglang-priority"]
    assert system.stock and system.server_flags() == ["--schedule-policy", "fcfs", *PRIORITY_FLAGS]
    assert "--schedule-low-priority-values-first" in PRIORITY_FLAGS
    assert make_backend(system, RecordingClient()).client_priority
    assert not make_backend(SYSTEMS["sglang-fcfs"], RecordingClient()).client_priority
