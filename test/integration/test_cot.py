"""DynasorCoT on the live server: probes agree on an easy problem and the program exits early,
aborting its in-flight chunk in the engine.

The two-shot prompt teaches the small model a "self-doubt" habit (re-checking a settled answer, as in
the paper's Fig. 3), so its chain of thought keeps verifying 2 + 2 = 4 instead of ending: exactly
the waste probing removes. Chunks and probes are greedy, and chunks ignore EOS (greedy output on
CPU still varies with batch composition, and a chunk that happens to end the answer would exit
"finished" instead); the default probe sampling (0.6 / 0.95) is covered by the unit tests. Budget: 10 chunks of 32 tokens (~20 s
of decode on 2 CPU cores even if the probes never agreed)."""

from dynasor.certaindex import answers_equivalent
from dynasor.client import AsyncDynasorClient
from dynasor.program_runtime.allocation import EvenAllocation, StaticThreshold
from dynasor.program_runtime.backends import DynasorBackend, RecordingBackend
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs import DynasorCoT
from dynasor.programs.cot import PROBE_SUFFIX

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


async def test_chunks_continue_from_the_ids_the_server_generated(url):
    """Every chunk is sent as the server's ids of the prompt + the ids of every chunk before it, and
    every probe as those + the suffix's ids: the engine never re-tokenizes the reasoning."""
    prompt = SELF_DOUBT_SHOTS + "Q: What is 2 + 2?\nA:"
    program = DynasorCoT(prompt, chunk_tokens=16, max_tokens=48, sampling_params={"temperature": 0.0, "ignore_eos": True},
                         probe_params={"temperature": 0.0})
    async with AsyncDynasorClient(url) as client:
        recorder = RecordingBackend(DynasorBackend(client))
        result = await ProgramRuntime(recorder, EvenAllocation()).run_one(program)
        prompt_ids = await client.tokenize(prompt)
        suffix_ids = await client.tokenize(PROBE_SUFFIX, add_special_tokens=False)
    calls = recorder.calls[program.program_id]
    chunks = [(p, g) for p, g in calls if program.probe_reasoning(p) is None]
    probes = [p for p, _ in calls if program.probe_reasoning(p) is not None]
    print(f"\n[cot ids] {len(chunks)} chunks, {len(probes)} probes, prompt {len(prompt_ids)} ids, exit {result.extra['exit']}")
    assert len(chunks) == 3 and len(probes) == 3 and all(isinstance(p, list) for p, _ in calls)
    generated: list[int] = []
    for sent, generation in chunks:
        assert sent == prompt_ids + generated
        assert len(generation.output_ids) == generation.completion_tokens == 16
        generated += generation.output_ids
        assert prompt_ids + generated + suffix_ids in probes
    assert result.extra["text"] == "".join(g.text for _, g in chunks)


COUNTING_SHOTS = (
    "Q: Count up from 3 by adding 2.\nA: 3 + 2 = 5. 5 + 2 = 7. 7 + 2 = 9. The last line is \\boxed{7 + 2 = 9}.\n\n"
    "Q: Count up from 10 by adding 10.\nA: 10 + 10 = 20. 20 + 10 = 30. The last line is \\boxed{20 + 10 = 30}.\n\n"
)


def _truth_value_equal(a: str, b: str) -> bool:
    """math-verify on the equations as written: it evaluates each relation to a truth value (the trap)."""
    from math_verify import parse, verify

    return bool(verify(parse(f"${a}$"), parse(f"${b}$")))


async def test_cot_does_not_exit_on_probes_that_disagree_as_equations(url):
    """A counting chain with equation answers in the shots: the greedy probes answer with equations
    of the chain (``5 + 2 = 7``, ``11 + 11 = 22``, ...). Compared by truth value they all agree and
    the program would exit at the third probe; compared by value (the final right-hand side) they
    disagree, and the program goes on. It may only exit "probe" on a window that agrees by value."""
    window = 3
    program = DynasorCoT(COUNTING_SHOTS + "Q: Count up from 2 by adding 3.\nA:", chunk_tokens=16, window=window,
                         max_tokens=128, sampling_params={"temperature": 0.0, "ignore_eos": True},
                         probe_params={"temperature": 0.0})
    async with AsyncDynasorClient(url) as client:
        result = await ProgramRuntime(DynasorBackend(client), StaticThreshold(1.0)).run_one(program)
    answers, extra = result.extra["probe_answers"], result.extra
    print(f"\n[cot equations] exit {extra['exit']} after {extra['chunks']} chunks, probes {answers}")
    trapped = [i for i in range(window, len(answers) + 1)
               if all("=" in a for a in answers[i - window:i])
               and all(_truth_value_equal(answers[i - window], a) for a in answers[i - window + 1:i])
               and not all(answers_equivalent(answers[i - window], a) for a in answers[i - window + 1:i])]
    assert trapped, "the probes no longer give disagreeing equations: the case this test is about did not occur"
    # the program went past the first such window (a truth-value comparison would have exited there) ...
    assert len(answers) > trapped[0] and not (extra["exit"] == "probe" and len(answers) == trapped[0])
    # ... and if it exited on probes at all, its last window agrees by value
    if extra["exit"] == "probe":
        assert all(answers_equivalent(answers[-window], a) for a in answers[-window + 1:])
