"""The offline backend: SelfConsistency on an in-process ``sglang.Engine`` launched with Dynasor armed.

The engine's scheduler is Dynasor's (its program table sees the program, tagged by the backend),
and a certaindex stop aborts the program's remaining branches inside the engine.
"""

import pytest

from dynasor.engine import launch_engine
from dynasor.programs import SelfConsistency
from dynasor.runtime.backends import EngineBackend
from dynasor.runtime.policies import StaticThreshold
from dynasor.runtime.runtime import ProgramRuntime
from dynasor.scheduler.program_table import merge_summaries
from dynasor.srt.scheduler import STATE_KEY

from .test_self_consistency import THREE_SHOT

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def engine():
    eng = launch_engine(max_running_requests=8, log_level="error")
    try:
        yield eng
    finally:
        eng.shutdown()


async def programs_of(engine) -> dict:
    states = await engine.tokenizer_manager.get_internal_state()
    return merge_summaries([s.get(STATE_KEY, {}).get("programs", {}) for s in states])


async def test_engine_backend_stops_a_certain_program_inside_the_engine(engine):
    runtime = ProgramRuntime(EngineBackend(engine), StaticThreshold(0.7))
    program = SelfConsistency(THREE_SHOT + "Q: What is 2 + 2?\nA:", cap=16, detect_at=5, sampling_params={
        "max_new_tokens": 24, "stop": ["\n"], "temperature": 0.1})
    result = await runtime.run_one(program)
    programs = await programs_of(engine)
    print(f"\n[engine] answer {result.answer!r}, stopped {result.stopped_early}, knob {result.knob_used}, "
          f"aborted {result.extra['aborted_branches']}, tokens {result.generated_tokens}")
    assert result.stopped_early and result.extra["certaindex_at_detection"] >= 0.7
    assert result.extra["aborted_branches"] > 0 and result.answer
    assert len(programs) == 1, "the engine's program table holds the one tagged program"
    (summary,) = programs.values()
    assert summary["requests"]["aborted"] == result.extra["aborted_branches"]
    assert summary["requests"]["total"] == 16 and summary["state"] == "done"
