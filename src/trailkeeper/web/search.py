"""The search form: what the console's query string holds, and the filter it asks for.

A search is the query text of CONTRACT section 5 (``q``) combined with the form's controls:
category, outcome, actor, integration, and a time range, either a preset ending now (last
hour, day, 7 or 30 days) or explicit ``from``/``to`` bounds, which win over a preset. Every
link of the console (paging, chart bars, exports) is this form with a few fields changed, so
that a URL always says the whole search and works without script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Final
from urllib.parse import urlencode

from trailkeeper.auditlog import AuditLog
from trailkeeper.errors import InvalidArgument, QueryError
from trailkeeper.query import DAY_US, HOUR_US, MINUTE_US, Filter, format_time


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    span_us: int


PRESETS: Final = (
    Preset("1h", "Last hour", HOUR_US),
    Preset("24h", "Last day", DAY_US),
    Preset("7d", "Last 7 days", 7 * DAY_US),
    Preset("30d", "Last 30 days", 30 * DAY_US),
)
_PRESETS: Final = {preset.key: preset for preset in PRESETS}

# The form's names in URLs; `from` and `to` are Python keywords, hence the attribute names.
_URL_NAMES: Final = {"start": "from", "end": "to"}

# A browser's datetime-local value, or a time typed without an offset: read as UTC, which is
# the only zone the console shows.
_LOCAL_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2})(:[0-9]{2}(?:\.[0-9]+)?)?")


@dataclass(frozen=True)
class SearchForm:
    """The search as submitted; every field is text, empty when not given."""

    q: str = ""
    category: str = ""
    outcome: str = ""
    actor: str = ""
    integration: str = ""
    range: str = ""
    start: str = ""
    end: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> SearchForm:
        values = {f.name: params.get(_URL_NAMES.get(f.name, f.name), "").strip() for f in fields(cls)}
        # The query keeps its inner spacing: error positions count from its first character.
        values["q"] = params.get("q", "").strip(" ")
        return cls(**values)

    def params(self) -> dict[str, str]:
        """The non-empty fields under their URL names."""
        return {
            _URL_NAMES.get(f.name, f.name): getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name)
        }

    def url(self, path: str = "/", **extra: str) -> str:
        params = {**self.params(), **{name: value for name, value in extra.items() if value}}
        return f"{path}?{urlencode(params)}" if params else path

    def narrowed(self, start_us: int, end_us: int) -> SearchForm:
        """The same search over [start_us, end_us): what a chart bar links to."""
        return replace(self, range="", start=_bound_text(start_us), end=_bound_text(end_us))

    def with_preset(self, key: str) -> SearchForm:
        return replace(self, range=key, start="", end="")

    @property
    def is_empty(self) -> bool:
        return not self.params()


@dataclass(frozen=True)
class QueryFault:
    """Where the query text is wrong, for showing it with the character marked."""

    message: str
    query: str
    position: int

    @property
    def before(self) -> str:
        return self.query[: self.position]

    @property
    def at(self) -> str:
        return self.query[self.position : self.position + 1]

    @property
    def after(self) -> str:
        return self.query[self.position + 1 :]


@dataclass(frozen=True)
class FieldFault:
    """A control whose value is refused (an unknown category, a time that is not one)."""

    field: str
    message: str


@dataclass(frozen=True)
class Resolved:
    """A search's filter, or what is wrong with it."""

    filter: Filter | None
    query_fault: QueryFault | None = None
    field_fault: FieldFault | None = None

    @property
    def fault_code(self) -> str | None:
        if self.query_fault is not None:
            return QueryError.code
        if self.field_fault is not None:
            return InvalidArgument.code
        return None


def resolve(log: AuditLog, form: SearchForm, now_us: int) -> Resolved:
    """The filter a form asks for, at the time ``now_us``.

    A preset is the span up to now, taken in whole minutes: from the start of the current
    minute less the span, to the end of the current minute. Its results and its chart then
    hold still for a minute while someone pages through them, and an event stamped in the
    future is not "in the last hour".
    """
    since, until = _time_param(form.start), _time_param(form.end)
    if form.range and not (since or until):
        preset = _PRESETS.get(form.range)
        if preset is None:
            return Resolved(None, field_fault=FieldFault("range", f"unknown time range {form.range!r}"))
        minute = now_us - now_us % MINUTE_US
        since, until = format_time(minute - preset.span_us), format_time(minute + MINUTE_US)
    try:
        query_filter = log.filter(
            form.q,
            since=since,
            until=until,
            category=form.category or None,
            outcome=form.outcome or None,
            actor=form.actor or None,
            integration=form.integration or None,
        )
    except QueryError as exc:
        return Resolved(None, query_fault=QueryFault(_plain(exc), exc.query, exc.position))
    except InvalidArgument as exc:
        field = {"since": "from", "until": "to"}.get(exc.field, exc.field)
        return Resolved(None, field_fault=FieldFault(field, exc.message.partition(": ")[2] or exc.message))
    return Resolved(query_filter)


def _plain(exc: QueryError) -> str:
    # The position is shown by marking the character; the message need not repeat it.
    prefix = f"query error at position {exc.position}: "
    return exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message


def _time_param(value: str) -> str | None:
    if not value:
        return None
    local = _LOCAL_TIME.fullmatch(value)
    if local is not None:
        return f"{local[1]}T{local[2]}{local[3] or ':00'}Z"
    return value


def _bound_text(us: int) -> str:
    """A bound for the from/to fields: to the second when that is exact, as bars always are."""
    text = format_time(us)
    return text[:19] + "Z" if us % 1_000_000 == 0 else text
