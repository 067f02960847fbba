"""Tokens-to-accuracy curves over seeds, savings at matched accuracy, tables and plots.

A point is one policy at one knob value (SC cap, CoT budget, Rebase width): per seed, the mean
accuracy and mean tokens per program over that seed's problems; across seeds, mean, sample std
(n-1), min and max, so every point carries its spread. Savings at matched accuracy compare a
point with the even curve (seed means): the even tokens needed to reach the point's accuracy,
read off the even curve drawn piecewise-linearly in token order (its first crossing), and
saved = 1 - point tokens / those tokens. A point below the cheapest even point has no match (no
extrapolation: it would invent the baseline's cost); a point above the best even accuracy gets a
lower bound instead, against the cheapest even point of best accuracy (``saved_at_least``). On a
flat or noisy even curve (the small CPU model) matched-accuracy savings are ill-conditioned, so
every row also carries the saving against even at the same knob.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.batch.offline import Result, ResultFn, Spec, mean_result


def spread(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n, "values": list(values)}


def evaluate(groups: Mapping[Any, Sequence[Any]], knobs: Sequence[int], specs: Sequence[Spec],
             result: ResultFn) -> list[dict[str, Any]]:
    """Points for every (spec, knob) over seed groups {seed: records}; a knob where a spec does
    not apply (``result`` returns None for every record) is left out. Per seed the mean over
    programs; per point the spread over seeds."""
    points = []
    for spec in specs:
        for knob in knobs:
            per_seed: list[Result] = []
            for records in groups.values():
                results = [r for r in (result(rec, knob, spec) for rec in records) if r is not None]
                if results:
                    per_seed.append(mean_result(results))
            if not per_seed:
                continue
            points.append({"policy": spec.label, "family": spec.family, "value": spec.value,
                           "detect_at": spec.detect_at, "knob": knob,
                           "accuracy": spread([r.correct for r in per_seed]),
                           "tokens": spread([r.tokens for r in per_seed]),
                           "extra_tokens": spread([r.extra_tokens for r in per_seed]),
                           "stopped": spread([r.stopped for r in per_seed])})
    return points


def matched_tokens(curve: Sequence[tuple[float, float]], accuracy: float, tol: float = 1e-9) -> float | None:
    """Tokens at which the (tokens, accuracy) curve first reaches ``accuracy`` (linear between
    points, taken in token order); None if it never does or only below its first point."""
    ordered = sorted(curve)
    if not ordered:
        return None
    first_tokens, first_accuracy = ordered[0]
    if accuracy <= first_accuracy + tol:
        return first_tokens if accuracy >= first_accuracy - tol else None
    for (t0, a0), (t1, a1) in itertools.pairwise(ordered):  # here a0 < accuracy: not reached yet
        if a1 >= accuracy - tol:
            return t0 + min(1.0, (accuracy - a0) / (a1 - a0)) * (t1 - t0)
    return None


def savings(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per non-even point: even tokens at its accuracy (matched) and at its knob (same knob)."""
    even = [p for p in points if p["family"] == "even"]
    curve = [(p["tokens"]["mean"], p["accuracy"]["mean"]) for p in even]
    by_knob = {p["knob"]: p for p in even}
    rows = []
    for p in points:
        if p["family"] == "even":
            continue
        acc, tokens = p["accuracy"]["mean"], p["tokens"]["mean"]
        matched = matched_tokens(curve, acc)
        same = by_knob.get(p["knob"])
        best_even = min(curve, key=lambda c: (-c[1], c[0])) if curve else None
        above = matched is None and best_even is not None and acc > best_even[1]
        rows.append({
            "policy": p["policy"], "family": p["family"], "knob": p["knob"],
            "accuracy": acc, "accuracy_std": p["accuracy"]["std"], "tokens": tokens, "tokens_std": p["tokens"]["std"],
            "extra_tokens": p["extra_tokens"]["mean"], "stopped": p["stopped"]["mean"],
            "even_tokens_matched": matched,
            "saved_matched": 1 - tokens / matched if matched else None,
            "saved_at_least": 1 - tokens / best_even[0] if above and best_even and best_even[0] else None,
            "even_accuracy_same_knob": same["accuracy"]["mean"] if same else None,
            "saved_same_knob": 1 - tokens / same["tokens"]["mean"] if same and same["tokens"]["mean"] else None,
        })
    return rows


def best_saving(rows: Sequence[Mapping[str, Any]], family: str = "certaindex") -> Mapping[str, Any] | None:
    """The row of ``family`` with the largest saving at matched accuracy (the headline number)."""
    ok = [r for r in rows if r["family"] == family and r["saved_matched"] is not None]
    return max(ok, key=lambda r: r["saved_matched"]) if ok else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def saved_cell(row: Mapping[str, Any]) -> str:
    """Saving at matched accuracy; above the best even accuracy, the bound against that point."""
    if row.get("saved_matched") is not None:
        return _pct(row["saved_matched"])
    bound = row.get("saved_at_least")
    return f">={_pct(bound)}" if bound is not None and bound > 0 else ("above" if bound is not None else "-")


def format_savings(rows: Sequence[Mapping[str, Any]], knob_name: str) -> str:
    head = (f"{'policy':<26} {knob_name:>6} {'accuracy':>13} {'tokens/prog':>15} {'stop':>5} "
            f"{'even tok @acc':>13} {'saved@acc':>9} {'saved@knob':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        matched = "-" if r["even_tokens_matched"] is None else f"{r['even_tokens_matched']:.1f}"
        lines.append(f"{r['policy']:<26} {r['knob']:>6} {r['accuracy']:>6.3f}±{r['accuracy_std']:<6.3f} "
                     f"{r['tokens']:>8.1f}±{r['tokens_std']:<6.1f} {r['stopped']:>5.2f} {matched:>13} "
                     f"{saved_cell(r):>9} {_pct(r['saved_same_knob']):>10}")
    return "\n".join(lines)


def format_points(points: Sequence[Mapping[str, Any]], knob_name: str) -> str:
    head = f"{'policy':<26} {knob_name:>6} {'accuracy mean±std [min,max]':>30} {'tokens/prog mean±std':>22}"
    lines = [head, "-" * len(head)]
    for p in points:
        a, t = p["accuracy"], p["tokens"]
        lines.append(f"{p['policy']:<26} {p['knob']:>6} {a['mean']:>9.3f}±{a['std']:.3f} "
                     f"[{a['min']:.3f},{a['max']:.3f}] {t['mean']:>12.1f}±{t['std']:.1f}")
    return "\n".join(lines)


def plot(panels: Mapping[str, Sequence[Mapping[str, Any]]], path: Any, title: str, knob_name: str,
         live: Sequence[Mapping[str, Any]] = ()) -> None:
    """Accuracy vs tokens per program, one line per policy (error bars: std over seeds), one panel
    per scope ("all", then each level); ``live`` points are drawn as stars on the first panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    palettes = {"even": ["black"], "length": ["tab:orange", "tab:brown", "goldenrod"],
                "certaindex": ["tab:blue", "tab:green", "tab:purple", "tab:cyan", "tab:olive", "tab:pink"]}
    styles = {"even": ("o", "-"), "length": ("s", "--"), "certaindex": ("^", "-")}
    for ax, (scope, points) in zip(axes[0], panels.items()):
        used = dict.fromkeys(palettes, 0)
        for policy in dict.fromkeys(p["policy"] for p in points):
            line = sorted((p for p in points if p["policy"] == policy), key=lambda p: p["tokens"]["mean"])
            family = line[0]["family"] if line[0]["family"] in palettes else "certaindex"
            color = palettes[family][used[family] % len(palettes[family])]
            used[family] += 1
            marker, dash = styles[family]
            ax.errorbar([p["tokens"]["mean"] for p in line], [p["accuracy"]["mean"] for p in line],
                        xerr=[p["tokens"]["std"] for p in line], yerr=[p["accuracy"]["std"] for p in line],
                        label=policy, color=color, marker=marker, linestyle=dash, capsize=2, linewidth=1.2)
            for p in line:
                ax.annotate(str(p["knob"]), (p["tokens"]["mean"], p["accuracy"]["mean"]), fontsize=6,
                            textcoords="offset points", xytext=(3, 3))
        if scope == "all":
            for p in live:
                ax.plot([p["tokens"]], [p["accuracy"]], marker="*", markersize=12, linestyle="none",
                        color="tab:red", label=p["policy"])
        ax.set_title(f"{title} ({scope})" if scope != "all" else title, fontsize=9)
        ax.set_xlabel("generated tokens per program (incl. probe/judge)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, title=f"point labels: {knob_name}", title_fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
