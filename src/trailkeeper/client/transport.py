"""The wire format of the client: ids it makes, the bodies it sends, and what each response
means for a batch. Pure functions, so that every rule here is testable without a socket."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

# The server refuses a body over 5 MiB (413, CONTRACT section 4); batches stay well under it.
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_BATCH_EVENTS = 1000
# The first retry waits up to this long; each further one doubles the bound up to max_backoff.
BASE_DELAY = 0.1
# A Retry-After longer than this is taken as a mistake rather than obeyed for days.
MAX_RETRY_AFTER = 3600.0
# Statuses that say "later": request timeout, too early, too many requests, and 5xx.
RETRYABLE = frozenset({408, 425, 429})


def uuid7() -> str:
    """A UUIDv7 (RFC 9562 section 5.7): 48 bits of Unix milliseconds, then random bits, so
    ids made by the client sort by the time the event was recorded."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF  # RFC 9562 section 4.1: variant 10
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def encode_event(event: Mapping[str, Any]) -> tuple[str, bytes]:
    """The event's id (made here when it has none) and its JSON as one newline-ended line.

    The id is fixed before the event is queued, so every retry of its batch carries the same
    id and the server, idempotent on ``id``, stores it once. Raises TypeError or ValueError
    for what JSON cannot carry (sets, NaN, lone surrogates) while the caller can still act.
    """
    if not isinstance(event, Mapping):
        raise TypeError(f"an event is a mapping of fields, not {type(event).__name__}")
    with_id = dict(event)
    event_id = with_id.setdefault("id", uuid7())
    if not isinstance(event_id, str):
        raise TypeError(f"id must be a string, not {type(event_id).__name__}")
    # ensure_ascii=False keeps the line short; encoding to UTF-8 refuses lone surrogates,
    # which the server could not decode. JSON escapes newlines, so one event is one line.
    text = json.dumps(with_id, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return event_id, text.encode("utf-8") + b"\n"


def batch_body(lines: Sequence[bytes]) -> bytes:
    """``{"events": [...]}`` from spooled lines, without decoding them again."""
    return b'{"events":[' + b",".join(line.rstrip(b"\n") for line in lines) + b"]}"


@dataclass(frozen=True)
class Accepted:
    """Every event of the batch is stored (a repeated id counts: the server keeps the first)."""


@dataclass(frozen=True)
class Invalid:
    """422: the events at these indexes of the batch are invalid; nothing was stored."""

    errors: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Split:
    """The batch as a whole cannot be taken (413, or a 422 naming no event): send it in
    halves to find out which events are at fault. ``message`` explains one event alone."""

    status: int
    message: str


@dataclass(frozen=True)
class Retry:
    """A failure that passes; ``retry_after`` is the server's own wait when it gave one."""

    status: int | None
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Refused:
    """A status a retry cannot change (401, 403, 404...): stop sending."""

    status: int
    message: str


Outcome = Accepted | Invalid | Split | Retry | Refused


def error_message(response: httpx.Response) -> str:
    """The server's one-line message (``{"error": {"message"}}``), else the status line."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, TypeError, KeyError):
        message = None
    return f"{response.status_code} {message if isinstance(message, str) else response.reason_phrase}"


def invalid_indexes(response: httpx.Response, batch_length: int) -> dict[int, list[dict[str, Any]]]:
    """The ``{index, field, message}`` details of a 422, grouped by index; indexes outside
    the batch are ignored, so a malformed answer can never drop an event it does not name."""
    try:
        details = response.json()["error"]["details"]
    except (ValueError, TypeError, KeyError):
        return {}
    found: dict[int, list[dict[str, Any]]] = {}
    for detail in details if isinstance(details, list) else []:
        index = detail.get("index") if isinstance(detail, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < batch_length:
            reason = {"field": detail.get("field"), "message": detail.get("message")}
            found.setdefault(index, []).append(reason)
    return found


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 section 10.2.3): either
    delay-seconds or an HTTP-date; ``None`` when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def classify(response: httpx.Response, batch_length: int, now: float) -> Outcome:
    """What a response to ``POST /v1/events`` means for the batch it answers."""
    status = response.status_code
    if 200 <= status < 300:
        return Accepted()
    if status == 422:
        errors = invalid_indexes(response, batch_length)
        return Invalid(errors) if errors else Split(status, error_message(response))
    if status == 413:
        return Split(status, error_message(response))
    if status in RETRYABLE or status >= 500:
        return Retry(status, error_message(response), retry_after(response.headers.get("retry-after"), now))
    return Refused(status, error_message(response))


def backoff(attempt: int, max_backoff: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)],
    so that clients cut off together do not come back together."""
    bound = min(max_backoff, BASE_DELAY * 2 ** min(attempt, 32))
    return rng.uniform(0.0, bound)


def retry_delay(retry: Retry, attempt: int, max_backoff: float, rng: random.Random) -> float:
    """How long to wait before the next attempt: never less than the server asked for."""
    jittered = backoff(attempt, max_backoff, rng)
    return jittered if retry.retry_after is None else max(retry.retry_after, jittered)
