"""The offline backend: SelfConsistency on an in-process ``sglang.Engine`` launched with Dynasor armed.

The engine's scheduler is Dynasor's (its program table sees the program, tagged by the backend),
and a certaindex stop aborts the program's remaining branches inside the engine.

The engine runs in a child Python process (this module run with ``-m``): ``Engine.shutdown()``
ends every child process of its own process, which inside pytest would include the shared
test server.
"""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARK = "[engine-result] "


async def scenario() -> dict:
    from dynasor.core.scheduler_state import STATE_KEY
    from dynasor.program_runtime.allocation import StaticThreshold
    from dynasor.program_runtime.backends import EngineBackend
    from dynasor.program_runtime.runtime import ProgramRuntime
    from dynasor.programs import SelfConsistency
    from dynasor.scheduler.program_summary import merge_summaries
    from dynasor.srt.engine import launch_engine
    from test.integration.conftest import SMALL_KV_TOKENS
    from test.integration.test_self_consistency import THREE_SHOT

    engine = launch_engine(max_running_requests=8, max_total_tokens=SMALL_KV_TOKENS, log_level="error")
    try:
        runtime = ProgramRuntime(EngineBackend(engine), StaticThreshold(0.7))
        program = SelfConsistency(THREE_SHOT + "Q: What is 2 + 2?\nA:", cap=16, detect_at=5, sampling_params={
            "max_new_tokens": 24, "stop": ["\n"], "temperature": 0.1})
        result = await runtime.run_one(program)
        states = await engine.tokenizer_manager.get_internal_state()
        programs = merge_summaries([s.get(STATE_KEY, {}).get("programs", {}) for s in states])
    finally:
        engine.shutdown()
    return {"answer": result.answer, "stopped": result.stopped_early, "knob": result.knob_used,
            "aborted": result.extra["aborted_branches"], "tokens": result.generated_tokens,
            "certaindex_at_detection": result.extra["certaindex_at_detection"],
            "programs": list(programs.values())}


def test_engine_backend_stops_a_certain_program_inside_the_engine():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "test.integration.test_engine_backend"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(lines[-1][len(MARK):])
    print(f"\n[engine] answer {out['answer']!r}, stopped {out['stopped']}, knob {out['knob']}, "
          f"aborted {out['aborted']}, tokens {out['tokens']}")
    assert out["stopped"] and out["certaindex_at_detection"] >= 0.7
    assert out["aborted"] > 0 and out["answer"]
    assert len(out["programs"]) == 1, "the engine's program table holds the one tagged program"
    (summary,) = out["programs"]
    assert summary["requests"]["aborted"] == out["aborted"]
    assert summary["requests"]["total"] == 16 and summary["state"] == "done"


if __name__ == "__main__":
    print(MARK + json.dumps(asyncio.run(scenario())), flush=True)
