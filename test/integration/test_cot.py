"""DynasorCoT on the live server: probes agree on an easy problem and the program exits early,
aborting its in-flight chunk in the engine.

The two-shot prompt teaches the small model a "self-doubt" habit (re-checking a settled answer, as in
the paper's Fig. 3), so its chain of thought keeps verifying 2 + 2 = 4 instead of ending: exactly
the waste probing removes. Chunks and probes are greedy, and chunks ignore EOS (greedy output on
CPU still varies with batch composition, and a chunk that happens to end the answer would exit
"finished" instead); the default probe sampling (0.6 / 0.95) is covered by the unit tests. Budget: 10 chunks of 32 tokens (~20 s
of decode on 2 CPU cores even if the probes never agreed)."""

from dynasor.client import AsyncDynasorClient
from dynasor.programs import DynasorCoT
from dynasor.runtime.backends import DynasorBackend
from dynasor.runtime.allocation import StaticThreshold
from dynasor.runtime.runtime import ProgramRuntime

SELF_DOUBT_SHOTS = (
    "Q: What is 2 + 3?\nA: Let me think. 2 + 3 = 5. Let me check again. 2 + 3 = 5. Let me check again. "
    "2 + 3 = 5. The answer is \\boxed{5}.\n\n"
    "Q: What is 7 - 4?\nA: Let me think. 7 - 4 = 3. Let me check again. 7 - 4 = 3. Let me check again. "
    "7 - 4 = 3. The answer is \\boxed{3}.\n\n"
)
CHUNK, BUDGET = 32, 320


async def test_cot_exits_early_when_probes_agree(url):
    program = DynasorCoT(SELF_DOUBT_SHOTS + "Q: What is 2 + 2?\nA:", chunk_tokens=CHUNK, window=3, max_tokens=BUDGET,
                         sampling_params={"temperature": 0.0, "ignore_eos": True},
                         probe_params={"temperature": 0.0})
    async with AsyncDynasorClient(url) as client:
        result = await ProgramRuntime(DynasorBackend(client), StaticThreshold(1.0)).run_one(program)
        engine = await client.program(program.program_id)
    extra = result.extra
    print(f"\n[cot] exit {extra['exit']} after {extra['chunks']} chunks, answer {result.answer!r}, "
          f"reasoning {extra['reasoning_tokens']}/{BUDGET} tokens, probe {extra['probe_tokens']} tokens, "
          f"probes {extra['probe_answers']}, engine requests {engine['requests']}")
    assert extra["exit"] == "probe" and result.stopped_early and result.certaindex == 1.0
    assert extra["reasoning_tokens"] < BUDGET
    assert result.answer
    assert result.generated_tokens == extra["reasoning_tokens"] + extra["probe_tokens"]
    # the chunk in flight at the exit was aborted in the engine; nothing of the program is left
    assert engine["requests"]["aborted"] >= 1
    assert engine["requests"]["waiting"] == engine["requests"]["running"] == 0
    assert engine["remaining_work_hint"] is not None  # every request carried the program's estimate
