"""Time in the demo's window: integer microseconds after :data:`WINDOW_START`, their stored
form, and the days people work.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Times are integer microseconds after WINDOW_START: cheap to draw, add and compare.
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

WINDOW_DAYS = 42
WINDOW_END = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday: six whole weeks, Monday to Sunday
WINDOW_START = WINDOW_END - timedelta(days=WINDOW_DAYS)

_LATEST_START = WINDOW_DAYS * DAY - 12 * HOUR  # room for the longest episode before the end

_DAY_PREFIXES = tuple((WINDOW_START + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(WINDOW_DAYS))
_CLOCK_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60))
_CLOCK_SECONDS = tuple(f"{s:02d}." for s in range(60))


def _timestamp(at: int) -> str:
    """The stored form of a time (CONTRACT section 2; RFC 3339 section 5.6 in UTC with
    microseconds). Table lookups: strftime costs several times as much, once per event."""
    day, rest = divmod(at, DAY)
    if 0 <= day < WINDOW_DAYS:
        minute, rest = divmod(rest, MINUTE)
        second, micro = divmod(rest, SECOND)
        return f"{_DAY_PREFIXES[day]}{_CLOCK_MINUTES[minute]}{_CLOCK_SECONDS[second]}{micro:06d}Z"
    return (WINDOW_START + timedelta(microseconds=at)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_weekend(day: int) -> bool:
    return (WINDOW_START + timedelta(days=day)).weekday() >= 5


_WEEKDAYS = tuple(d for d in range(WINDOW_DAYS) if not _is_weekend(d))
# Days to draw a working day from: a weekday is about seventeen times likelier than a weekend day.
_WORKING_DAYS = tuple(d for d in range(WINDOW_DAYS) for _ in range(1 if _is_weekend(d) else 17))
