"""Program summaries of several data-parallel ranks merged into one view (plain data)."""

from __future__ import annotations

from typing import Any

from dynasor.scheduler.program_entry import program_state


def merge_summaries(per_rank: list[dict[str, dict[str, Any]]],
                    ranks: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """Combine the snapshots of several data-parallel ranks (``ranks``: their rank numbers, by default
    their positions) into one view per program; ``dp_ranks`` lists the ranks that hold it."""
    merged: dict[str, dict[str, Any]] = {}
    for rank, snapshot in zip(range(len(per_rank)) if ranks is None else ranks, per_rank):
        for key, summary in snapshot.items():
            into = merged.get(key)
            if into is None:
                merged[key] = {**summary, "requests": dict(summary["requests"]), "dp_ranks": [rank],
                               "finished_request_token_stats": list(summary["finished_request_token_stats"])}
                continue
            into["dp_ranks"] = sorted({*into["dp_ranks"], rank})
            for name, count in summary["requests"].items():
                into["requests"][name] += count
            into["prompt_tokens"] += summary["prompt_tokens"]
            into["generated_tokens"] += summary["generated_tokens"]
            into["first_arrival"] = min(into["first_arrival"], summary["first_arrival"])
            services = [t for t in (into["last_service"], summary["last_service"]) if t is not None]
            into["last_service"] = max(services) if services else None
            into["estimated_remaining_work"] += summary["estimated_remaining_work"]
            into["waiting_time"] = max(into["waiting_time"], summary["waiting_time"])
            into["escalations"] += summary["escalations"]
            into["low_confidence_stops"] += summary["low_confidence_stops"]
            tokens = into["entropy_tokens"] + summary["entropy_tokens"]
            if tokens:
                into["mean_entropy"] = (
                    (into["mean_entropy"] or 0.0) * into["entropy_tokens"]
                    + (summary["mean_entropy"] or 0.0) * summary["entropy_tokens"]
                ) / tokens
            into["entropy_tokens"] = tokens
            into["finished_request_token_stats"] += summary["finished_request_token_stats"]
            into["state"] = program_state(into["requests"]["waiting"], into["requests"]["running"])
    return merged
