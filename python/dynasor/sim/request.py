"""A simulated request and the engine limits it is scheduled under."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EngineLimits:
    """SGLang's admission limits (server flags of the same names) and its decode-reservation rule:
    running requests reserve ``new_token_ratio`` × their remaining ``max_new_tokens`` (each clipped
    at ``clip_max_new_tokens``) of the KV pool; the ratio starts at ``init_new_token_ratio``, falls
    by ``new_token_ratio_decay`` per decode step to ``min_new_token_ratio`` and is reset after a
    retraction."""

    max_running_requests: int = 48
    kv_tokens: int = 16384  # --max-total-tokens
    chunked_prefill_size: int = 4096
    max_prefill_tokens: int = 16384
    clip_max_new_tokens: int = 4096  # SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION
    init_new_token_ratio: float = 0.7  # SGLANG_INIT_NEW_TOKEN_RATIO x schedule_conservativeness
    min_new_token_ratio: float = 0.098  # init x SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR (0.14)
    new_token_ratio_decay: float = (0.7 - 0.098) / 600  # over SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS
    retract_decode_steps: int = 20  # SGLANG_RETRACT_DECODE_STEPS (the ratio after a retraction)
    prefix_match_max_waiting: int = 128  # lpm falls back to fcfs above this many waiting requests
    in_batch_prefix_threshold: int = 32  # IN_BATCH_PREFIX_CACHING_{CHECK,DEPRIORITIZE}_THRESHOLD


@dataclass(eq=False)
class SimRequest:
    """One generation request. Its input is a shared prefix of ``prefix_tokens`` plus
    ``own_tokens``: the prefix is the optional ``header`` (key, tokens), a part every program of a
    workload shares (a system prompt, few-shot examples), then the rest of its program's prompt
    (``prefix_key``; None: nothing shared). It generates ``output_tokens`` before it ends by itself,
    or stops at ``max_new_tokens``."""

    rid: str
    program_id: str | None
    prefix_key: str | None
    prefix_tokens: int
    own_tokens: int
    output_tokens: int
    max_new_tokens: int
    deferred: bool = False
    remaining_work_hint: float | None = None
    priority: int | None = None  # what a client sends to SGLang's priority scheduling
    source: str | None = None  # the program run that submitted it (also for untagged requests)
    header: tuple[str, int] | None = None  # (key, tokens) of the workload-wide start of the prefix
    # engine state
    queued_at: float = 0.0
    arrived_at: float = 0.0
    generated: int = 0
    computed: int = 0  # tokens whose KV exists: input prefilled so far, then + generated
    matched: int = 0  # prefix tokens found in the cache when last admitted
    shared: int = 0  # of ``computed``, tokens that live in the cached prefix it locks
    locked: list[str] = field(default_factory=list)  # cached prefix segments it holds a lock on
    to_prefill: int = 0  # input tokens its admission still has to compute (chunked prefill)
    admitted_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    aborted: bool = False
    retractions: int = 0

    @property
    def segments(self) -> tuple[tuple[str, int], ...]:
        """The shared prefix as cache segments, in order: (key, tokens)."""
        if self.prefix_key is None:
            return ()
        head = self.header if self.header and self.header[1] < self.prefix_tokens else None
        rest = ((self.prefix_key, self.prefix_tokens - (head[1] if head else 0)),)
        return ((head,) if head else ()) + rest

    @property
    def input_tokens(self) -> int:
        """Tokens a prefill must cover: prompt, plus the output so far after a retraction."""
        return self.prefix_tokens + self.own_tokens + self.generated

    @property
    def target_tokens(self) -> int:
        return min(self.output_tokens, self.max_new_tokens)

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    @property
    def private_kv(self) -> int:
        """KV tokens the request holds on its own (not counting a cached prefix it locks)."""
        return self.computed - self.shared
