"""The search syntax of ``q`` (CONTRACT section 5): query text to a :class:`Filter` and back.

A query is terms separated by spaces, all of which must match::

    action:auth.* outcome:failure -actor_type:system "sso error" before:2026-12-01

* ``field:value`` matches one of :data:`FIELDS` exactly; a trailing ``*`` makes it a prefix
  (``action:auth.*``); ``-field:value`` negates it. A value with spaces is quoted
  (``integration:"google calendar"``); inside quotes a ``*`` is literal and a prefix is written
  after the closing quote (``integration:"google cal"*``).
* ``"a phrase"`` and bare words are free text; the stores decide how they match.
* ``after:`` (inclusive) and ``before:`` (exclusive) bound ``occurred_at`` with an RFC 3339
  time or a ``YYYY-MM-DD`` date, which means its midnight UTC.

Choices where the contract is silent:

* Only field terms can be negated. ``-word`` and ``-"phrase"`` are refused rather than read as
  text, so that a user who meant "without" never silently gets "with"; ``"-word"`` searches
  for the word itself.
* Any ``name:`` where name is letters and underscores is a field reference and must name a
  known field, so that a typo (``acter:jane``) is an error, not a text search. A word such as
  ``https://...`` is searched by quoting it.
* Inside quotes, ``\\"`` is a quote and ``\\\\`` a backslash; any other backslash is literal.
* Control characters and lone surrogates are refused everywhere: a query is printable text.

Every fault raises :class:`~trailkeeper.errors.QueryError` with the 0-based position (in code
points) of the offending character; nothing else escapes :func:`parse_query`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

from trailkeeper.errors import InvalidArgument, QueryError
from trailkeeper.events import ACTOR_TYPES, CATEGORIES, OUTCOMES

__all__ = [
    "FIELDS",
    "Filter",
    "Term",
    "describe",
    "filter_from_params",
    "format_time",
    "parse_query",
    "parse_time",
]

FIELDS = (
    "category",
    "action",
    "actor",
    "actor_type",
    "target",
    "target_type",
    "outcome",
    "integration",
    "workflow_run",
    "ip",
)
_BOUNDS = ("after", "before")

# Fields whose values form a closed set: a value outside it can only be a typo.
_ENUMERATED: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "outcome": OUTCOMES,
    "actor_type": ACTOR_TYPES,
}

# The characters that separate terms. The other ASCII whitespace is all control characters,
# refused inside a value, so letting it separate only makes pasted multi-line queries work.
_SPACES = frozenset(" \t\n\r\f\v")
_FIELD_NAME = re.compile(r"([A-Za-z_]+):")


@dataclass(frozen=True)
class Term:
    """One field condition: ``field`` equals ``value``, or starts with it when ``prefix``."""

    field: str
    value: str
    prefix: bool = False
    negated: bool = False

    def __post_init__(self) -> None:
        # The stores map field names to columns; an unknown one is a programming error.
        if self.field not in FIELDS:
            raise ValueError(f"unknown field {self.field!r}; fields: {', '.join(FIELDS)}")


@dataclass(frozen=True)
class Filter:
    """What a search asks for: every term, every text and both bounds must hold."""

    terms: tuple[Term, ...] = ()
    text: tuple[str, ...] = ()
    after_us: int | None = None
    """Inclusive lower bound on ``occurred_at``, microseconds since the Unix epoch, UTC."""
    before_us: int | None = None
    """Exclusive upper bound on ``occurred_at``."""

    def merge(self, other: Filter) -> Filter:
        """Both filters at once: terms and text of both, and the tighter of each bound."""
        return Filter(
            terms=self.terms + other.terms,
            text=self.text + other.text,
            after_us=_tighter(self.after_us, other.after_us, max),
            before_us=_tighter(self.before_us, other.before_us, min),
        )

    @property
    def is_empty(self) -> bool:
        """Whether the filter matches every event."""
        return not self.terms and not self.text and self.after_us is None and self.before_us is None


def _tighter(a: int | None, b: int | None, pick: Callable[[int, int], int]) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


# --- Times -----------------------------------------------------------------------------------

# Microseconds, the unit of every time the log stores and compares.
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Bounds stay within what format_time can print (years 0001-9999, UTC).
_MIN_US = (date.min.toordinal() - _EPOCH_ORDINAL) * DAY_US
_MAX_US = (date.max.toordinal() + 1 - _EPOCH_ORDINAL) * DAY_US - 1

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# RFC 3339 section 5.6 date-time, with the offset left optional here only so that a missing
# one gets its own message. Section 5.6's note allows 't', 'z' and a space for 'T'; the
# event schema accepts the same, so a bound and an occurred_at are read alike.
_TIME_OF_DAY = re.compile(
    r"[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_TIME_EXAMPLES = "2026-11-01T10:00:00Z, 2026-11-01T12:00:00+02:00 or 2026-11-01"


class _BadTime(ValueError):
    """A time value that is not RFC 3339 or a date; the message says what is wrong."""


def parse_time(value: str, field: str) -> int:
    """An RFC 3339 date-time with its offset, or a ``YYYY-MM-DD`` date (its midnight UTC), as
    microseconds since the Unix epoch, UTC.

    Fractional seconds beyond microseconds are dropped, as they are for a stored
    ``occurred_at``. A bad value raises :class:`InvalidArgument` naming ``field``.
    """
    try:
        return _epoch_us(value)
    except _BadTime as exc:
        raise InvalidArgument(field, str(exc)) from None


def _epoch_us(value: str) -> int:
    day = _DATE.match(value)
    if day is None:
        raise _BadTime(f"expected a time such as {_TIME_EXAMPLES}; got {_show(value)}")
    try:
        ordinal = date(int(day[1]), int(day[2]), int(day[3])).toordinal()
    except ValueError:
        raise _BadTime(f"{day[0]} is not a date on the calendar") from None
    midnight_us = (ordinal - _EPOCH_ORDINAL) * DAY_US
    if day.end() == len(value):
        return midnight_us
    clock = _TIME_OF_DAY.fullmatch(value, day.end())
    if clock is None:
        raise _BadTime(f"expected a time such as {_TIME_EXAMPLES}; got {_show(value)}")
    hour, minute, second = int(clock[1]), int(clock[2]), int(clock[3])
    # Section 5.6 allows second 60 for a leap second, but Unix time has none to count and
    # occurred_at refuses it too.
    if hour > 23 or minute > 59 or second > 59:
        raise _BadTime(f"{value[day.end() + 1 : clock.end(3)]} is not a time of day (00:00:00-23:59:59)")
    if clock[5] is None:
        raise _BadTime("a time needs its offset: add 'Z' for UTC, or '+HH:MM'")
    fraction_us = int((clock[4] or "")[:6].ljust(6, "0"))
    utc_us = midnight_us + ((hour * 60 + minute) * 60 + second) * SECOND_US + fraction_us
    utc_us -= _offset_minutes(clock[5]) * 60 * SECOND_US
    if not _MIN_US <= utc_us <= _MAX_US:
        raise _BadTime(f"{_show(value)} falls outside the years 0001-9999 in UTC")
    return utc_us


def _offset_minutes(offset: str) -> int:
    """RFC 3339 section 5.6 time-offset in minutes east of UTC; '-00:00' (section 4.3, an
    unknown local offset) still names a UTC time."""
    if offset in ("Z", "z"):
        return 0
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if hours > 23 or minutes > 59:
        raise _BadTime(f"{offset} is not an offset (-23:59 to +23:59)")
    sign = -1 if offset[0] == "-" else 1
    return sign * (hours * 60 + minutes)


def format_time(us: int) -> str:
    """Microseconds since the epoch as stored: UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    if not _MIN_US <= us <= _MAX_US:
        raise ValueError(f"{us} microseconds since the epoch is outside the years 0001-9999")
    days, day_us = divmod(us, DAY_US)
    seconds, micros = divmod(day_us, SECOND_US)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    day = date.fromordinal(days + _EPOCH_ORDINAL)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}.{micros:06d}Z"


def _describe_time(us: int) -> str:
    """The shortest exact form of a bound: a date at midnight, whole seconds without fraction."""
    text = format_time(us)
    if us % DAY_US == 0:
        return text[:10]
    if us % SECOND_US == 0:
        return text[:19] + "Z"
    return text


# --- Values ----------------------------------------------------------------------------------


def _show(text: str, limit: int = 40) -> str:
    """A user's value for an error message: quoted, escaped, cut short."""
    shown = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(shown)


def _char_problem(value: str) -> tuple[str, int] | None:
    """The first character no search value may hold, as (message, index in value)."""
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cc":
            return f"control character U+{ord(char):04X} is not allowed in a search", index
        if category == "Cs":
            return f"lone surrogate U+{ord(char):04X} is not text", index
    return None


def _value_problem(field: str, value: str, prefix: bool) -> str | None:
    """Why ``value`` (already known to be printable and non-empty) cannot match ``field``."""
    allowed = _ENUMERATED.get(field)
    if allowed is None:
        return None
    listed = ", ".join(allowed)
    if prefix and not any(option.startswith(value) for option in allowed):
        return f"no {field} starts with {_show(value)} ({field} is one of {listed})"
    if not prefix and value not in allowed:
        return f"{field} must be one of {listed}; got {_show(value)}"
    return None


# --- Reading query text ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """One term of a query as written, with where its parts are in the query."""

    start: int  # the term's first character: its '-' when negated
    negated: bool
    name: str | None  # the field name before ':', None for free text
    opened_at: int  # where the value begins: right after ':', or the phrase's opening quote
    value: str  # without quotes, escapes resolved, without the prefix '*'
    value_at: int  # the value's first character (inside the quotes when quoted)
    star_at: int | None  # the prefix '*', when there is one


def _pieces(query: str) -> Iterator[_Piece]:
    at = 0
    while True:
        while at < len(query) and query[at] in _SPACES:
            at += 1
        if at == len(query):
            return
        piece, at = _read_piece(query, at)
        yield piece


def _read_piece(query: str, start: int) -> tuple[_Piece, int]:
    negated = query.startswith("-", start)
    at = start + 1 if negated else start
    field = _FIELD_NAME.match(query, at)
    name = field[1] if field else None
    opened_at = field.end() if field else at
    value, value_at, star_at, end = _read_value(query, opened_at, star=field is not None)
    return _Piece(start, negated, name, opened_at, value, value_at, star_at), end


def _read_value(query: str, at: int, *, star: bool) -> tuple[str, int, int | None, int]:
    """A quoted or bare value from ``at``: (value, its first character, the prefix '*', end)."""
    if query.startswith('"', at):
        value, end = _read_quoted(query, at)
        star_at = None
        if star and query.startswith("*", end):
            star_at, end = end, end + 1
        if end < len(query) and query[end] not in _SPACES:
            raise QueryError("expected a space after the closing quote", query, end)
        return value, at + 1, star_at, end
    end = at
    while end < len(query) and query[end] not in _SPACES:
        end += 1
    word = query[at:end]
    _refuse_bad_chars(query, word, at)
    if '"' in word:
        raise QueryError(
            "unexpected '\"' inside a word: quote a whole phrase or value",
            query,
            at + word.index('"'),
        )
    if star and word.endswith("*"):
        return word[:-1], at, end - 1, end
    return word, at, None, end


def _read_quoted(query: str, opening: int) -> tuple[str, int]:
    """The text between the quote at ``opening`` and its closing quote, and the end after it."""
    chars: list[str] = []
    at = opening + 1
    while at < len(query):
        char = query[at]
        if char == '"':
            _refuse_bad_chars(query, query[opening + 1 : at], opening + 1)
            return "".join(chars), at + 1
        if char == "\\" and query[at + 1 : at + 2] in ('"', "\\"):
            at += 1
            char = query[at]
        chars.append(char)
        at += 1
    raise QueryError("unterminated quote: add the closing '\"'", query, opening)


def _refuse_bad_chars(query: str, span: str, span_at: int) -> None:
    problem = _char_problem(span)
    if problem is not None:
        message, index = problem
        raise QueryError(message, query, span_at + index)


# --- From pieces to a filter -----------------------------------------------------------------


def parse_query(q: str) -> Filter:
    """The :class:`Filter` a query asks for; :class:`QueryError` says where it is malformed.

    Several ``after:`` (or ``before:``) terms keep the tightest bound. The empty query, or
    one of spaces only, is the empty filter.
    """
    terms: list[Term] = []
    text: list[str] = []
    after_us: int | None = None
    before_us: int | None = None
    for piece in _pieces(q):
        if piece.name is None:
            text.append(_free_text(q, piece))
        elif piece.name == "after":
            after_us = _tighter(after_us, _time_bound(q, piece), max)
        elif piece.name == "before":
            before_us = _tighter(before_us, _time_bound(q, piece), min)
        else:
            terms.append(_field_term(q, piece))
    return Filter(tuple(terms), tuple(text), after_us, before_us)


def _free_text(query: str, piece: _Piece) -> str:
    if piece.negated:
        raise QueryError(
            "'-' negates field terms only (-field:value); to search for text starting with '-', quote it",
            query,
            piece.start,
        )
    if not piece.value.strip(" "):
        raise QueryError("empty phrase: put the words to search between the quotes", query, piece.opened_at)
    return piece.value


def _field_term(query: str, piece: _Piece) -> Term:
    assert piece.name is not None
    if piece.name not in FIELDS:
        raise QueryError(_unknown_field(piece.name), query, piece.opened_at - len(piece.name) - 1)
    _require_value(query, piece)
    problem = _value_problem(piece.name, piece.value, piece.star_at is not None)
    if problem is not None:
        raise QueryError(problem, query, piece.value_at)
    return Term(piece.name, piece.value, prefix=piece.star_at is not None, negated=piece.negated)


def _time_bound(query: str, piece: _Piece) -> int:
    assert piece.name is not None
    other = "before" if piece.name == "after" else "after"
    if piece.negated:
        raise QueryError(
            f"{piece.name}: cannot be negated; {other}: gives the opposite bound",
            query,
            piece.start,
        )
    _require_value(query, piece)
    if piece.star_at is not None:
        raise QueryError(f"{piece.name}: takes a date or a time, not a prefix", query, piece.star_at)
    try:
        return _epoch_us(piece.value)
    except _BadTime as exc:
        raise QueryError(f"{piece.name}: {exc}", query, piece.value_at) from None


def _require_value(query: str, piece: _Piece) -> None:
    if not piece.value:
        example = "2026-11-01" if piece.name in _BOUNDS else "value"
        raise QueryError(
            f"{piece.name}: needs a value right after the colon, e.g. {piece.name}:{example}",
            query,
            piece.opened_at,
        )


def _unknown_field(name: str) -> str:
    known = (*FIELDS, *_BOUNDS)
    hint = f"; did you mean {name.lower()!r}? Names are lowercase" if name.lower() in known else ""
    return (
        f"unknown field {_show(name)}{hint} (fields: {', '.join(known)}); "
        "to search for a word with a colon, quote it"
    )


# --- The explicit filters of GET /v1/events --------------------------------------------------


def filter_from_params(
    *,
    category: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    actor_type: str | None = None,
    target: str | None = None,
    target_type: str | None = None,
    outcome: str | None = None,
    integration: str | None = None,
    workflow_run: str | None = None,
    ip: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Filter:
    """The filter of the query parameters of ``GET /v1/events`` (CONTRACT section 4).

    A value is taken literally, but for a trailing ``*`` that makes it a prefix. ``since`` is
    inclusive and ``until`` exclusive, as ``after:`` and ``before:``. A bad value, an empty
    one included, raises :class:`InvalidArgument` naming the parameter.
    """
    given = {
        "category": category,
        "action": action,
        "actor": actor,
        "actor_type": actor_type,
        "target": target,
        "target_type": target_type,
        "outcome": outcome,
        "integration": integration,
        "workflow_run": workflow_run,
        "ip": ip,
    }
    terms = tuple(_param_term(field, value) for field, value in given.items() if value is not None)
    return Filter(
        terms=terms,
        after_us=None if since is None else parse_time(since, "since"),
        before_us=None if until is None else parse_time(until, "until"),
    )


def _param_term(field: str, raw: str) -> Term:
    prefix = raw.endswith("*")
    value = raw[:-1] if prefix else raw
    problem = _char_problem(value)
    if problem is not None:
        raise InvalidArgument(field, problem[0])
    if not value:
        raise InvalidArgument(field, "must not be empty; leave the parameter out to match any")
    message = _value_problem(field, value, prefix)
    if message is not None:
        raise InvalidArgument(field, message)
    return Term(field, value, prefix=prefix)


# --- Back to text ----------------------------------------------------------------------------


def describe(filter: Filter) -> str:
    """The filter as canonical query text: terms, then free text, then bounds.

    ``parse_query(describe(f)) == f`` for every filter :func:`parse_query` or
    :func:`filter_from_params` can return.
    """
    parts = [_describe_term(term) for term in filter.terms]
    parts += [_describe_text(text) for text in filter.text]
    if filter.after_us is not None:
        parts.append(f"after:{_describe_time(filter.after_us)}")
    if filter.before_us is not None:
        parts.append(f"before:{_describe_time(filter.before_us)}")
    return " ".join(parts)


def _describe_term(term: Term) -> str:
    # A bare value would lose a literal trailing '*' to the prefix reading.
    literal_star = term.value.endswith("*") and not term.prefix
    value = _quote(term.value) if literal_star or not _is_bare(term.value) else term.value
    return f"{'-' if term.negated else ''}{term.field}:{value}{'*' if term.prefix else ''}"


def _describe_text(text: str) -> str:
    reads_as_other = text.startswith("-") or _FIELD_NAME.match(text) is not None
    return _quote(text) if reads_as_other or not _is_bare(text) else text


def _is_bare(value: str) -> bool:
    return bool(value) and '"' not in value and not any(char in _SPACES for char in value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
