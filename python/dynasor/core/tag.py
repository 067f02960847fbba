"""The Dynasor program tag: how a request says which reasoning program it belongs to.

A request joins a program through ``sampling_params.custom_params["dynasor"]``::

    {"program_id": "3f9c0a7e5b1d4c2a9e8f7a6b5c4d3e2f", "return_entropy": true}

Fields: ``program_id`` (required, see below); ``return_entropy`` (bool, default false; true when
``stop_below_confidence`` is set): compute the entropy and top-k confidence of every generated
token, return them in ``meta_info`` and aggregate them in the program table. Off, the request costs
no statistics work in the sampling step: only the rows of requests that asked are computed, so a
program asks only when its policy reads them (DeepConf, calibration recordings, a client that wants
the values); ``remaining_work`` (number ≥ 0, optional): the client's estimate of the tokens the
whole program still has to generate, used by shortest-job-first scheduling instead of the
server's own estimate; ``deferred`` (bool, default false): optional work of the program (e.g. the
self-consistency branches beyond the detection round). Under Dynasor's queue policies a deferred
request waits behind every other request while its program still has a request that is not deferred
waiting or running, then ranks as its program does; a program that stops aborts it. Stock policies
ignore it. ``stop_below_confidence`` (number > 0, optional) and ``confidence_window`` (tokens, 1 to
65,536, optional; the server's ``--dynasor-confidence-window`` by default): DeepConf's early stop in
the engine. Once the request has generated a full window, the scheduler ends it as soon as the mean
top-k confidence of its last ``confidence_window`` tokens falls below ``stop_below_confidence``: it
finishes like an abort (``meta_info.finish_reason`` ``{"type": "abort", "message": "low_confidence"}``,
its KV freed), one token after the one that crossed (the stop rides SGLang's own ``to_finish``).
Implies ``return_entropy`` (the confidence is computed with the entropy; false is refused).

SGLang forwards ``custom_params`` untouched to the scheduler process, so the tag reaches the
program table without changing SGLang's request structs.

Program ids are bearer capabilities: whoever holds an id can add requests to the program, read
its details and abort it. So ids must be unguessable. The rule enforced here: 16 to 128 characters
from ``[A-Za-z0-9_.:-]``; ``new_program_id()`` makes one from 128 random bits. Listings show only
``program_key(id, secret)``, an HMAC under a per-server secret, so reading ``/dynasor/programs``
reveals no id, not even a guessable one.

A tagged request that sets its own ``rid`` must use 32 lowercase hex characters (``uuid4().hex``,
SGLang's own format): SGLang aborts by rid *prefix*, and equal-length rids cannot be prefixes of
one another, so aborting one program never reaches another client's request.

Part of the dependency-free core: the HTTP layer, the scheduler wiring, the clients and the
backends all share it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TAG_KEY = "dynasor"
# Set by the server (never by clients: it strips it) in ``custom_params`` of a request whose program
# was aborted before the request arrived; the scheduler then ends the request at once as aborted.
ABORTED_MARKER = "dynasor_program_aborted"
PROGRAM_ID_MIN_LEN = 16
PROGRAM_ID_MAX_LEN = 128
_PROGRAM_ID_RE = re.compile(r"[A-Za-z0-9_.:\-]+")
_TAGGED_RID_RE = re.compile(r"[0-9a-f]{32}")


class TagError(ValueError):
    """A malformed Dynasor tag; the message names the offending field."""

    status_code = 400


@dataclass(frozen=True)
class ProgramTag:
    """The validated Dynasor fields of one request."""

    program_id: str
    return_entropy: bool = False
    remaining_work: float | None = None
    deferred: bool = False
    stop_below_confidence: float | None = None
    confidence_window: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"program_id": self.program_id, "return_entropy": self.return_entropy}
        if self.remaining_work is not None:
            out["remaining_work"] = self.remaining_work
        if self.deferred:
            out["deferred"] = True
        if self.stop_below_confidence is not None:
            out["stop_below_confidence"] = self.stop_below_confidence
        if self.confidence_window is not None:
            out["confidence_window"] = self.confidence_window
        return out

    def to_custom_params(self) -> dict[str, Any]:
        return {TAG_KEY: self.to_json()}


@dataclass(frozen=True)
class RequestHints:
    """What one request of a program asks beyond the program: ``deferred`` (optional work),
    ``token_stats`` (per-token entropy and confidence, for a policy that reads them) and the
    confidence stop (``stop_below_confidence`` over windows of ``confidence_window`` tokens, which
    needs the statistics too)."""

    deferred: bool = False
    stop_below_confidence: float | None = None
    confidence_window: int | None = None
    token_stats: bool = False

    def tag(self, program_id: str, remaining_work: float | None) -> ProgramTag:
        return ProgramTag(program_id, remaining_work=remaining_work, deferred=self.deferred,
                          return_entropy=self.token_stats or self.stop_below_confidence is not None,
                          stop_below_confidence=self.stop_below_confidence, confidence_window=self.confidence_window)


NO_HINTS = RequestHints()


def new_program_id() -> str:
    """A fresh program id with 128 random bits (32 hex characters)."""
    return secrets.token_hex(16)


def program_key(program_id: str, secret: bytes) -> str:
    """Public handle of a program, shown in listings instead of its id (HMAC-SHA256, 64 bits)."""
    return hmac.new(secret, program_id.encode(), hashlib.sha256).hexdigest()[:16]


def validate_tagged_rid(rid: Any, where: str = "rid") -> None:
    """Client-chosen rids of tagged requests: 32 lowercase hex characters (see module doc)."""
    if rid is not None and not (isinstance(rid, str) and _TAGGED_RID_RE.fullmatch(rid)):
        raise TagError(f"{where} of a tagged request must be 32 lowercase hex characters (uuid4().hex), "
                       "so a program abort can never match another request's rid by prefix")


def validate_program_id(value: Any, field: str = "program_id") -> str:
    if not isinstance(value, str):
        raise TagError(f"{field} must be a string, got {type(value).__name__}")
    if not PROGRAM_ID_MIN_LEN <= len(value) <= PROGRAM_ID_MAX_LEN:
        raise TagError(
            f"{field} must be {PROGRAM_ID_MIN_LEN} to {PROGRAM_ID_MAX_LEN} characters "
            f"(got {len(value)}); ids are capabilities, use dynasor.core.tag.new_program_id()"
        )
    if not _PROGRAM_ID_RE.fullmatch(value):
        raise TagError(f"{field} may only contain letters, digits and _ . : -")
    return value


_FIELDS = {"program_id", "return_entropy", "remaining_work", "deferred", "stop_below_confidence", "confidence_window"}
MAX_REMAINING_WORK = 1e12
MAX_CONFIDENCE_WINDOW = 65_536
LOW_CONFIDENCE = "low_confidence"  # finish_reason.message of a request ended by stop_below_confidence


def parse_tag(raw: Any, where: str = "custom_params.dynasor") -> ProgramTag:
    """Validate the raw tag object; raise ``TagError`` naming the field on any problem."""
    if not isinstance(raw, Mapping):
        raise TagError(f"{where} must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise TagError(f"{where} has unknown field(s) {unknown}; allowed: {sorted(_FIELDS)}")
    if "program_id" not in raw:
        raise TagError(f"{where}.program_id is required")
    stop_below = _positive_number(raw.get("stop_below_confidence"), f"{where}.stop_below_confidence")
    flags = {name: raw.get(name, default)
             for name, default in (("return_entropy", stop_below is not None), ("deferred", False))}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TagError(f"{where}.{name} must be a boolean, got {type(value).__name__}")
    if stop_below is not None and not flags["return_entropy"]:
        raise TagError(f"{where}.stop_below_confidence needs {where}.return_entropy true "
                       "(the confidence is computed with the entropy)")
    return ProgramTag(
        program_id=validate_program_id(raw["program_id"], f"{where}.program_id"),
        return_entropy=flags["return_entropy"],
        remaining_work=validate_remaining_work(raw.get("remaining_work"), f"{where}.remaining_work"),
        deferred=flags["deferred"],
        stop_below_confidence=stop_below,
        confidence_window=_window(raw.get("confidence_window"), f"{where}.confidence_window"),
    )


def _positive_number(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TagError(f"{field} must be a number, got {type(value).__name__}")
    if not 0 < value < float("inf"):
        raise TagError(f"{field} must be a finite number > 0")
    return float(value)


def _window(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TagError(f"{field} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_CONFIDENCE_WINDOW:
        raise TagError(f"{field} must be between 1 and {MAX_CONFIDENCE_WINDOW} tokens")
    return value


def validate_remaining_work(value: Any, field: str = "remaining_work") -> float | None:
    """A remaining-work hint: None (no hint) or a number of tokens in [0, MAX_REMAINING_WORK]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TagError(f"{field} must be a number, got {type(value).__name__}")
    if not 0 <= value <= MAX_REMAINING_WORK:
        raise TagError(f"{field} must be between 0 and {MAX_REMAINING_WORK:.0e} tokens")
    return float(value)


def tag_from_sampling_params(sampling_params: Any, where: str = "sampling_params") -> ProgramTag | None:
    """The tag carried by one request's sampling params, or None for an untagged request."""
    if sampling_params is None:
        return None
    if not isinstance(sampling_params, Mapping):
        return None
    custom = sampling_params.get("custom_params")
    if custom is None:
        return None
    if not isinstance(custom, Mapping) or TAG_KEY not in custom:
        return None
    return parse_tag(custom[TAG_KEY], f"{where}.custom_params.{TAG_KEY}")


def tag_of(sampling_params: Any) -> ProgramTag | None:
    """Tag of an already validated request, without raising."""
    try:
        return tag_from_sampling_params(sampling_params)
    except TagError:
        return None


def program_id_of(sampling_params: Any) -> str | None:
    """Program id of an already validated request, without raising."""
    tag = tag_of(sampling_params)
    return tag.program_id if tag else None


def tag_sampling_params(
    sampling_params: Mapping[str, Any] | None, program: str | ProgramTag | Mapping[str, Any] | None
) -> dict[str, Any]:
    """A copy of ``sampling_params`` carrying the program tag (validated on the sending side too)."""
    params = dict(sampling_params or {})
    if program is None:
        return params
    if isinstance(program, str):
        tag = ProgramTag(program_id=program)
    elif isinstance(program, ProgramTag):
        tag = program
    else:
        tag = parse_tag(program)
    parse_tag(tag.to_json())
    custom = dict(params.get("custom_params") or {})
    custom.update(tag.to_custom_params())
    params["custom_params"] = custom
    return params
