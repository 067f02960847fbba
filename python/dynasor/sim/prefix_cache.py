"""The radix prefix cache, at the granularity the workloads share: prompt segments.

Every request's input is a shared prefix plus tokens of its own; the prefix is a chain of
segments (``SimRequest.segments``: a workload-wide header such as few-shot examples, then its
program's prompt), each a cache entry, matched from the start of the chain as a radix tree
matches. A cached prefix skips its prefill; a running request locks the segments it uses; an
unlocked segment is evicted when the KV pool needs the room, least recently used first within the
eviction class, and the class comes from the server's own rule (``scheduler.eviction_rank``):
prefixes held only by finished programs go first, then untagged ones, then live programs'
(``program_aware=False`` is SGLang's plain LRU). A request's own tokens and its output are freed
when it ends (SGLang keeps them in the tree as evictable; nothing reuses them here, and evictable
tokens count as free for admission, so freeing them at once is the same to the scheduler).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dynasor.scheduler.eviction_rank import holder_class


@dataclass
class CachedPrefix:
    tokens: int
    last_used: float
    locks: int = 0
    holders: set[str] = field(default_factory=set)  # program ids that used it (empty: untagged)


class PrefixCache:
    def __init__(self, is_live: Callable[[str], bool], program_aware: bool = True) -> None:
        self.entries: dict[str, CachedPrefix] = {}
        self.is_live = is_live
        self.program_aware = program_aware
        self.evicted_tokens = 0
        self.tokens = 0  # cached tokens in all entries, kept as entries change (read every step)

    @property
    def evictable_tokens(self) -> int:
        return sum(e.tokens for e in self.entries.values() if e.locks == 0)

    def cached(self, segments: Sequence[tuple[str, int]]) -> int:
        """Tokens of the chain found in the cache, from its start (a partly cached segment ends it)."""
        total = 0
        for key, tokens in segments:
            entry = self.entries.get(key)
            if entry is None:
                break
            total += min(entry.tokens, tokens)
            if entry.tokens < tokens:
                break
        return total

    def covering(self, segments: Sequence[tuple[str, int]], tokens: int) -> list[str]:
        """Keys of the segments the first ``tokens`` tokens of the chain fall in."""
        keys, start = [], 0
        for key, size in segments:
            if start >= tokens:
                break
            keys.append(key)
            start += size
        return keys

    def unlocked(self, keys: Sequence[str]) -> int:
        """Tokens of these cached segments nobody locks (they count as evictable)."""
        return sum(self.entries[k].tokens for k in keys if k in self.entries and self.entries[k].locks == 0)

    def lock(self, key: str, now: float) -> None:
        entry = self.entries[key]
        entry.locks += 1
        entry.last_used = now

    def unlock(self, key: str, now: float) -> None:
        entry = self.entries[key]
        entry.locks -= 1
        entry.last_used = now

    def insert(self, key: str, tokens: int, program_id: str | None, now: float) -> None:
        """The prefix's KV entered the tree (its prefill finished); the inserting request holds a lock."""
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = CachedPrefix(0, now)
        self.grow(key, tokens)
        entry.locks += 1
        entry.last_used = now
        if program_id is not None:
            entry.holders.add(program_id)

    def grow(self, key: str, tokens: int) -> None:
        """A cached segment now covers ``tokens`` (a chunked prefill extended it)."""
        entry = self.entries[key]
        if tokens > entry.tokens:
            self.tokens += tokens - entry.tokens
            entry.tokens = tokens

    def evict(self, needed: int) -> int:
        """Free at least ``needed`` tokens of unlocked prefixes if it can; returns the tokens freed."""
        freed = 0
        if needed <= 0:
            return 0
        victims = sorted((k for k, e in self.entries.items() if e.locks == 0), key=self._rank)
        for key in victims:
            if freed >= needed:
                break
            freed += self.entries.pop(key).tokens
        self.evicted_tokens += freed
        self.tokens -= freed
        return freed

    def _rank(self, key: str) -> tuple:
        entry = self.entries[key]
        if not self.program_aware:
            return (entry.last_used, key)
        return (holder_class(entry.holders or None, self.is_live), entry.last_used, key)
