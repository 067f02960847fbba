"""DynasorCoT over a fake backend (no engine); the live test is in test/integration/test_cot.py.

Ordering is forced by counters, never by timing: in the default mode chunk k is held until the
program has judged probe k-1 (so each probe is judged while the next chunk is in flight, as on a
real engine where a 20-token probe beats a 64-token chunk)."""

import asyncio
import math

import pytest

from dynasor.core.generation import Generation
from dynasor.program_runtime.allocation import EvenAllocation, LengthCap, PeriodicRecheck, StaticThreshold
from dynasor.program_runtime.runtime import ProgramRuntime
from dynasor.programs import DynasorCoT
from dynasor.programs.cot import PROBE_SUFFIX

PROBE_TOKENS = 5
ABORTED_CHUNK_TOKENS = 2


class FakeBackend:
    """Chunks return ``"step "`` (max_new_tokens tokens); probe j returns ``probes[j]`` ("" past the end).

    ``finish_at``: that chunk ends the output (finish "stop") with an answer. ``slow_probes``: chunks
    are not held, probe j instead waits until chunk j+2 has returned (probes pile up). ``fail_probe_at``:
    that probe raises. After ``stop_program`` everything in flight returns "abort".
    """

    def __init__(self, probes, finish_at=None, slow_probes=False, fail_probe_at=None):
        self.probes, self.finish_at = probes, finish_at
        self.slow_probes, self.fail_probe_at = slow_probes, fail_probe_at
        self.program = None
        self.chunk_calls, self.probe_calls, self.events = [], [], []
        self.chunks_returned = 0
        self.returned_tokens = 0
        self.stop_calls = 0
        self.stopped = False

    async def _wait(self, ready):
        for _ in range(100_000):
            if self.stopped or ready():
                return
            await asyncio.sleep(0)
        raise AssertionError("the program never reached the step this request waits for")

    def _returned(self, generation):
        self.returned_tokens += generation.completion_tokens
        return generation

    async def tokenize(self, text, add_special_tokens=True):
        return None  # no tokenizer: the program sends text

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        assert program_id == self.program.program_id
        if prompt.endswith(PROBE_SUFFIX):
            return self._returned(await self._probe(prompt, params, remaining_work))
        return self._returned(await self._chunk(prompt, params, remaining_work))

    async def _chunk(self, prompt, params, remaining_work):
        k = len(self.chunk_calls)
        self.chunk_calls.append((prompt, dict(params), remaining_work))
        self.events.append(("chunk_start", k))
        if not self.slow_probes:
            await self._wait(lambda: len(self.program.state["probe_answers"]) >= k)
        else:
            await asyncio.sleep(0)
        if self.stopped:
            return Generation("partial", ABORTED_CHUNK_TOKENS, "abort")
        self.chunks_returned += 1
        if k == self.finish_at:
            return Generation(" so the answer is \\boxed{7}.", 9, "stop")
        return Generation("step ", params["max_new_tokens"], "length")

    async def _probe(self, prompt, params, remaining_work):
        j = len(self.probe_calls)
        self.probe_calls.append((prompt, dict(params), remaining_work))
        if self.slow_probes:
            await self._wait(lambda: self.chunks_returned >= j + 3)
        else:
            await asyncio.sleep(0)
        if j == self.fail_probe_at:
            raise RuntimeError("probe failed")
        self.events.append(("probe_done", j))
        if self.stopped:
            return Generation("4", 1, "abort")
        return Generation(self.probes[j] if j < len(self.probes) else "", PROBE_TOKENS, "length")

    async def stop_program(self, program_id):
        self.stop_calls += 1
        self.stopped = True


async def _execute(backend, policy, **kwargs):
    program = DynasorCoT("Q: 2 + 2?\nA:", **{"chunk_tokens": 8, "max_tokens": 100, **kwargs})
    backend.program = program
    result = await ProgramRuntime(backend, policy).run_one(program)
    leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leaked
    return result


def run(probes, policy=StaticThreshold(1.0), backend=None, **kwargs):
    backend = backend or FakeBackend(probes)
    result = asyncio.run(_execute(backend, policy, **kwargs))
    assert result.generated_tokens == backend.returned_tokens  # every token the engine made is counted once
    extra = result.extra
    assert result.generated_tokens == extra["reasoning_tokens"] + extra["probe_tokens"]
    return result, backend


def test_three_agreeing_probes_exit_with_one_abort():
    result, backend = run(["4}", "4} \\]", "4}"])
    assert result.extra["exit"] == "probe" and result.stopped_early
    assert backend.stop_calls == 1
    assert result.answer == "4" and result.certaindex == 1.0
    assert result.knob_used == 3 and result.extra["chunks"] == 3
    assert result.extra["probe_answers"] == ["4", "4", "4"]
    # three full chunks plus the partial one in flight when the program stopped (it was aborted)
    assert result.extra["reasoning_tokens"] == 3 * 8 + ABORTED_CHUNK_TOKENS
    assert result.extra["probe_tokens"] == 3 * PROBE_TOKENS
    assert "\\boxed{4}" in result.extra["text"] and "partial" not in result.extra["text"]


def test_probe_runs_concurrently_with_the_next_chunk():
    _, backend = run(["4}", "4}", "4}"])
    for j in range(3):  # chunk j+1 was already in flight when probe j returned
        assert backend.events.index(("chunk_start", j + 1)) < backend.events.index(("probe_done", j))
    prompt, params, _ = backend.probe_calls[1]
    assert prompt == "Q: 2 + 2?\nA:step step " + PROBE_SUFFIX
    assert params == {"max_new_tokens": 20, "temperature": 0.6, "top_p": 0.95}
    assert backend.chunk_calls[2][0] == "Q: 2 + 2?\nA:step step "  # probes never enter the reasoning


def test_disagreement_runs_to_the_budget():
    result, backend = run(["4}", "5}", "4}", "5}"], max_tokens=32)
    assert result.extra["exit"] == "budget" and not result.stopped_early and backend.stop_calls == 0
    assert result.knob_used == 4 and result.extra["reasoning_tokens"] == 32
    # the probe of the last chunk is awaited; with no answer in the text it is the fallback
    assert result.extra["probe_answers"] == ["4", "5", "4", "5"] and result.answer == "5"
    assert result.certaindex == pytest.approx(2 / 3)  # 5, 4, 5: two of three agree with 5


@pytest.mark.parametrize("blocker", ["4} hmm", "4} Wait,", "4", ""])
def test_hesitant_or_empty_probe_blocks_the_exit_until_it_leaves_the_window(blocker):
    result, backend = run(["4}", blocker, "4}", "4}", "4}"])
    assert result.extra["exit"] == "probe" and backend.stop_calls == 1
    assert result.knob_used == 5 and result.answer == "4"


def test_hesitation_inside_a_word_does_not_count():
    result, _ = run(["4} not known", "4} button", "4}"])
    assert result.extra["exit"] == "probe" and result.knob_used == 3


def test_natural_finish_answers_from_the_text():
    result, backend = run(["9}"], backend=FakeBackend(["9}"], finish_at=1))
    assert result.extra["exit"] == "finished" and not result.stopped_early and backend.stop_calls == 0
    assert result.answer == "7" and result.knob_used == 2
    assert result.extra["probe_answers"] == ["9"] and len(backend.probe_calls) == 1


def test_chunks_are_clipped_to_the_budget_and_carry_remaining_work():
    result, backend = run([], policy=EvenAllocation(), max_tokens=20)
    assert [p["max_new_tokens"] for _, p, _ in backend.chunk_calls] == [8, 8, 4]
    assert all(p["temperature"] == 0.6 and p["top_p"] == 0.95 for _, p, _ in backend.chunk_calls)
    works = [w for _, _, w in backend.chunk_calls]
    assert works[0] == 20 + math.ceil(20 / 8) * 20  # budget left plus one probe per chunk left
    assert works == sorted(works, reverse=True) and works[-1] == 4 + 20
    assert all(w is not None for _, _, w in backend.probe_calls)
    assert result.extra["exit"] == "budget" and result.answer is None


def test_even_allocation_never_exits_on_probes():
    result, backend = run(["4}"] * 5, policy=EvenAllocation(), max_tokens=40)
    assert result.extra["exit"] == "budget" and backend.stop_calls == 0 and result.knob_used == 5
    assert result.answer == "4" and result.certaindex == 1.0


def test_length_cap_stops_without_agreement():
    # chunk 8 + probe 5, then chunk 8: 21 >= 20 when probe 1 is judged
    result, backend = run(["4}", "5}", "6}"], policy=LengthCap(20))
    assert result.extra["exit"] == "policy" and result.stopped_early and backend.stop_calls == 1
    assert result.knob_used == 2 and result.answer == "5"


def test_periodic_recheck_only_stops_on_check_steps():
    # consistent from knob 4, but checks fall on knob 3, 5, 7 (detect_at = window = 3, every 2)
    result, _ = run(["1}", "4}", "4}", "4}", "4}"], policy=PeriodicRecheck(1.0, every_k=2))
    assert result.extra["exit"] == "probe" and result.knob_used == 5


def test_late_probes_are_aborted_and_not_judged():
    backend = FakeBackend(["4}", "4}", "4}"], slow_probes=True)
    result, _ = run(None, policy=StaticThreshold(0.0), backend=backend)
    assert result.extra["exit"] == "policy" and backend.stop_calls == 1
    assert result.extra["probe_answers"] == ["4"]  # the probes still in flight at the stop were aborted
    assert len(backend.probe_calls) >= 2


def test_a_failing_request_cancels_the_rest():
    backend = FakeBackend(["4}", "4}", "4}"], fail_probe_at=1)
    with pytest.raises(RuntimeError, match="probe failed"):
        asyncio.run(_execute(backend, StaticThreshold(1.0)))
    assert len(backend.chunk_calls) == 3  # chunk 2 was in flight, cancelled by the program


def test_certaindex_is_the_agreeing_fraction_of_the_window():
    program = DynasorCoT("q", window=4)
    program.state["probe_answers"] = ["4", "4", "5", "4"]
    program.state["probe_texts"] = ["4}", "4}", "5}", "4}"]
    assert program.update_certaindex() == 0.75
    program.state["probe_texts"][-1] = "4} hmm"
    assert program.update_certaindex() == 0.0
    program.state["probe_answers"], program.state["probe_texts"] = ["2", "2.0", "2"], ["2}", "2.0}", "2}"]
    assert program.update_certaindex() == 0.75  # window not full yet: never 1


def test_bad_knobs():
    with pytest.raises(ValueError, match="chunk_tokens"):
        DynasorCoT("q", chunk_tokens=0)


class TokenizingBackend:
    """Tokenizes one id per character (plus a BOS id 1 with special tokens); chunk k generates the ids
    10k+1 .. 10k+n (text "<k>" repeated); probes answer "4}". Keeps every prompt as sent."""

    def __init__(self, drop_ids_at=None):
        self.prompts, self.chunks, self.drop_ids_at = [], 0, drop_ids_at

    async def tokenize(self, text, add_special_tokens=True):
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]

    async def generate(self, prompt, params, program_id, remaining_work=None, hints=None):
        self.prompts.append(prompt)
        await asyncio.sleep(0)
        if list(prompt[-len(PROBE_SUFFIX):]) == [ord(c) for c in PROBE_SUFFIX] or str(prompt).endswith(PROBE_SUFFIX):
            return Generation("4}", 2, "length")
        k, self.chunks = self.chunks, self.chunks + 1
        n = params["max_new_tokens"]
        ids = () if k == self.drop_ids_at else tuple(10 * k + i for i in range(1, n + 1))
        return Generation(f"<{k}>" * n, n, "length", output_ids=ids)

    async def stop_program(self, program_id):
        pass


def test_chunks_and_probes_continue_from_the_prompt_ids_and_every_generated_id():
    backend = TokenizingBackend()
    program = DynasorCoT("Q?", chunk_tokens=3, max_tokens=9)
    result = asyncio.run(ProgramRuntime(backend, EvenAllocation()).run_one(program))
    prompt_ids, suffix_ids = [1, ord("Q"), ord("?")], [ord(c) for c in PROBE_SUFFIX]
    chunks = [p for p in backend.prompts if p[-len(suffix_ids):] != suffix_ids]
    probes = [p for p in backend.prompts if p[-len(suffix_ids):] == suffix_ids]
    generated = [[], [1, 2, 3], [1, 2, 3, 11, 12, 13]]
    assert chunks == [prompt_ids + g for g in generated]  # chunk k+1: prompt ids + the ids generated so far
    assert probes == [prompt_ids + g + suffix_ids for g in [*generated[1:], [1, 2, 3, 11, 12, 13, 21, 22, 23]]]
    assert all(isinstance(p, list) for p in backend.prompts)
    assert result.extra["text"] == "<0>" * 3 + "<1>" * 3 + "<2>" * 3 and result.extra["exit"] == "budget"


def test_a_chunk_without_ids_or_a_backend_without_a_tokenizer_falls_back_to_text():
    backend = TokenizingBackend(drop_ids_at=1)
    asyncio.run(ProgramRuntime(backend, EvenAllocation()).run_one(DynasorCoT("Q?", chunk_tokens=3, max_tokens=9)))
    chunks = [p for p in backend.prompts if not (isinstance(p, str) and p.endswith(PROBE_SUFFIX))
              and not (isinstance(p, list) and p[-len(PROBE_SUFFIX):] == [ord(c) for c in PROBE_SUFFIX])]
    assert isinstance(chunks[1], list) and chunks[2] == "Q?" + "<0>" * 3 + "<1>" * 3
    backend = TokenizingBackend()
    asyncio.run(ProgramRuntime(backend, EvenAllocation()).run_one(
        DynasorCoT("Q?", chunk_tokens=3, max_tokens=9, token_ids=False)))
    assert all(isinstance(p, str) for p in backend.prompts)
