"""Reward models for reward-guided programs (Rebase, MCTS): the ``RewardModel`` protocol, an LLM
judge on the Dynasor server itself, and HTTP scorers (any service, or an SGLang reward model)."""

from dynasor.rewards.base import RewardModel, ScoreUsage, checked_reward
from dynasor.rewards.http_scorer import HTTPScorer, SGLangRewardModel
from dynasor.rewards.llm_judge import JUDGE_TEMPLATE, LLMJudge, yes_probability

__all__ = ["JUDGE_TEMPLATE", "HTTPScorer", "LLMJudge", "RewardModel", "SGLangRewardModel", "ScoreUsage",
           "checked_reward", "yes_probability"]
