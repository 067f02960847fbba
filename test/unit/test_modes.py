"""dynasor.modes without a server: option validation, presets, sampling params, usage and response
shapes (checked against the openai client's own models), and whole cot/sc runs of the mode runner
over a fake TokenizerManager."""

import asyncio
import json
from types import SimpleNamespace

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from dynasor.core.generation import Generation
from dynasor.core.result import ProgramResult
from dynasor.modes.job import ModeJob
from dynasor.modes.options import (
    DEFAULT_BUDGET,
    EFFORT_PRESETS,
    CotOptions,
    DynasorOptionError,
    ScOptions,
    check_request,
    explicit_max_tokens,
    parse_options,
    probe_sampling_params,
    program_sampling_params,
    token_budget,
)
from dynasor.modes.outcome import cot_outcome, sc_outcome
from dynasor.modes.responses import ResponseMeta, chunk_body, response_body, sse, usage_chunk_body
from dynasor.modes.runner import ProgramModeRunner
from dynasor.programs.cot import PROBE_SUFFIX
from dynasor.srt.tokenizer_engine import TokenizerManagerEngine

# ---------------------------------------------------------------- options and presets

def test_defaults_are_cot_mid():
    assert parse_options({}) == CotOptions(probe_interval=64, window=3)
    assert parse_options({"mode": "sc"}) == ScOptions(n=16, detect_at=5, threshold=0.7)


@pytest.mark.parametrize("effort", ["low", "mid", "high"])
def test_effort_presets_fill_unset_fields(effort):
    cot = parse_options({"mode": "cot", "effort": effort})
    assert (cot.probe_interval, cot.window, cot.effort) == (*EFFORT_PRESETS["cot"][effort].values(), effort)
    sc = parse_options({"mode": "sc", "saving_effort": effort})  # the public proxy's name
    assert (sc.n, sc.detect_at, sc.threshold) == tuple(EFFORT_PRESETS["sc"][effort].values())


def test_public_repo_cot_presets_and_saving_direction():
    windows = [EFFORT_PRESETS["cot"][e]["window"] for e in ("low", "mid", "high")]
    assert windows == [5, 3, 2]  # public Dynasor "saving effort": higher saves more
    assert EFFORT_PRESETS["sc"]["mid"] == {"n": 16, "detect_at": 5, "threshold": 0.7}  # paper Table 3


def test_explicit_fields_override_the_preset():
    assert parse_options({"mode": "cot", "effort": "high", "probe_interval": 32}) == CotOptions(32, 2, "high")
    assert parse_options({"mode": "sc", "n": 8, "detect_at": 8, "threshold": 0}) == ScOptions(8, 8, 0.0)


def test_preset_detect_at_is_clamped_to_an_explicit_n():
    assert parse_options({"mode": "sc", "n": 3}) == ScOptions(3, 3, 0.7)


@pytest.mark.parametrize("raw, field", [
    ("cot", "dynasor"),
    ({"mode": "tot"}, "dynasor.mode"),
    ({"mode": 1}, "dynasor.mode"),
    ({"mode": "sc", "n": 0}, "dynasor.n"),
    ({"mode": "sc", "n": -3}, "dynasor.n"),
    ({"mode": "sc", "n": 1000}, "dynasor.n"),
    ({"mode": "sc", "n": 2.0}, "dynasor.n"),
    ({"mode": "sc", "n": True}, "dynasor.n"),
    ({"mode": "sc", "n": 4, "detect_at": 5}, "dynasor.detect_at"),
    ({"mode": "sc", "detect_at": 0}, "dynasor.detect_at"),
    ({"mode": "sc", "threshold": 1.5}, "dynasor.threshold"),
    ({"mode": "sc", "threshold": -0.1}, "dynasor.threshold"),
    ({"mode": "sc", "threshold": "0.7"}, "dynasor.threshold"),
    ({"effort": "max"}, "dynasor.effort"),
    ({"saving_effort": "crazy"}, "dynasor.saving_effort"),
    ({"effort": "low", "saving_effort": "low"}, "dynasor.saving_effort"),
    ({"mode": "cot", "foo": 1}, "dynasor.foo"),
    ({"mode": "cot", "window": "3"}, "dynasor.window"),
    ({"mode": "cot", "window": 0}, "dynasor.window"),
    ({"mode": "cot", "probe_interval": 0}, "dynasor.probe_interval"),
    ({"mode": "cot", "n": 4}, "dynasor.n"),
    ({"mode": "sc", "window": 2}, "dynasor.window"),
    ({"mode": "sc", "confidence": "always"}, "dynasor.confidence"),
    ({"mode": "sc", "eta": 0}, "dynasor.eta"),
    ({"mode": "sc", "eta": "0.1"}, "dynasor.eta"),
    ({"mode": "sc", "n": 4, "warmup": 5}, "dynasor.warmup"),
    ({"mode": "sc", "confidence_window": 0}, "dynasor.confidence_window"),
    ({"mode": "sc", "confidence_window": 70000}, "dynasor.confidence_window"),
    ({"mode": "cot", "confidence": "filter"}, "dynasor.confidence"),
])
def test_invalid_options_name_the_field(raw, field):
    with pytest.raises(DynasorOptionError) as err:
        parse_options(raw)
    assert err.value.param == field and str(err.value).startswith(field + " ")


def _chat(**fields):
    base = dict(n=1, logprobs=False, top_logprobs=None, tools=None, tool_choice="auto", response_format=None)
    return SimpleNamespace(**{**base, **fields})


def _completion(**fields):
    base = dict(n=1, best_of=None, echo=False, logprobs=None, prompt="Q: 1 + 1?\nA:")
    return SimpleNamespace(**{**base, **fields})


@pytest.mark.parametrize("request_, endpoint, field", [
    (_chat(n=2), "chat", "n"),
    (_chat(logprobs=True), "chat", "logprobs"),
    (_chat(top_logprobs=2), "chat", "logprobs"),
    (_chat(tools=[{"type": "function"}]), "chat", "tools"),
    (_chat(response_format=SimpleNamespace(type="json_object")), "chat", "response_format"),
    (_completion(n=3), "completions", "n"),
    (_completion(best_of=2), "completions", "best_of"),
    (_completion(echo=True), "completions", "echo"),
    (_completion(logprobs=0), "completions", "logprobs"),
    (_completion(prompt=["a", "b"]), "completions", "prompt"),
    (_completion(prompt=[1, 2, 3]), "completions", "prompt"),
])
def test_request_fields_dynasor_cannot_honour(request_, endpoint, field):
    with pytest.raises(DynasorOptionError) as err:
        check_request(request_, endpoint)
    assert err.value.param == field


def test_plain_fields_pass():
    check_request(_chat(tools=[{"type": "function"}], tool_choice="none",
                        response_format=SimpleNamespace(type="text")), "chat")
    check_request(_completion(), "completions")


# ---------------------------------------------------------------- sampling params and budget

SGLANG_PARAMS = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 300, "min_new_tokens": 0, "n": 1,
                 "stop": ["\n\n"], "regex": None, "json_schema": None, "sampling_seed": 7, "custom_params": None}


def test_program_params_keep_the_request_sampling_and_drop_what_the_program_sets():
    cot = program_sampling_params(SGLANG_PARAMS, "cot")
    assert cot == {"temperature": 0.0, "top_p": 1.0, "stop": ["\n\n"], "sampling_seed": 7}
    assert "sampling_seed" not in program_sampling_params(SGLANG_PARAMS, "sc")  # seeded samples would all agree


@pytest.mark.parametrize("extra, field", [({"regex": "a+"}, "regex"), ({"json_schema": "{}"}, "json_schema"),
                                          ({"custom_params": {"dynasor": {}}}, "custom_params.dynasor")])
def test_program_params_reject_constraints_and_a_client_tag(extra, field):
    with pytest.raises(DynasorOptionError) as err:
        program_sampling_params({**SGLANG_PARAMS, **extra}, "cot")
    assert err.value.param == field


def test_probes_never_sample_hotter_than_the_request():
    assert probe_sampling_params({"temperature": 0.0, "top_p": 1.0}) == {
        "max_new_tokens": 20, "temperature": 0.0, "top_p": 0.95}
    assert probe_sampling_params({"temperature": 1.2}) == {"max_new_tokens": 20, "temperature": 0.6, "top_p": 0.95}


def test_explicit_max_tokens_ignores_the_protocol_default():
    assert explicit_max_tokens(SimpleNamespace(model_fields_set={"prompt"}), {"max_new_tokens": 16}) is None
    assert explicit_max_tokens(SimpleNamespace(model_fields_set={"max_tokens"}), {"max_new_tokens": 99}) == 99
    assert explicit_max_tokens(SimpleNamespace(model_fields_set={"max_completion_tokens"}),
                               {"max_new_tokens": 5}) == 5


def test_token_budget_is_capped_by_the_context():
    assert token_budget(None, 10**6, "prompt") == DEFAULT_BUDGET
    assert token_budget(300, 10**6, "prompt") == 300
    assert token_budget(300, 120, "prompt") == 120
    with pytest.raises(DynasorOptionError, match="^messages "):
        token_budget(300, 0, "messages")


# ---------------------------------------------------------------- outcomes and response shapes

def _gen(text, tokens, finish="length", prompt_tokens=None):
    meta = {} if prompt_tokens is None else {"prompt_tokens": prompt_tokens}
    return Generation(text, tokens, finish, meta)


def _cot_result(exit_reason, answer="4", stopped=True):
    extra = {"exit": exit_reason, "chunks": 3, "text": "reasoning \\boxed{4}", "reasoning_tokens": 110,
             "probe_tokens": 40, "probe_answers": ["4", "4"]}
    return ProgramResult(answer, 3, 150, stopped, 1.0 if stopped else 0.5, extra)


COT_GENERATIONS = [_gen("a", 32, prompt_tokens=50), _gen("4}", 20, prompt_tokens=90), _gen("b", 32, prompt_tokens=82),
                   _gen("4}", 20, prompt_tokens=122), _gen("", 14, "abort", prompt_tokens=114), _gen("", 0, "abort")]


def test_cot_outcome_after_a_probe_exit():
    out = cot_outcome(CotOptions(32, 2), _cot_result("probe"), COT_GENERATIONS, "p" * 32, 400, 400)
    assert out.text == "reasoning \\boxed{4}" and out.finish_reason == "stop"
    assert out.usage == {"prompt_tokens": 50, "completion_tokens": 150, "total_tokens": 200, "probe_tokens": 40,
                         "baseline_tokens": 400}
    report = out.dynasor
    assert report["mode"] == "cot" and report["exit"] == "probe" and report["answer"] == "4"
    assert (report["probe_interval"], report["window"], report["chunks"]) == (32, 2, 3)
    assert report["aborted_requests"] == 2 and report["certaindex"] == 1.0 and report["max_tokens"] == 400


@pytest.mark.parametrize("exit_reason, explicit, baseline, finish", [
    ("probe", None, None, "stop"), ("finished", None, 110, "stop"), ("budget", 110, 110, "length"),
    ("aborted", 300, 300, "abort")])
def test_cot_baseline_tokens(exit_reason, explicit, baseline, finish):
    out = cot_outcome(CotOptions(32, 2), _cot_result(exit_reason), COT_GENERATIONS, "p" * 32, 110, explicit)
    assert out.usage["baseline_tokens"] == baseline and out.finish_reason == finish


def test_sc_outcome_reports_the_vote_and_its_samples():
    generations = [_gen("3 + 4 = 8. \\boxed{8}", 10, "stop", 40), _gen("3 + 4 = 7. \\boxed{7}", 12, "stop", 40),
                   _gen("\\boxed{7}", 6, "stop", 40), _gen("", 2, "abort", 40), _gen("", 0, "abort")]
    result = ProgramResult("7", 3, 30, True, 0.9, {"aborted_branches": 2, "answers": ["8", "7", "7"],
                                                   "certaindex_at_detection": 0.9})
    out = sc_outcome(ScOptions(8, 3, 0.6), result, generations, "p" * 32, 64)
    assert out.text == "3 + 4 = 7. \\boxed{7}" and out.finish_reason == "stop"
    assert out.usage == {"prompt_tokens": 40, "completion_tokens": 30, "total_tokens": 70, "probe_tokens": 0,
                         "baseline_tokens": round(8 * 28 / 3)}
    report = out.dynasor
    assert report["exit"] == "certaindex" and report["answer"] == "7" and report["aborted_requests"] == 2
    assert [s["answer"] for s in report["samples"]] == ["8", "7", "7"]
    assert (report["n"], report["detect_at"], report["threshold"]) == (8, 3, 0.6)


def test_sc_outcome_without_any_answer_or_sample():
    result = ProgramResult(None, 0, 0, False, 0.0, {"certaindex_at_detection": None})
    out = sc_outcome(ScOptions(2, 2, 0.7), result, [_gen("", 0, "abort")], "p" * 32, 64)
    assert out.text == "" and out.usage["baseline_tokens"] is None and out.dynasor["exit"] == "cap"


OUTCOME = cot_outcome(CotOptions(32, 2), _cot_result("probe"), COT_GENERATIONS, "p" * 32, 400, 400)


def test_chat_response_parses_as_an_openai_chat_completion():
    body = response_body(ResponseMeta("chatcmpl-1", 1, "m", "chat"), OUTCOME)
    parsed = ChatCompletion.model_validate(json.loads(json.dumps(body)))
    assert parsed.choices[0].message.content == OUTCOME.text and parsed.choices[0].finish_reason == "stop"
    assert parsed.usage.completion_tokens == 150 and parsed.usage.model_extra["probe_tokens"] == 40
    assert parsed.model_extra["dynasor"]["exit"] == "probe"


def test_completion_response_parses_as_an_openai_completion():
    body = response_body(ResponseMeta("cmpl-1", 1, "m", "completions"), OUTCOME)
    parsed = Completion.model_validate(body)
    assert parsed.choices[0].text == OUTCOME.text and parsed.model_extra["dynasor"]["answer"] == "4"


def test_stream_chunks_parse_as_openai_chunks():
    meta = ResponseMeta("chatcmpl-1", 1, "m", "chat")
    role, piece = chunk_body(meta, "", role="assistant"), chunk_body(meta, "step ")
    last = chunk_body(meta, None, "stop", dynasor=OUTCOME.dynasor)
    usage = usage_chunk_body(meta, OUTCOME.usage)
    events = [sse(b) for b in (role, piece, last, usage)]
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    chunks = [ChatCompletionChunk.model_validate(json.loads(e[len("data: "):])) for e in events]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[1].choices[0].delta.content == "step "
    assert chunks[2].choices[0].finish_reason == "stop" and chunks[2].model_extra["dynasor"]["mode"] == "cot"
    assert chunks[3].choices == [] and chunks[3].usage.total_tokens == 200
    completion = chunk_body(ResponseMeta("cmpl-1", 1, "m", "completions"), "step ")
    assert completion["object"] == "text_completion" and completion["choices"][0]["text"] == "step "
    assert completion["choices"][0]["finish_reason"] is None  # as SGLang's stream (the SDK does not validate it)


# ---------------------------------------------------------------- whole runs over a fake engine

class FakeTokenizerManager:
    """Probes return ``probe_text`` at once. Request k of the others returns ``texts[k]`` (the last
    one repeated) with max_new_tokens tokens: the first ``fast`` at once, later ones after ``wait_s``
    unless aborted first (then "abort" with one token). No ``rid_to_state``: every rid is dispatched."""

    def __init__(self, texts=("2 + 2 = 4. ",), probe_text="4}", wait_s=0.05, fast=0):
        self.texts, self.probe_text, self.wait_s, self.fast = list(texts), probe_text, wait_s, fast
        self.objs, self.aborted, self.calls = [], set(), 0

    async def generate_request(self, obj, raw_request=None):
        self.objs.append(obj)
        meta = {"prompt_tokens": len(obj.text.split()), "id": obj.rid}
        if obj.text.endswith(PROBE_SUFFIX):
            await asyncio.sleep(0)
            yield {"text": self.probe_text, "meta_info": {**meta, "completion_tokens": 3,
                                                          "finish_reason": {"type": "length"}}}
            return
        k, self.calls = self.calls, self.calls + 1
        for _ in range(0 if k < self.fast else int(self.wait_s / 0.005)):
            if obj.rid in self.aborted:
                yield {"text": "", "meta_info": {**meta, "completion_tokens": 1, "finish_reason": {"type": "abort"}}}
                return
            await asyncio.sleep(0.005)
        yield {"text": self.texts[min(k, len(self.texts) - 1)], "meta_info": {
            **meta, "completion_tokens": obj.sampling_params["max_new_tokens"], "finish_reason": {"type": "length"}}}

    def abort_request(self, rid=""):
        self.aborted.add(rid)


async def test_cot_run_exits_on_agreeing_probes_and_streams_a_prefix_of_the_final_text():
    tm, pieces = FakeTokenizerManager(), []
    job = ModeJob(CotOptions(probe_interval=8, window=2), "Q: What is 2 + 2?\nA:", {"temperature": 0.0}, 64, 64)
    outcome = await ProgramModeRunner().run(job, TokenizerManagerEngine(tm), on_text=pieces.append)
    report = outcome.dynasor
    assert report["exit"] == "probe" and report["answer"] == "4" and report["aborted_requests"] >= 1
    assert outcome.text.startswith("".join(pieces)) and len(pieces) == report["chunks"] >= 2
    assert "\\boxed{4}" in outcome.text[len("".join(pieces)):]
    assert outcome.usage["completion_tokens"] == report["reasoning_tokens"] + report["probe_tokens"]
    assert outcome.usage["baseline_tokens"] == 64 and outcome.usage["prompt_tokens"] == len(job.prompt.split())
    # every request is tagged with the program and has a uuid4 rid; probes are greedy like the request
    tags = {o.sampling_params["custom_params"]["dynasor"]["program_id"] for o in tm.objs}
    assert tags == {report["program_id"]} and all(len(o.rid) == 32 for o in tm.objs)
    assert all(o.sampling_params["temperature"] == 0.0 for o in tm.objs)


async def test_sc_run_stops_at_detection_and_aborts_the_rest():
    tm = FakeTokenizerManager(texts=["x \\boxed{7}"] * 3 + ["\\boxed{9}"], wait_s=2.0, fast=3)
    job = ModeJob(ScOptions(n=8, detect_at=3, threshold=0.7), "Q: 3 + 4?\nA:", {"temperature": 0.1}, 24, None)
    outcome = await ProgramModeRunner().run(job, TokenizerManagerEngine(tm))
    report = outcome.dynasor
    assert report["stopped_early"] and report["exit"] == "certaindex" and report["answer"] == "7"
    assert len(report["samples"]) == 3 and report["aborted_requests"] == 5 and len(tm.aborted) == 5
    assert outcome.text == "x \\boxed{7}" and outcome.usage["baseline_tokens"] == 8 * 24
    assert outcome.usage["completion_tokens"] == 3 * 24 + 5
    assert all(o.sampling_params["max_new_tokens"] == 24 for o in tm.objs)


def test_sc_confidence_options():
    sc = parse_options({"mode": "sc", "confidence": "online", "eta": 0.9, "warmup": 2, "confidence_window": 16})
    assert (sc.confidence, sc.eta, sc.warmup, sc.confidence_window) == ("online", 0.9, 2, 16)
    assert parse_options({"mode": "sc"}).confidence_window == 2048
    assert parse_options({"mode": "sc"}).confidence == "off"
