"""The event schema (CONTRACT section 2): validation, normalisation and leaf bytes.

A producer's event is validated with pydantic against TypedDicts, so that the stored record
is a plain dict holding exactly the fields that were sent (absent, never null) and every
error carries the path of its field. What pydantic cannot say (a time's offset, an IP
address, a lone surrogate, the encoded size of metadata) is checked here, still per field.

Ingest runs a quicker check first (:func:`_quick_check`: msgspec Structs mirroring the
TypedDicts, then the same per-field checks) that only says yes or no. A yes means the
pydantic path finds nothing; anything else goes to that path, which alone words the errors.
The property tests hold the two to accepting and refusing the same events.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NotRequired, Required

import msgspec
from msgspec import UNSET, Meta, UnsetType
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
PROVIDER_PATTERN = r"^[a-z0-9_.-]{1,64}$"
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
    provider: Annotated[str, StringConstraints(pattern=PROVIDER_PATTERN)]
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
    """UTC as stored: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; OverflowError when UTC falls outside
    the years 1 to 9999."""
    # Not strftime: its %Y gives no leading zeros to a year before 1000.
    u = moment.astimezone(UTC)
    day = f"{u.year:04d}-{u.month:02d}-{u.day:02d}"
    return f"{day}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{u.microsecond:06d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def time_us(stored: str) -> int:
    """A stored time (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) as microseconds since the epoch."""
    return (datetime.fromisoformat(stored) - _EPOCH) // _MICROSECOND


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
    # Ten random bytes per id follow the 48-bit stamp: version 7 goes in the high nibble of
    # the first (UUID byte 6), variant 0b10 in the top bits of the third (UUID byte 8).
    random = bytearray(os.urandom(10 * count))
    random[0::10] = random[0::10].translate(_VERSION_7)
    random[2::10] = random[2::10].translate(_VARIANT_RFC)
    digits = random.hex().encode()
    # The ids are written as one text, a line each, whose random digits are copied in a
    # column at a time: twenty strided copies for the whole batch, none per id.
    text = bytearray(f"{stamp[:8]}-{stamp[8:]}-0000-0000-000000000000\n".encode() * count)
    for digit, column in enumerate(_RANDOM_COLUMNS):
        text[column::37] = digits[digit::20]
    return text.decode().split("\n")[:-1]


_VERSION_7 = bytes(b & 0x0F | 0x70 for b in range(256))
_VARIANT_RFC = bytes(b & 0x3F | 0x80 for b in range(256))
# Where the 20 random hex digits go in ``xxxxxxxx-xxxx-7xxx-Vxxx-xxxxxxxxxxxx`` (after the stamp).
_RANDOM_COLUMNS = [i for i, c in enumerate("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx") if c == "x"][12:]


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


_inet_pton = socket.inet_pton
_IPV4_RE = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def _is_ip(text: str) -> bool:
    # A dotted quad as the C library reads one (four decimal octets, no leading zeros) is one
    # by the expression below too, and this is the common case, checked in C.
    try:
        _inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return _is_other_ip(text)
    return True


@functools.lru_cache(maxsize=8192)
def _is_other_ip(text: str) -> bool:
    # Dotted-quad IPv4 by one regular expression; anything else, IPv6 included, by the
    # standard library's parser.
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
    try:
        return format_time(parse_rfc3339(text))
    except OverflowError:
        raise ValueError("falls outside the years 0001 to 9999 once in UTC") from None


def event_errors(raw: object, index: int) -> list[FieldError]:
    """Every problem with one event that the schema can see, each with its field path."""
    if _quick_check(raw) is not None and _encodes(raw):
        return []
    return _schema_errors(raw, index)


def _encodes(raw: object) -> bool:
    """Whether msgspec can encode an event: not if it holds a lone surrogate (the schema
    refuses one in its typed strings) or a str subclass."""
    try:
        _encode_plain(raw)
    except Exception:  # noqa: BLE001 - either way the pydantic path decides
        return False
    return True


def _schema_errors(raw: object, index: int) -> list[FieldError]:
    """The reference check: pydantic, then what it cannot say. It alone words the errors."""
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


# The schema once more, as msgspec Structs: the quick check's first step. Converting into them
# says yes or no several times faster than pydantic does, and nothing else of them is used.
# Where msgspec is more lenient than pydantic's strict mode, _quick_check closes the gap: it
# takes any mapping for an object and any sequence or set for an array, and it does not look
# for lone surrogates. The patterns are matched in _quick_check too, with the same
# expressions anchored by fullmatch (as pydantic's regex engine anchors them: `$` there does not
# match before a final newline), which is also cheaper than msgspec's own pattern check.
_QShort = Annotated[str, Meta(min_length=1, max_length=256)]
_QLong = Annotated[str, Meta(min_length=1, max_length=2048)]


class _QuickActor(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: Literal["user", "agent", "integration", "service", "system"]
    id: _QShort
    name: _QShort | UnsetType = UNSET
    email: _QShort | UnsetType = UNSET


class _QuickTarget(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: Annotated[str, Meta(min_length=1, max_length=64)]
    id: _QShort
    name: _QShort | UnsetType = UNSET


class _QuickIntegration(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    provider: str  # PROVIDER_PATTERN, matched in _quick_check
    connection_id: _QShort | UnsetType = UNSET


class _QuickWorkflow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    run_id: _QShort
    id: _QShort | UnsetType = UNSET
    name: _QShort | UnsetType = UNSET
    trigger: _QShort | UnsetType = UNSET
    step: _QShort | UnsetType = UNSET


class _QuickContext(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    ip: Annotated[str, Meta(min_length=2, max_length=64)] | UnsetType = UNSET
    user_agent: _QLong | UnsetType = UNSET
    request_id: _QShort | UnsetType = UNSET
    trace_id: _QShort | UnsetType = UNSET
    session_id: _QShort | UnsetType = UNSET
    location: _QShort | UnsetType = UNSET


class _QuickEvent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    category: Literal["authentication", "user_activity", "integration", "workflow", "system"]
    action: Annotated[str, Meta(max_length=128)]  # and ACTION_PATTERN, matched in _quick_check
    actor: _QuickActor
    id: str | UnsetType = UNSET  # ID_PATTERN, matched in _quick_check
    occurred_at: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET
    outcome: Literal["success", "failure", "pending", "unknown"] | UnsetType = UNSET
    targets: Annotated[list[_QuickTarget], Meta(max_length=MAX_TARGETS)] | UnsetType = UNSET
    integration: _QuickIntegration | UnsetType = UNSET
    workflow: _QuickWorkflow | UnsetType = UNSET
    context: _QuickContext | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION)] | UnsetType = UNSET
    metadata: Any = UNSET  # a dict of str keys and JSON values: checked in _quick_check


_convert = msgspec.convert
_encode_plain = msgspec.json.Encoder().encode
_action_match = re.compile(ACTION_PATTERN.strip("^$")).fullmatch
_id_match = re.compile(ID_PATTERN.strip("^$")).fullmatch
_provider_match = re.compile(PROVIDER_PATTERN.strip("^$")).fullmatch
# _STORED_TIME_RE with ASCII digits, which are quicker to match. A time with other digits
# (\d takes them too) is refused all the same: fromisoformat takes none.
_stored_time_ascii = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z").fullmatch
# Actions and providers are few, and each event has one: those that matched are remembered,
# a set look-up being cheaper than the match. Bounded, since producers choose them.
_GOOD_ACTIONS: set[str] = set()
_GOOD_PROVIDERS: set[str] = set()
_GOOD_MAX = 4096


def _matches(match: Callable[[str], object], good: set[str], text: str) -> bool:
    if type(text) is not str:  # a subclass may hash and compare as it likes
        return bool(match(text))
    if text in good:
        return True
    if not match(text):
        return False
    if len(good) < _GOOD_MAX:
        good.add(text)
    return True


def _quick_check(raw: object) -> tuple[str | None, int | None, bool] | None:
    """Whether an event passes every check of :func:`_schema_errors`, but for lone
    surrogates, which the canonical encoder finds. None when it may not (that path then says
    why); else its ``occurred_at`` as stored (None when absent), that time in microseconds
    since the epoch when known here, and whether its metadata holds non-integer numbers."""
    if not isinstance(raw, dict):
        return None
    try:
        event = _convert(raw, _QuickEvent)
    except Exception:  # noqa: BLE001 - a refusal of any kind (UnicodeEncodeError for a lone surrogate)
        return None
    if not isinstance(raw["actor"], dict) or not _matches(_action_match, _GOOD_ACTIONS, event.action):
        return None
    if event.id is not UNSET and not _id_match(event.id):
        return None
    if event.targets is not UNSET:
        targets = raw["targets"]
        if not isinstance(targets, list):
            return None
        for target in targets:
            if not isinstance(target, dict):
                return None
    if event.integration is not UNSET and (
        not isinstance(raw["integration"], dict)
        or not _matches(_provider_match, _GOOD_PROVIDERS, event.integration.provider)
    ):
        return None
    if event.workflow is not UNSET and not isinstance(raw["workflow"], dict):
        return None
    if event.context is not UNSET:
        if not isinstance(raw["context"], dict):
            return None
        ip = event.context.ip
        if ip is not UNSET and not _is_ip(ip):
            return None
    floats = False
    metadata = event.metadata
    if metadata is not UNSET:
        # Typed Any for msgspec, so this is the producer's own object: a dict, and not a
        # subclass, which pydantic takes but _scan_metadata then refuses.
        if type(metadata) is not dict:
            return None
        try:
            has = _json_floats(metadata)
        except RecursionError:
            return None  # the pydantic path fails on it as it always has
        if has is None:
            return None
        floats = has
    occurred_at = None
    occurred_us = None
    if event.occurred_at is not UNSET:
        occurred_at = raw["occurred_at"]  # the producer's own string, which msgspec may have copied
        try:
            if _stored_time_ascii(occurred_at):
                # Already as stored, as producers usually send it: one parse checks the date
                # and gives the microseconds.
                occurred_us = time_us(occurred_at)
            else:
                occurred_at = format_time(parse_rfc3339(occurred_at))
        except (ValueError, OverflowError):
            return None  # refused, or out of range: the pydantic path says or raises as before
    return occurred_at, occurred_us, floats


def _json_floats(value: Any) -> bool | None:
    """:func:`_scan_metadata` without the paths, which only an error needs: whether a value
    holds a non-integer number, or None when it holds something JSON cannot carry."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return False
    if kind is int:
        return False if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else None
    if kind is float:
        return True if math.isfinite(value) else None
    floats = False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return None
            has = _json_floats(item)
            if has is None:
                return None
            floats = floats or has
        return floats
    if kind is list:
        for item in value:
            has = _json_floats(item)
            if has is None:
                return None
            floats = floats or has
        return floats
    return None


class Prepared(msgspec.Struct, eq=False, gc=False):
    """A valid event, normalised into its stored record but for ``seq``, with its canonical
    bytes before and after the place the seq takes (CONTRACT section 3: leaf bytes).

    The top-level keys that sort after "seq" are ``targets``, ``tenant`` and ``workflow``;
    the bytes are built as a head and a tail around the seq, so that the writer, which
    assigns it, only splices the number in.

    A Struct, made in C (a batch makes a thousand), compared and hashed by identity, and
    left out of the garbage collector's rounds: it refers to its record, never the reverse,
    so it can be in no reference cycle.
    """

    record: dict[str, Any]
    head: bytes
    tail: bytes
    # Whether the producer chose the id: only such ids can repeat. A UUIDv7 the server
    # made cannot, so the writer skips looking it up.
    producer_id: bool
    occurred_us: int  # the record's occurred_at, as microseconds since the epoch

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
    occurred_at = normal_time(raw["occurred_at"]) if "occurred_at" in raw else None
    metadata = raw.get("metadata")
    floats = metadata is not None and _scan_metadata(metadata, "")[1]
    return _build(raw, tenant, received_at, index, new_id, occurred_at, None, floats)


def _build(
    raw: Mapping[str, Any],
    tenant: str,
    received_at: str,
    index: int,
    new_id: str | None,
    occurred_at: str | None,
    occurred_us: int | None,
    floats: bool,
) -> Prepared:
    """:func:`prepare` once its checks are done: ``occurred_at`` as stored (None when the
    producer gave none), its microseconds if known, whether metadata holds floats."""
    record = dict(raw)
    producer_id = "id" in record
    if not producer_id:
        record["id"] = new_id or uuid7()
    record["occurred_at"] = received_at if occurred_at is None else occurred_at
    record.setdefault("outcome", "success")
    record["received_at"] = received_at
    record["tenant"] = tenant
    try:
        whole = canonical_json(record, floats=floats)
    except UnicodeEncodeError:
        raise InvalidEvent(
            [
                FieldError(index, path, "is not valid Unicode (lone surrogate)")
                for path in _lone_surrogate_paths(raw, "")
            ]
        ) from None
    # One encoding of the whole record, cut where "seq" sorts in: before "targets" if present,
    # else before "tenant". Each is found from the end: after it come only the targets, tenant
    # and workflow, whose keys are fixed and whose strings escape every quote, so its bytes
    # cannot occur there.
    cut = whole.rindex(b',"tenant":')
    if "targets" in record:
        cut = whole.rindex(b',"targets":', 0, cut)
    head = whole[:cut]
    # The head holds the metadata: only a large head needs the metadata measured alone.
    metadata = record.get("metadata")
    if metadata is not None and len(head) > MAX_METADATA_BYTES:
        size = len(canonical_json(metadata, floats=floats))
        if size > MAX_METADATA_BYTES:
            message = f"is {size} bytes encoded; at most {MAX_METADATA_BYTES}"
            raise InvalidEvent([FieldError(index, "metadata", message)])
    if occurred_us is None:
        occurred_us = time_us(record["occurred_at"])
    return Prepared(record, head, whole[cut + 1 :], producer_id, occurred_us)


def prepare_batch(tenant: str, raws: Sequence[object]) -> list[Prepared]:
    """All events of a batch, prepared, or :class:`InvalidEvent` listing every bad field of
    every bad event: a batch is all or nothing."""
    check_tenant(tenant)
    if not isinstance(raws, Sequence) or isinstance(raws, (str, bytes)):
        raise InvalidEvent([FieldError(0, "", "events must be a list of JSON objects")])
    if len(raws) > MAX_BATCH:
        raise InvalidEvent([FieldError(MAX_BATCH, "", f"a batch holds at most {MAX_BATCH} events")])
    received_at = now_text()
    received_us = time_us(received_at)
    # Server ids, made for the rest of the batch when the first event without one comes:
    # producers that set their own (the client always does) need none.
    new_ids: list[str] = []
    # One pass checks and prepares. Errors of the schema come first: while there are none,
    # each event is also prepared, and what preparing finds (a lone surrogate in metadata, too
    # much metadata) is reported only if the schema finds nothing in the whole batch.
    errors: list[FieldError] = []
    late: list[FieldError] = []
    failure: Exception | None = None
    prepared: list[Prepared] = []
    for i, raw in enumerate(raws):
        if errors:
            errors.extend(event_errors(raw, i))
            continue
        checked = _quick_check(raw)
        if checked is None:
            found = _schema_errors(raw, i)
            if found:
                errors.extend(found)
                continue
        new_id = None
        if "id" not in raw:  # type: ignore[operator]
            if not new_ids:
                new_ids = uuid7_batch(len(raws) - i)
                new_ids.reverse()
            new_id = new_ids.pop()
        try:
            if checked is None:
                # Left to the pydantic path, which accepts it (a key that is a str subclass,
                # which msgspec refuses): prepared the reference way.
                prepared.append(prepare(raw, tenant, received_at, i, new_id))  # type: ignore[arg-type]
            else:
                occurred_at, occurred_us, floats = checked
                if occurred_at is None:
                    occurred_us = received_us
                event: dict[str, Any] = raw  # type: ignore[assignment]  # a dict: the quick check said so
                prepared.append(
                    _build(event, tenant, received_at, i, new_id, occurred_at, occurred_us, floats)
                )
        except Exception as exc:  # noqa: BLE001 - reported or raised below, in its turn
            # The quick check does not look for lone surrogates: one in a string the schema
            # types is the schema's error, whatever preparing met first.
            found = [] if checked is None else _schema_errors(raw, i)
            if found:
                errors.extend(found)
            elif isinstance(exc, InvalidEvent):
                late.extend(exc.errors)
            elif failure is None:
                # A str subclass the encoder cannot take: raised once the whole batch has
                # passed the schema, as preparing after validation always did.
                failure = exc
    if errors:
        raise InvalidEvent(errors)
    if failure is not None:
        raise failure
    if late:
        raise InvalidEvent(late)
    return prepared


def leaf_bytes(record: Mapping[str, Any]) -> bytes:
    """CONTRACT section 3: the canonical JSON of the stored record without ``leaf_hash``."""
    return canonical_json({k: v for k, v in record.items() if k != "leaf_hash"})
