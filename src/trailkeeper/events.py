"""The event schema (CONTRACT section 2): validation, normalisation and leaf bytes.

A producer's event is validated with pydantic against TypedDicts, so that the stored record
is a plain dict holding exactly the fields that were sent (absent, never null) and every
error carries the path of its field. What pydantic cannot say (a time's offset, an IP
address, a lone surrogate, the encoded size of metadata) is checked here, still per field.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NotRequired, Required

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from trailkeeper.canonical import MAX_SAFE_INTEGER, canonical_json
from trailkeeper.errors import FieldError, InvalidArgument, InvalidEvent

CATEGORIES = ("authentication", "user_activity", "integration", "workflow", "system")
OUTCOMES = ("success", "failure", "pending", "unknown")
ACTOR_TYPES = ("user", "agent", "integration", "service", "system")
CONTEXT_FIELDS = ("ip", "user_agent", "request_id", "trace_id", "session_id", "location")

MAX_BATCH = 1000
MAX_TARGETS = 32
MAX_DESCRIPTION = 1000
MAX_METADATA_BYTES = 16 * 1024

TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
ACTION_PATTERN = r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$"
# RFC 3339 section 5.6 date-time; the offset is required.
RFC3339_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

Short = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Long = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


@with_config(ConfigDict(extra="forbid", strict=True))
class Actor(TypedDict):
    type: Literal["user", "agent", "integration", "service", "system"]
    id: Short
    name: NotRequired[Short]
    email: NotRequired[Short]


@with_config(ConfigDict(extra="forbid", strict=True))
class Target(TypedDict):
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    id: Short
    name: NotRequired[Short]


@with_config(ConfigDict(extra="forbid", strict=True))
class Integration(TypedDict):
    provider: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
    connection_id: NotRequired[Short]


@with_config(ConfigDict(extra="forbid", strict=True))
class Workflow(TypedDict):
    run_id: Short
    id: NotRequired[Short]
    name: NotRequired[Short]
    trigger: NotRequired[Short]
    step: NotRequired[Short]


@with_config(ConfigDict(extra="forbid", strict=True))
class Context(TypedDict, total=False):
    ip: Annotated[str, StringConstraints(min_length=2, max_length=64)]
    user_agent: Long
    request_id: Short
    trace_id: Short
    session_id: Short
    location: Short


@with_config(ConfigDict(extra="forbid", strict=True))
class Event(TypedDict, total=False):
    id: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    occurred_at: Annotated[str, StringConstraints(max_length=64)]
    category: Required[Literal["authentication", "user_activity", "integration", "workflow", "system"]]
    action: Required[Annotated[str, StringConstraints(max_length=128, pattern=ACTION_PATTERN)]]
    outcome: Literal["success", "failure", "pending", "unknown"]
    actor: Required[Actor]
    targets: Annotated[list[Target], Field(max_length=MAX_TARGETS)]
    integration: Integration
    workflow: Workflow
    context: Context
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
    metadata: dict[str, Any]


_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def check_tenant(tenant: object) -> str:
    if not isinstance(tenant, str) or not TENANT_RE.fullmatch(tenant):
        raise InvalidArgument(
            "tenant",
            "must be 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
        )
    return tenant


def format_time(moment: datetime) -> str:
    """UTC as stored: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def time_us(stored: str) -> int:
    """A stored time (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) as microseconds since the epoch."""
    moment = datetime.fromisoformat(stored[:-1]).replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def now_text() -> str:
    return format_time(datetime.now(UTC))


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time with its offset, to an aware datetime; ValueError otherwise."""
    match = RFC3339_RE.fullmatch(text)
    if match is None:
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-11-03T09:15:00Z")
    fraction = (match.group(7) or ".0")[1:7].ljust(6, "0")
    offset = match.group(8)
    normal = f"{text[:19].replace('t', 'T').replace(' ', 'T')}.{fraction}"
    normal += "+00:00" if offset in ("Z", "z") else offset
    return datetime.fromisoformat(normal)


def uuid7() -> str:
    """A UUIDv7 (RFC 9562 section 5.7): time-ordered, so server ids sort by arrival."""
    return uuid7_batch(1)[0]


def uuid7_batch(count: int) -> list[str]:
    """``count`` UUIDv7s of this millisecond, from one call for randomness."""
    stamp = (time.time_ns() // 1_000_000).to_bytes(6, "big").hex()
    random = os.urandom(10 * count).hex()
    out = []
    for i in range(0, 20 * count, 20):
        r = random[i : i + 20]
        # Version 7 in the high nibble of byte 6, variant 0b10 in the top bits of byte 8.
        variant = "89ab"[int(r[4], 16) & 3]
        out.append(f"{stamp[:8]}-{stamp[8:]}-7{r[1:4]}-{variant}{r[5:8]}-{r[8:20]}")
    return out


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        field = error["loc"][-1]
        if field == "action":
            return "must be 1-128 characters of a-z, 0-9, '_', '-' in dot-separated parts"
        if field == "id":
            return "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
        if field == "provider":
            return "must be 1-64 characters of a-z, 0-9, '_', '.' and '-'"
    return str(error["msg"]).rstrip(".").replace("Input should", "must").replace("String should", "must")


def _lone_surrogate_paths(value: Any, path: str) -> Iterable[str]:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _lone_surrogate_paths(key, f"{path}.<key>")
            yield from _lone_surrogate_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _lone_surrogate_paths(item, f"{path}[{i}]")


def _scan_metadata(value: Any, path: str) -> tuple[tuple[str, str] | None, bool]:
    """One walk over metadata: the first value JSON cannot carry faithfully (with its path),
    and whether any number is not an integer (canonical form then needs the reference
    encoder)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return None, False
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return None, False
        return (path, "integers must lie within +/-(2**53 - 1) (RFC 7493)"), False
    if kind is float:
        if value != value or value in (math.inf, -math.inf):
            return (path, "numbers must be finite"), True
        return None, True
    floats = False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return (path, "keys must be strings"), floats
            problem, has = _scan_metadata(item, f"{path}.{key}")
            if problem:
                return problem, floats
            floats = floats or has
        return None, floats
    if kind is list:
        for i, item in enumerate(value):
            problem, has = _scan_metadata(item, f"{path}[{i}]")
            if problem:
                return problem, floats
            floats = floats or has
        return None, floats
    return (path, f"{kind.__name__} is not a JSON value"), False


_IPV4_RE = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


@functools.lru_cache(maxsize=8192)
def _is_ip(text: str) -> bool:
    # Dotted-quad IPv4 (the common case) by one regular expression; anything else, IPv6
    # included, by the standard library's parser.
    if _IPV4_RE.fullmatch(text):
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


_STORED_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def normal_time(text: str) -> str:
    """An RFC 3339 time as stored (UTC, microseconds); ValueError when it is not one."""
    if _STORED_TIME_RE.fullmatch(text):
        datetime.fromisoformat(text)  # still refuses 2026-02-30 and the like
        return text
    return format_time(parse_rfc3339(text))


def event_errors(raw: object, index: int) -> list[FieldError]:
    """Every problem with one event that the schema can see, each with its field path."""
    if not isinstance(raw, Mapping):
        return [FieldError(index, "", "an event must be a JSON object")]
    try:
        _event_adapter.validate_python(raw)
    except ValidationError as exc:
        return [
            FieldError(index, _path(e["loc"]), _message(e))
            for e in exc.errors(include_url=False, include_input=False)
        ]
    errors: list[FieldError] = []
    occurred_at = raw.get("occurred_at")
    if occurred_at is not None:
        try:
            normal_time(occurred_at)
        except ValueError as exc:
            errors.append(FieldError(index, "occurred_at", str(exc)))
    context = raw.get("context")
    if context is not None and "ip" in context and not _is_ip(context["ip"]):
        errors.append(FieldError(index, "context.ip", "must be an IPv4 or IPv6 address"))
    metadata = raw.get("metadata")
    if metadata is not None:
        problem, _ = _scan_metadata(metadata, "metadata")
        if problem:
            errors.append(FieldError(index, problem[0], problem[1]))
    return errors


class Prepared:
    """A valid event, normalised into its stored record but for ``seq``, with its canonical
    bytes before and after the place the seq takes (CONTRACT section 3: leaf bytes).

    The top-level keys that sort after "seq" are ``targets``, ``tenant`` and ``workflow``;
    the bytes are built as a head and a tail around the seq, so that the writer, which
    assigns it, only splices the number in.
    """

    __slots__ = ("head", "occurred_us", "producer_id", "record", "tail")

    def __init__(self, record: dict[str, Any], head: bytes, tail: bytes, producer_id: bool = True) -> None:
        self.record = record
        self.head = head
        self.tail = tail
        self.occurred_us = time_us(record["occurred_at"])
        # Whether the producer chose the id: only such ids can repeat. A UUIDv7 the server
        # made cannot, so the writer skips looking it up.
        self.producer_id = producer_id

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def leaf_bytes(self, seq: int) -> bytes:
        return b'%s,"seq":%d,%s' % (self.head, seq, self.tail)


def prepare(
    raw: Mapping[str, Any], tenant: str, received_at: str, index: int = 0, new_id: str | None = None
) -> Prepared:
    """Normalise a valid event into its record and canonical bytes; InvalidEvent if a string
    is not valid Unicode or the metadata is too large once encoded. ``new_id`` is the id it
    gets if the producer gave none."""
    record = dict(raw)
    producer_id = "id" in record
    if not producer_id:
        record["id"] = new_id or uuid7()
    record["occurred_at"] = normal_time(record["occurred_at"]) if "occurred_at" in record else received_at
    record.setdefault("outcome", "success")
    record["received_at"] = received_at
    record["tenant"] = tenant
    metadata = record.get("metadata")
    floats = metadata is not None and _scan_metadata(metadata, "")[1]
    tail_part = {"tenant": tenant}
    head_part = dict(record)
    del head_part["tenant"]
    for key in ("targets", "workflow"):
        if key in record:
            tail_part[key] = head_part.pop(key)
    try:
        head = canonical_json(head_part, floats=floats)[:-1]
        tail = canonical_json(tail_part, floats=False)[1:]
    except UnicodeEncodeError:
        raise InvalidEvent(
            [
                FieldError(index, path, "is not valid Unicode (lone surrogate)")
                for path in _lone_surrogate_paths(raw, "")
            ]
        ) from None
    # The head holds the metadata: only a large head needs the metadata measured alone.
    if metadata is not None and len(head) > MAX_METADATA_BYTES:
        size = len(canonical_json(metadata, floats=floats))
        if size > MAX_METADATA_BYTES:
            message = f"is {size} bytes encoded; at most {MAX_METADATA_BYTES}"
            raise InvalidEvent([FieldError(index, "metadata", message)])
    return Prepared(record, head, tail, producer_id)


def prepare_batch(tenant: str, raws: Sequence[object]) -> list[Prepared]:
    """All events of a batch, prepared, or :class:`InvalidEvent` listing every bad field of
    every bad event: a batch is all or nothing."""
    check_tenant(tenant)
    if not isinstance(raws, Sequence) or isinstance(raws, (str, bytes)):
        raise InvalidEvent([FieldError(0, "", "events must be a list of JSON objects")])
    if len(raws) > MAX_BATCH:
        raise InvalidEvent([FieldError(MAX_BATCH, "", f"a batch holds at most {MAX_BATCH} events")])
    errors: list[FieldError] = []
    for i, raw in enumerate(raws):
        errors.extend(event_errors(raw, i))
    if errors:
        raise InvalidEvent(errors)
    received_at = now_text()
    new_ids = uuid7_batch(len(raws))
    prepared: list[Prepared] = []
    for i, raw in enumerate(raws):
        try:
            prepared.append(prepare(raw, tenant, received_at, i, new_ids[i]))  # type: ignore[arg-type]
        except InvalidEvent as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidEvent(errors)
    return prepared


def leaf_bytes(record: Mapping[str, Any]) -> bytes:
    """CONTRACT section 3: the canonical JSON of the stored record without ``leaf_hash``."""
    return canonical_json({k: v for k, v in record.items() if k != "leaf_hash"})
