"""Reward backends: P(yes) parsing from SGLang's top-logprob format, and the HTTP clients against a
real in-process aiohttp server on 127.0.0.1 that checks the requests they send."""

import math

import pytest
from aiohttp import web

from dynasor.client import AsyncDynasorClient
from dynasor.rewards import HTTPScorer, LLMJudge, ScoreUsage, SGLangRewardModel, checked_reward, yes_probability
from dynasor.rewards.http_scorer import squash
from dynasor.rewards.llm_judge import reward_from_meta

# a judge response's meta_info in SGLang 0.5.23's shape (tokenizer_manager.detokenize_logprob_tokens:
# one entry per generated token, each a list of [logprob, token_id, token_text])
JUDGE_META = {
    "id": "0f3c", "finish_reason": {"type": "length", "length": 1},
    "prompt_tokens": 57, "completion_tokens": 1, "cached_tokens": 48,
    "output_token_logprobs": [[-0.41, 7116, " Yes"]],
    "output_top_logprobs": [[[-0.41, 7116, " Yes"], [-1.52, 1770, " No"], [-2.9, 198, "\n"], [-4.1, 5248, " yes"]]],
}


def test_yes_probability_hand_computed():
    # P(yes) = e^-.41 + e^-4.1 = .68022, P(no) = e^-1.52 = .21871  ->  .68022 / .89893
    assert reward_from_meta(JUDGE_META) == pytest.approx(0.756699, abs=1e-6)
    only_yes = [[math.log(0.3), 1, " YES"], [math.log(0.5), 2, "\n"]]
    assert yes_probability(only_yes) == pytest.approx(0.3)            # no "no" in the top list: raw P(yes)
    assert yes_probability([[math.log(0.4), 2, "No"], [math.log(0.5), 3, "Q"]]) == 0.0
    assert yes_probability(None) == 0.0 and reward_from_meta({"output_top_logprobs": [None]}) == 0.0
    assert yes_probability([[math.log(0.5), 1, "Yesterday"], [math.log(0.5), 2, " no."]]) == 0.0
    with pytest.raises(ValueError, match="return_text_in_logprobs"):
        yes_probability([[-0.1, 7116, None]])


def test_checked_reward_and_squash():
    assert checked_reward(1, "s") == 1.0 and checked_reward(0.25, "s") == 0.25
    for bad in (1.5, -0.1, float("nan"), "0.5", True, None):
        with pytest.raises(ValueError):
            checked_reward(bad, "s")
    assert squash([0.0], -1) == 0.5 and squash([2.0], -1) == pytest.approx(0.880797)
    assert squash([-1000.0], -1) == pytest.approx(0.0) and squash([1000.0], -1) == pytest.approx(1.0)
    two_class = [0.0, math.log(3)]
    assert squash(two_class, -1) == pytest.approx(0.75) and squash(two_class, 0) == pytest.approx(0.25)


@pytest.fixture
async def server():
    """Fake /generate (judge), /score (HTTPScorer schema) and /classify (SGLang reward model)."""
    seen: list[tuple[str, dict]] = []

    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(("generate", body))
        if "ABORT" in body["text"]:
            return web.json_response({"text": "", "meta_info": {
                "finish_reason": {"type": "abort"}, "prompt_tokens": 9, "completion_tokens": 0,
                "output_top_logprobs": []}})
        return web.json_response({"text": " Yes", "meta_info": JUDGE_META})

    async def score(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(("score", body))
        replies = {"ok": {"score": 0.25, "note": "extra fields are ignored"}, "high": {"score": 1.5},
                   "missing": {"value": 0.3}}
        if body["question"] == "boom":
            return web.json_response({"error": "down"}, status=500)
        return web.json_response(replies[body["question"]])

    async def classify(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(("classify", body))
        if body["text"].startswith("two"):
            return web.json_response([{"embedding": [0.0, math.log(3)], "meta_info": {"prompt_tokens": 4}}])
        return web.json_response({"embedding": [2.0], "meta_info": {"prompt_tokens": 7, "completion_tokens": 0}})

    app = web.Application()
    app.add_routes([web.post("/generate", generate), web.post("/score", score), web.post("/classify", classify)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", seen
    await runner.cleanup()


async def test_llm_judge_sends_a_tagged_one_token_logprob_request(server):
    url, seen = server
    usage = ScoreUsage()
    pid = "a" * 32
    async with AsyncDynasorClient(url) as client:
        judge = LLMJudge(client)
        steps = [" 2 + 3 = 5.", " The answer is \\boxed{5}."]
        reward = await judge.score("Q: 2+3?\nA:", steps, program_id=pid, usage=usage)
        untagged = await judge.score("Q:", ["x"])
        aborted = await judge.score("ABORT", ["x"], program_id=pid, usage=usage)
    assert reward == pytest.approx(0.756699, abs=1e-6) and untagged == reward and aborted == 0.0
    body = seen[0][1]
    assert body["text"] == ("Q: 2+3?\nA: 2 + 3 = 5.\n The answer is \\boxed{5}.\n\n"
                            "Is the last step above correct? Answer Yes or No.\nAnswer:")
    assert body["return_logprob"] is True and body["top_logprobs_num"] == 20 and body["return_text_in_logprobs"]
    params = body["sampling_params"]
    assert params["max_new_tokens"] == 1 and params["temperature"] == 0.0
    assert params["custom_params"] == {"dynasor": {"program_id": pid, "return_entropy": False}}
    assert "custom_params" not in seen[1][1]["sampling_params"]
    assert usage.as_dict() == {"calls": 2, "prompt_tokens": 57 + 9, "completion_tokens": 1,
                               "cached_tokens": 48, "aborted": 1}
    with pytest.raises(ValueError, match="steps"):
        judge.prompt("Q:", [])


async def test_http_scorer_schema_and_errors(server):
    url, seen = server
    usage = ScoreUsage()
    async with HTTPScorer(url + "/score") as scorer:
        assert await scorer.score("ok", ["s1", "s2"], program_id="b" * 32, usage=usage) == 0.25
        assert seen[-1] == ("score", {"question": "ok", "steps": ["s1", "s2"]})   # the id is not sent
        with pytest.raises(ValueError, match="outside"):
            await scorer.score("high", ["s"])
        with pytest.raises(ValueError, match="score"):
            await scorer.score("missing", ["s"])
        with pytest.raises(RuntimeError, match="500"):
            await scorer.score("boom", ["s"])
    assert usage.calls == 1


async def test_sglang_reward_model_reads_classify(server):
    url, seen = server
    usage = ScoreUsage()
    async with SGLangRewardModel(url + "/") as rm:
        assert await rm.score("Q:", ["a", "b"], usage=usage) == pytest.approx(0.880797)
        assert seen[-1] == ("classify", {"text": "Q:a\nb"})
        assert await rm.score("two-class ", ["a"], usage=usage) == pytest.approx(0.75)
    assert usage.calls == 2 and usage.prompt_tokens == 11
