"""The two checks of an event agree: the quick one (msgspec, used to say yes fast) and the
pydantic one (which words every error). Events are generated valid and subtly invalid, field
by field: lengths either side of each limit, characters either side of each pattern, times
that are not RFC 3339 or not real dates, addresses that are not IPs, metadata JSON cannot
carry, containers of the wrong kind, fields unknown or missing, lone surrogates."""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trailkeeper.events as events
from trailkeeper.errors import FieldError, InvalidEvent
from trailkeeper.events import (
    _quick_check,
    _scan_metadata,
    _schema_errors,
    event_errors,
    normal_time,
    prepare,
    prepare_batch,
    time_us,
)


class Text(str):
    """A str subclass: both checks take one where a string goes."""


class Object(dict[str, Any]):
    """A dict subclass: both take one where an object goes (metadata excepted)."""


class Array(list[Any]):
    """A list subclass: both take one where an array goes."""


Draw = Callable[[st.SearchStrategy[Any]], Any]


def _now_and_then(draw: Draw, one_in: int) -> bool:
    # Hypothesis draws the bounds of a range more often than the rest, and shrinks towards
    # the lower one: so the rare branch is a value inside, and shrinking leaves it.
    return bool(draw(st.integers(0, one_in)) == one_in // 2)


def _field(valid: st.SearchStrategy[Any], near_miss: st.SearchStrategy[Any]) -> Callable[[Draw], Any]:
    """A field valid but for one time in a few dozen, when it misses by a little or is not
    a string at all; so that many events are valid and many invalid in one field only."""
    not_strings: list[Any] = [None, 0, 1.5, True, [], {}, b"x", ("a",), "bad \ud800 surrogate"]
    wrong = near_miss | st.sampled_from(not_strings)
    return lambda draw: draw(wrong) if _now_and_then(draw, 30) else draw(valid)


def _texts(alphabet: str, limit: int, minimum: int = 1) -> st.SearchStrategy[Any]:
    """Strings of the alphabet from ``minimum`` to ``limit`` characters, those two lengths
    often; a few are str subclasses."""
    chars = st.sampled_from(alphabet)
    short = st.text(chars, min_size=minimum, max_size=max(minimum, 8))
    edge = st.builds(lambda c, n: c * n, chars, st.sampled_from([minimum, limit]).filter(bool))
    return _rarely_text(st.one_of(short, edge))


def _rarely_text(strings: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # Rarely, since msgspec cannot encode one: such an event fails to be prepared (as it
    # always has), which tells little about the checks.
    return st.tuples(strings, st.integers(0, 60)).map(
        lambda pair: Text(pair[0]) if pair[1] == 30 else pair[0]
    )


def _misses(alphabet: str, limit: int, minimum: int = 1, outside: str = "") -> st.SearchStrategy[str]:
    """Strings that miss: one character too many or too few, or one from outside the
    alphabet (a final newline among them, which `$` would let through)."""
    too_long = st.builds(lambda c: c * (limit + 1), st.sampled_from(alphabet))
    too_short = st.just("a" * (minimum - 1)) if minimum else st.nothing()
    stray = st.builds(
        lambda head, c, tail: head + c + tail,
        st.text(st.sampled_from(alphabet), max_size=4),
        st.sampled_from(outside + "\n") if outside else st.nothing(),
        st.text(st.sampled_from(alphabet), max_size=2),
    )
    return too_long | too_short | stray


# Every character but lone surrogates, which the tests add on purpose: plain, control,
# accented, private use (U+E000, where the key orders part) and astral.
ANY = "aZ9 ._:-/\n\t\x00\u00e9\ue000\U0001f600x"


def _plain(limit: int, minimum: int = 1) -> Callable[[Draw], Any]:
    return _field(_texts(ANY, limit, minimum), _misses(ANY, limit, minimum))


def _pattern(alphabet: str, outside: str, limit: int) -> Callable[[Draw], Any]:
    return _field(_texts(alphabet, limit), _misses(alphabet, limit, outside=outside))


def _literal(*choices: str) -> Callable[[Draw], Any]:
    near = [c.upper() for c in choices] + [c + "\n" for c in choices] + ["", choices[0][:-1]]
    return _field(_rarely_text(st.sampled_from(choices)), st.sampled_from(near))


ACTIONS = st.lists(_texts("az09_-", 20), min_size=1, max_size=4).map(".".join).filter(lambda a: len(a) <= 128)
ACTION_MISSES = st.sampled_from(["", "a..b", ".a", "a.", "A.b", "a.b\n", "a b", "a" * 129, "a/b"])


def _stored(moment: datetime) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


@st.composite
def _rfc3339(draw: Draw) -> str:
    """A real time in another RFC 3339 form: another separator, fraction or offset."""
    moment: datetime = draw(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30)))
    separator = draw(st.sampled_from("Tt "))
    fraction: str = draw(st.sampled_from(["", ".5", f".{moment.microsecond:06d}", ".1234567", ".000"]))
    offset: str = draw(st.sampled_from(["Z", "z", "+00:00", "-02:00", "+14:00", "-23:59"]))
    return moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + fraction + offset


@st.composite
def _near_times(draw: Draw) -> str:
    """Times that miss: impossible dates and clocks, no offset, other forms, other digits;
    and the ends of the range, where the reference path itself fails."""
    year = draw(st.sampled_from([1, 999, 1000, 2026, 9999]))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = draw(st.integers(0, 24)), draw(st.integers(0, 60)), draw(st.integers(0, 61))
    fraction = draw(st.sampled_from(["", ".", ".5", ".123456", ",5"]))
    offset = draw(st.sampled_from(["Z", "", "+00:00", "-02:00", "+24:00", "+0200"]))
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}"
    if draw(st.booleans()):
        text = text.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    return text


TIMES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(_stored) | _rfc3339()
TIME_MISSES = _near_times() | st.sampled_from(
    [
        "2026-11-03T10:00:00",
        "2026-W45-1T10:00:00Z",
        "20261103T100000Z",
        "2026-11-03T10:00:00.123456Z\n",
        "x" * 65,
    ]
)
IPS = st.ip_addresses().map(str) | st.sampled_from(["fe80::1%eth0", "::ffff:1.2.3.4", "0.0.0.0"])
IP_MISSES = st.sampled_from(
    ["999.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4\n", " 1.2.3.4", "1.2.3.4/32", "a", "::g"]
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.sampled_from(ANY), max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(st.sampled_from(ANY), max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
NOT_JSON = st.sampled_from(
    [
        math.nan,
        -math.inf,
        2**53,
        -(2**53),
        (1, 2),
        {1, 2},
        b"x",
        Object(a=1),
        Array([1]),
        Text("k"),
        1j,
        "\udc80",
    ]
)


@st.composite
def _metadata(draw: Draw) -> Any:
    value = draw(st.dictionaries(st.text(st.sampled_from(ANY), max_size=3), JSON_VALUES, max_size=4))
    if _now_and_then(draw, 12):
        # Somewhere inside, a value or key JSON cannot carry, or a lone surrogate in a key.
        holder = value
        while draw(st.booleans()):
            holder = holder.setdefault("in", {})
        holder[draw(st.sampled_from([1, None, Text("k"), "k", "\ud800"]))] = draw(NOT_JSON | JSON_VALUES)
    return value


METADATA_MISSES = st.sampled_from([Object(a=1), [1], None, "x", MappingProxyType({"a": 1})])


def _object(draw: Draw, fields: dict[str, Callable[[Draw], Any]], required: tuple[str, ...]) -> Any:
    """An object of some of its optional fields; now and then one required field missing,
    one unknown, or another kind of mapping (a dict subclass is valid)."""
    value: dict[Any, Any] = {}
    for name, field in fields.items():
        if name in required or draw(st.booleans()):
            value[name] = field(draw)
    if required and _now_and_then(draw, 60):
        del value[draw(st.sampled_from(required))]
    if _now_and_then(draw, 60):
        value[draw(st.sampled_from(["role", "Name", "", 7, Text("id"), "\ud800"]))] = "x"
    if _now_and_then(draw, 40):
        return draw(st.sampled_from([Object(value), MappingProxyType(value), list(value.items()), None]))
    return value


ACTOR = {
    "type": _literal("user", "agent", "integration", "service", "system"),
    "id": _plain(256),
    "name": _plain(256),
    "email": _plain(256),
}
TARGET = {"type": _plain(64), "id": _plain(256), "name": _plain(256)}
INTEGRATION = {"provider": _pattern("az09_.-", "A /:", 64), "connection_id": _plain(256)}
WORKFLOW = {name: _plain(256) for name in ("run_id", "id", "name", "trigger", "step")}
CONTEXT: dict[str, Callable[[Draw], Any]] = {
    "ip": _field(IPS, IP_MISSES | _misses("0123456789.", 64, 2)),
    "user_agent": _plain(2048),
    **{name: _plain(256) for name in ("request_id", "trace_id", "session_id", "location")},
}


def _targets(draw: Draw) -> Any:
    count = draw(st.sampled_from([0, 1, 2, 32]) | (st.just(33) if _now_and_then(draw, 30) else st.nothing()))
    if count > 2:
        items = [{"type": "deal", "id": f"d{i}"} for i in range(count)]
    else:
        items = [_object(draw, TARGET, ("type", "id")) for _ in range(count)]
    if _now_and_then(draw, 30):
        return draw(st.sampled_from([Array, tuple]))(items)
    return items


TOP: dict[str, Callable[[Draw], Any]] = {
    "id": _pattern("aZ9._:-", " /\u00e9", 128),
    "occurred_at": _field(TIMES, TIME_MISSES),
    "category": _literal("authentication", "user_activity", "integration", "workflow", "system"),
    "action": _field(ACTIONS, ACTION_MISSES),
    "outcome": _literal("success", "failure", "pending", "unknown"),
    "actor": lambda draw: _object(draw, ACTOR, ("type", "id")),
    "targets": _targets,
    "integration": lambda draw: _object(draw, INTEGRATION, ("provider",)),
    "workflow": lambda draw: _object(draw, WORKFLOW, ("run_id",)),
    "context": lambda draw: _object(draw, CONTEXT, ()),
    "description": _plain(1000, minimum=0),
    "metadata": _field(_metadata(), METADATA_MISSES),
}


@st.composite
def candidate_events(draw: Draw) -> Any:
    if _now_and_then(draw, 80):
        return draw(st.sampled_from(["not an object", 5, None]))
    return _object(draw, TOP, ("category", "action", "actor"))


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict | MappingProxyType):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _has_subclassed_key(value: Any) -> bool:
    if isinstance(value, dict | MappingProxyType):
        return any(type(k) is Text or _has_subclassed_key(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_subclassed_key(v) for v in value)
    return False


def _errors_or_exception(check: Callable[[], list[FieldError]]) -> list[FieldError] | type[BaseException]:
    try:
        return check()
    except (OverflowError, ValueError) as exc:  # out-of-range times fail as they always have
        return type(exc)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(candidate_events())
def test_the_quick_check_accepts_exactly_the_events_the_schema_accepts(event: Any) -> None:
    reference = _errors_or_exception(lambda: _schema_errors(event, 0))
    quick = _quick_check(event)
    # Lone surrogates are the encoder's to find, and msgspec refuses a str subclass as a
    # key where pydantic takes it: such events always go to the pydantic path.
    if not _has_lone_surrogate(event) and not _has_subclassed_key(event):
        assert (quick is not None) == (reference == []), reference
    if quick is not None:
        assert reference == [] or _has_lone_surrogate(event)
        occurred_at, occurred_us, floats = quick
        if reference == []:
            assert occurred_at == (normal_time(event["occurred_at"]) if "occurred_at" in event else None)
            assert occurred_us is None or occurred_us == time_us(occurred_at)  # type: ignore[arg-type]
            metadata = event.get("metadata")
            assert floats == (metadata is not None and _scan_metadata(metadata, "")[1])


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(candidate_events(), st.integers(0, 999))
def test_event_errors_are_the_schema_errors(event: Any, index: int) -> None:
    expected = _errors_or_exception(lambda: _schema_errors(event, index))
    assert _errors_or_exception(lambda: event_errors(event, index)) == expected


def _reference_batch(tenant: str, raws: list[Any], received_at: str, ids: list[str]) -> list[Any]:
    """A batch as the events would be one by one: every schema error, else every error of
    preparing, else each event as :func:`prepare` makes it; the server's ids go in order to
    the events without one."""
    errors = [error for i, raw in enumerate(raws) for error in _schema_errors(raw, i)]
    if errors:
        raise InvalidEvent(errors)
    out: list[Any] = []
    unused = iter(ids)
    for i, raw in enumerate(raws):
        try:
            out.append(prepare(raw, tenant, received_at, i, None if "id" in raw else next(unused)))
        except InvalidEvent as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidEvent(errors)
    return out


def _outcome(make: Callable[[], list[Any]]) -> Any:
    try:
        made = make()
    except InvalidEvent as exc:
        return ("invalid", [(e.index, e.field, e.message) for e in exc.errors])
    except (OverflowError, ValueError, TypeError) as exc:
        # As the reference does: a time out of range, a stored time before the year 1000, a
        # str subclass the encoder cannot take.
        return ("raised", type(exc))
    return [(p.record, p.head, p.tail, p.occurred_us, p.producer_id, p.id) for p in made]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(candidate_events(), min_size=1, max_size=4))
def test_a_batch_is_prepared_as_its_events_would_be_one_by_one(raws: list[Any]) -> None:
    received_at = "2026-11-03T09:15:00.000000Z"
    ids = [f"0190f0e0-0000-7000-8000-{i:012d}" for i in range(len(raws))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(events, "now_text", lambda: received_at)
        patch.setattr(events, "uuid7_batch", lambda count: ids[:count])
        made = _outcome(lambda: prepare_batch("acme", raws))
    assert made == _outcome(lambda: _reference_batch("acme", raws, received_at, ids))
    if isinstance(made, list):
        for record, head, tail, occurred_us, _, _ in made:
            # The seq goes between the keys that sort before it and those after: RFC 8785.
            assert head == rfc8785.dumps({k: v for k, v in record.items() if k < "seq"})[:-1]
            assert tail == rfc8785.dumps({k: v for k, v in record.items() if k > "seq"})[1:]
            assert occurred_us == time_us(record["occurred_at"])


def test_a_time_already_as_stored_keeps_its_text_and_gets_its_microseconds() -> None:
    event = {
        "category": "system",
        "action": "a",
        "actor": {"type": "user", "id": "u"},
        "occurred_at": "2026-11-03T09:15:00.000001Z",
    }
    microseconds = calendar.timegm((2026, 11, 3, 9, 15, 0)) * 1_000_000 + 1
    assert _quick_check(event) == ("2026-11-03T09:15:00.000001Z", microseconds, False)


@pytest.mark.parametrize(
    "metadata",
    [{"x": math.nan}, {"x": [math.inf]}, {"x": 2**53}, {1: "x"}, {"x": (1,)}, Object(x=1), {"x": {"y": b""}}],
)
def test_metadata_json_cannot_carry_is_refused_by_both_checks(metadata: Any) -> None:
    event = {"category": "system", "action": "a", "actor": {"type": "user", "id": "u"}, "metadata": metadata}
    assert _quick_check(event) is None
    assert _schema_errors(event, 0)


OCTETS = st.integers(0, 300).map(str) | st.sampled_from(
    ["00", "01", "007", "१", "٣", "", " 1", "1 ", "+1", "0x1"]
)


@given(
    st.lists(OCTETS, min_size=1, max_size=5).map(".".join)
    | IPS
    | IP_MISSES
    | st.text(st.sampled_from("0123456789.:abcdef%\x00 \n"), max_size=20)
)
def test_the_quick_address_check_agrees_with_the_reference(text: str) -> None:
    """The dotted quad the C library reads is an address by the regular expression too:
    the quick path never says yes where the reference says no, nor no where it says yes."""
    assert events._is_ip(text) == events._is_other_ip.__wrapped__(text)
