"""Reward models behind HTTP: any scorer service, or an SGLang server running a reward model.

``HTTPScorer`` speaks a minimal schema so any process (a PRM in another framework, a verifier, a
rule-based checker) can guide the search:

    POST <url>   {"question": "<prompt>", "steps": ["<step 1>", ..., "<step to score>"]}
    200          {"score": <float in [0, 1]>}          (other fields are ignored)

``SGLangRewardModel`` uses what SGLang 0.5.23 offers for reward models (``--is-embedding`` servers
of ``*ForSequenceClassification`` / ``*ForRewardModel`` architectures): ``POST /classify`` with an
``EmbeddingReqInput`` body ``{"text": ...}``, answered with ``{"embedding": [...], "meta_info":
{...}}`` where ``embedding`` holds the raw head outputs (one logit for a reward head). One value
is squashed with a sigmoid, several with a softmax read at ``label``. ``/classify`` requests carry
no sampling params, so they cannot be tagged: the paper also runs the reward model apart (its own
GPU), so they are neither ganged nor aborted with the program.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from dynasor.rewards.base import ScoreUsage, checked_reward


def _raise_for_status(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"reward server {response.request.url} answered {response.status_code}: {response.text}")
    return response.json()


class _OwnedClient:
    """An ``httpx.AsyncClient`` given by the caller, or made here and closed by ``aclose``."""

    def __init__(self, client: httpx.AsyncClient | None, timeout: float) -> None:
        self._owned = client is None
        self.http = client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def __aenter__(self) -> _OwnedClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class HTTPScorer(_OwnedClient):
    """``RewardModel`` that POSTs ``{"question", "steps"}`` to ``url`` and reads ``{"score"}``.

    The program id is not sent: ids are capabilities and a third-party scorer has no use for one.
    """

    def __init__(self, url: str, client: httpx.AsyncClient | None = None, timeout: float = 60.0) -> None:
        super().__init__(client, timeout)
        self.url = url

    async def score(self, question: str, steps: Sequence[str], program_id: str | None = None,
                    usage: ScoreUsage | None = None) -> float:
        body = _raise_for_status(await self.http.post(self.url, json={"question": question, "steps": list(steps)}))
        if not isinstance(body, dict) or "score" not in body:
            raise ValueError(f"scorer {self.url} must answer {{\"score\": float}}, got {body!r}")
        if usage is not None:
            usage.calls += 1
        return checked_reward(body["score"], f"scorer {self.url}")


def join_steps(question: str, steps: Sequence[str]) -> str:
    """The trajectory as the policy wrote it: question, then the steps one per line."""
    return question + "\n".join(steps)


def squash(values: Sequence[float], label: int) -> float:
    """Raw reward-head outputs to [0, 1]: sigmoid of one logit, softmax probability of ``label``."""
    if not values:
        raise ValueError("reward model returned an empty embedding")
    if len(values) == 1:
        x = float(values[0])
        return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
    top = max(values)
    exps = [math.exp(float(v) - top) for v in values]
    return exps[label] / sum(exps)


class SGLangRewardModel(_OwnedClient):
    """``RewardModel`` for an SGLang reward-model server (``POST {base_url}/classify``)."""

    def __init__(self, base_url: str, formatter: Callable[[str, Sequence[str]], str] = join_steps, label: int = -1,
                 client: httpx.AsyncClient | None = None, timeout: float = 60.0) -> None:
        super().__init__(client, timeout)
        self.url = base_url.rstrip("/") + "/classify"
        self.formatter = formatter
        self.label = label

    async def score(self, question: str, steps: Sequence[str], program_id: str | None = None,
                    usage: ScoreUsage | None = None) -> float:
        body = _raise_for_status(await self.http.post(self.url, json={"text": self.formatter(question, steps)}))
        if isinstance(body, list):
            body = body[0]
        if not isinstance(body, dict) or not isinstance(body.get("embedding"), list):
            raise ValueError(f"{self.url} must answer {{\"embedding\": [...]}}, got {body!r}")
        if usage is not None:
            usage.add_meta(body.get("meta_info") or {})
        return checked_reward(squash(body["embedding"], self.label), self.url)
