"""Admission and retraction against the KV pool, by program (plain data).

SGLang admits a request when its input plus a share of its token budget (``new_token_ratio`` ×
``max_new_tokens``, the budget clipped at 4,096) fits, and retracts single requests, fewest output
tokens first, when decode runs out. With long reasoning (budgets of 16k-32k tokens, outputs of
thousands) that admits more than the pool can grow into, and a retraction throws away a branch's
output, which is prefilled again later: a little of everyone's work is redone.

These rules keep programs whole instead:

- **gang admission**: a program's waiting requests are admitted together, and only when the pool
  holds them at the peak: every request (running, and the gang) held with its KV and grown one token
  per step until its expected end (what its program's finished requests made, else the server-wide
  mean, capped by the budget; ``work_estimate``). The peak is before one of those ends, when all
  still running hold their most. Otherwise the program waits whole, and so does every program
  behind it (no skipping ahead: the queue order is the scheduling policy's).
- **program retraction**: when decode runs out anyway, requests give way program by program, the
  program with the most remaining work first, until the rest fits (SGLang's retraction loop, fed
  this order); the other programs keep every branch running.

The server's hooks and the simulated engine apply them; neither restates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class KvRow:
    """One request as admission sees it: KV it holds (or needs for its input) and expected growth."""

    held: float
    growth: float


def peak_kv(rows: Sequence[KvRow]) -> float:
    """The most KV the requests hold at once if each grows one token per step until its expected
    end: just before the k-th shortest ends, every request not yet ended holds its KV plus that
    many steps of growth."""
    ordered = sorted(rows, key=lambda r: r.growth)
    peak, held_after = 0.0, sum(r.held for r in ordered)
    for k, row in enumerate(ordered):
        peak = max(peak, held_after + (len(ordered) - k) * row.growth)
        held_after -= row.held
    return peak


def gang_fits(running: Sequence[KvRow], gang: Sequence[KvRow], capacity: float) -> bool:
    """The pool's ``capacity`` for requests' own KV holds the running requests and the gang at their peak."""
    return peak_kv([*running, *gang]) <= capacity


@dataclass(frozen=True)
class RunningGroup:
    """A program's running requests (an untagged request is a group of its own)."""

    key: str
    remaining_work: float
    rids: tuple[str, ...]


def program_retraction_order(groups: Sequence[RunningGroup]) -> list[tuple[str, ...]]:
    """The groups in the order they give way: the program with the most remaining work first (ties:
    the later key, so the order does not depend on input order)."""
    return [g.rids for g in sorted(groups, key=lambda g: (g.remaining_work, g.key), reverse=True)]
