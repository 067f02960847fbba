"""Dynasor modes of the OpenAI endpoints: the ``dynasor`` request object and the response shapes.

``/v1/chat/completions`` and ``/v1/completions`` of a Dynasor server accept a ``dynasor`` object in the
body (``extra_body={"dynasor": {...}}`` in the openai client); without it (or with ``null``) the
request is SGLang's, untouched. Pure Python: the SGLang wiring is ``dynasor.srt.openai_mode_hooks``,
the program run ``runner.py``, the answer ``outcome.py`` and ``responses.py``.

Request::

    {"mode": "cot", "effort": "mid", "probe_interval": 64, "window": 3}
    {"mode": "sc",  "effort": "mid", "n": 16, "detect_at": 5, "threshold": 0.7,
     "confidence": "online", "eta": 0.1, "warmup": 4, "confidence_window": 2048}

- ``mode`` (default "cot"): "cot" runs Dynasor-CoT (the reasoning in chunks of ``probe_interval``
  tokens, a probe after each, exit once the last ``window`` probes agree: ``StaticThreshold(1.0)``);
  "sc" runs self-consistency over at most ``n`` samples and stops at ``detect_at`` finished samples
  if the answer certaindex is ≥ ``threshold`` (``StaticThreshold``, paper Table 3).
  ``confidence`` (sc only, default "off") adds DeepConf (``dynasor.programs.deepconf``): "filter"
  votes among the ``eta`` share (default 0.1) of samples with the highest lowest-window token
  confidence, weighted by it; "online" also runs ``warmup`` samples (default 4, at most n) first and
  has the engine stop every later sample whose window confidence falls below the warm-up's
  ``1 - eta`` quantile. ``confidence_window`` (tokens, default 2048, DeepConf's group size) is the
  sliding window the confidence is the lowest mean over; the engine checks a sample only once it
  has generated a full window, so short answers need a smaller one.
- ``effort`` (default "mid"; ``saving_effort``, the public dynasor-openai proxy's name, is an alias)
  is how hard Dynasor tries to *save* tokens, as in the public Dynasor repo: "high" exits earliest.
  It fills the fields not given explicitly (``EFFORT_PRESETS``). cot values are the public repo's
  presets (window N, chunk tokens); sc "mid" is the paper's Table 3 setting, "low"/"high" are ours.
  An sc preset's ``detect_at`` is clamped to an explicit ``n``.
- Budget: ``max_tokens`` (chat: also ``max_completion_tokens``) if the request sets it, else
  ``DEFAULT_BUDGET``; either way at most what the context leaves. cot: the reasoning budget;
  sc: per sample. temperature/top_p/stop/penalties of the request apply to every chunk/sample; probes
  use the public code's sampling (0.6 / 0.95, 20 tokens) but never hotter than the request.

Response (OpenAI shape, one choice): cot content = the reasoning kept so far plus, after a probe
exit, the public code's closing statement ``... \\boxed{answer}``; sc content = the text of the first
finished sample that gave the voted answer (the first finished sample if none gave an answer).
``usage`` adds ``probe_tokens`` and ``baseline_tokens`` (see ``cot_outcome``/``sc_outcome``);
``completion_tokens`` counts everything generated, probes and aborted requests' partial output too.
A ``dynasor`` object reports the run (mode, exit, answer, certaindex, chunks or samples, aborted
requests). Invalid options raise ``DynasorOptionError`` (HTTP 400) naming the field.

A validated request is a ``job.ModeJob``; whatever runs it implements ``job.ModeRunner`` (the
server's OpenAI hooks depend on this interface only; ``runner.ProgramModeRunner`` implements it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MODES = ("cot", "sc")
EFFORTS = ("low", "mid", "high")
DEFAULT_EFFORT = "mid"
EFFORT_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cot": {"low": {"probe_interval": 64, "window": 5}, "mid": {"probe_interval": 64, "window": 3},
            "high": {"probe_interval": 64, "window": 2}},
    "sc": {"low": {"n": 16, "detect_at": 8, "threshold": 0.8}, "mid": {"n": 16, "detect_at": 5, "threshold": 0.7},
           "high": {"n": 16, "detect_at": 3, "threshold": 0.6}},
}
MODE_FIELDS = {"cot": ("probe_interval", "window"),
               "sc": ("n", "detect_at", "threshold", "confidence", "eta", "warmup", "confidence_window")}
CONFIDENCE_OPTIONS = ("off", "filter", "online")
DEFAULT_ETA, DEFAULT_WARMUP, DEFAULT_CONFIDENCE_WINDOW = 0.1, 4, 2048
COMMON_FIELDS = ("mode", "effort", "saving_effort")
INT_LIMITS = {"probe_interval": 8192, "window": 64, "n": 128, "detect_at": 128, "warmup": 128,
              "confidence_window": 65536}  # server protection (the tag's limit for the window)
DEFAULT_BUDGET = 16384  # the paper's CoT budget (App. F.1)
PROBE_MAX_TOKENS, PROBE_TEMPERATURE, PROBE_TOP_P = 20, 0.6, 0.95
CONSTRAINED = ("regex", "ebnf", "json_schema", "structural_tag")
NOT_PER_CHUNK = ("n", "max_new_tokens", "min_new_tokens")  # the program sets or cannot honour these


class DynasorOptionError(ValueError):
    """A bad dynasor option or a request field dynasor modes cannot honour (HTTP 400); ``param``
    is the offending field, e.g. ``dynasor.n`` or ``logprobs``."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param} {message}")
        self.param = param


@dataclass(frozen=True)
class CotOptions:
    probe_interval: int
    window: int
    effort: str | None = None
    mode: str = "cot"


@dataclass(frozen=True)
class ScOptions:
    n: int
    detect_at: int
    threshold: float
    effort: str | None = None
    mode: str = "sc"
    confidence: str = "off"
    eta: float = DEFAULT_ETA
    warmup: int = DEFAULT_WARMUP
    confidence_window: int = DEFAULT_CONFIDENCE_WINDOW


ModeOptions = CotOptions | ScOptions


def _int(raw: Mapping[str, Any], key: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DynasorOptionError(f"dynasor.{key}", f"must be an integer, got {type(value).__name__}")
    if not 1 <= value <= INT_LIMITS[key]:
        raise DynasorOptionError(f"dynasor.{key}", f"must be between 1 and {INT_LIMITS[key]}, got {value}")
    return value


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DynasorOptionError("dynasor.threshold", f"must be a number, got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise DynasorOptionError("dynasor.threshold", f"must be in [0, 1], got {value}")
    return float(value)


def _effort(raw: Mapping[str, Any]) -> str | None:
    if "effort" in raw and "saving_effort" in raw:
        raise DynasorOptionError("dynasor.saving_effort", "is an alias of dynasor.effort; give only one")
    key = "effort" if "effort" in raw else "saving_effort"
    value = raw.get(key)
    if value is not None and value not in EFFORTS:
        raise DynasorOptionError(f"dynasor.{key}", f"must be one of {list(EFFORTS)}, got {value!r}")
    return value


def parse_options(raw: Any) -> ModeOptions:
    """Validate the request's ``dynasor`` object; raise ``DynasorOptionError`` naming the field."""
    if not isinstance(raw, Mapping):
        raise DynasorOptionError("dynasor", f"must be an object, got {type(raw).__name__}")
    known = set(COMMON_FIELDS).union(*MODE_FIELDS.values())
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise DynasorOptionError(f"dynasor.{unknown[0]}", f"is not a dynasor option; allowed: {sorted(known)}")
    mode = raw.get("mode", "cot")
    if mode not in MODES:
        raise DynasorOptionError("dynasor.mode", f"must be one of {list(MODES)}, got {mode!r}")
    for other, fields in MODE_FIELDS.items():
        misplaced = [f for f in fields if f in raw and other != mode]
        if misplaced:
            raise DynasorOptionError(f"dynasor.{misplaced[0]}", f"is an option of mode {other!r}, not {mode!r}")
    effort = _effort(raw)
    preset = EFFORT_PRESETS[mode][effort or DEFAULT_EFFORT]
    if mode == "cot":
        values = {k: _int(raw, k) if k in raw else preset[k] for k in MODE_FIELDS["cot"]}
        return CotOptions(values["probe_interval"], values["window"], effort)
    n = _int(raw, "n") if "n" in raw else preset["n"]
    detect_at = _int(raw, "detect_at") if "detect_at" in raw else min(preset["detect_at"], n)
    if detect_at > n:
        raise DynasorOptionError("dynasor.detect_at", f"must be <= n ({n}), got {detect_at}")
    threshold = _threshold(raw["threshold"]) if "threshold" in raw else preset["threshold"]
    confidence = raw.get("confidence", "off")
    if confidence not in CONFIDENCE_OPTIONS:
        raise DynasorOptionError("dynasor.confidence", f"must be one of {list(CONFIDENCE_OPTIONS)}, got {confidence!r}")
    eta = raw.get("eta", DEFAULT_ETA)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 < eta <= 1:
        raise DynasorOptionError("dynasor.eta", f"must be a number in (0, 1], got {eta!r}")
    warmup = _int(raw, "warmup") if "warmup" in raw else DEFAULT_WARMUP  # the program clamps it to n
    if "warmup" in raw and warmup > n:
        raise DynasorOptionError("dynasor.warmup", f"must be <= n ({n}), got {warmup}")
    window = _int(raw, "confidence_window") if "confidence_window" in raw else DEFAULT_CONFIDENCE_WINDOW
    return ScOptions(n, detect_at, threshold, effort, confidence=confidence, eta=float(eta), warmup=warmup,
                     confidence_window=window)


def check_request(request: Any, endpoint: str) -> None:
    """Reject OpenAI request fields a dynasor program cannot honour (it returns one text choice)."""
    if getattr(request, "n", 1) not in (None, 1):
        raise DynasorOptionError("n", "must be 1 with dynasor (self-consistency samples: dynasor.n)")
    if getattr(request, "best_of", None) not in (None, 1):
        raise DynasorOptionError("best_of", "is not supported with dynasor")
    if getattr(request, "echo", False):
        raise DynasorOptionError("echo", "is not supported with dynasor")
    logprobs = getattr(request, "logprobs", None)
    if (logprobs if endpoint == "chat" else logprobs is not None) or getattr(request, "top_logprobs", None):
        raise DynasorOptionError("logprobs", "is not supported with dynasor")
    if endpoint == "completions" and not isinstance(getattr(request, "prompt", None), str):
        raise DynasorOptionError("prompt", "must be a single string with dynasor")
    if getattr(request, "tools", None) and getattr(request, "tool_choice", None) != "none":
        raise DynasorOptionError("tools", "are not supported with dynasor")
    response_format = getattr(request, "response_format", None)
    if response_format is not None and getattr(response_format, "type", "text") != "text":
        raise DynasorOptionError("response_format", "is not supported with dynasor")


def program_sampling_params(params: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """Per-chunk (cot) or per-sample (sc) sampling params from the ones SGLang built for the
    request. Constrained decoding cannot restart at every chunk, so it is rejected; a seed would
    make all sc samples identical, so sc drops it."""
    for key in CONSTRAINED:
        if params.get(key) is not None:
            raise DynasorOptionError(key, "(constrained decoding) is not supported with dynasor")
    custom = params.get("custom_params")
    if isinstance(custom, Mapping) and "dynasor" in custom:
        raise DynasorOptionError("custom_params.dynasor", "is set by the server in dynasor modes")
    out = {k: v for k, v in params.items() if v is not None and k not in NOT_PER_CHUNK}
    if mode == "sc":
        out.pop("sampling_seed", None)
    return out


def probe_sampling_params(chunk_params: Mapping[str, Any]) -> dict[str, Any]:
    """The public code's probe sampling, never hotter than the request (greedy stays greedy)."""
    return {"max_new_tokens": PROBE_MAX_TOKENS,
            "temperature": min(float(chunk_params.get("temperature", PROBE_TEMPERATURE)), PROBE_TEMPERATURE),
            "top_p": min(float(chunk_params.get("top_p", PROBE_TOP_P)), PROBE_TOP_P)}


def explicit_max_tokens(request: Any, params: Mapping[str, Any]) -> int | None:
    """The request's own token limit, or None when it only has the protocol default (completions
    default to 16 tokens, far too few to reason)."""
    fields_set: set[str] = getattr(request, "model_fields_set", set())
    if {"max_tokens", "max_completion_tokens"} & set(fields_set):
        return params.get("max_new_tokens")
    return None


def token_budget(explicit: int | None, room: int, param: str) -> int:
    """Tokens a chunk chain or sample may generate: the request's limit or the default, capped by
    the context left (``room``), so no chunk or probe is later rejected as too long."""
    if room < 1:
        raise DynasorOptionError(param, "leaves no room in the model's context for dynasor to generate")
    return min(explicit or DEFAULT_BUDGET, room)
