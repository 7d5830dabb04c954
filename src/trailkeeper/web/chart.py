"""The activity chart: events over time for a filter, stacked by category (or outcome).

Counting and drawing are apart. :func:`count_activity` asks the store for counts per time
bucket and per series; :func:`draw` lays the buckets out as the bars of an SVG drawn on the
server, each bar a plain link (``<a href>`` inside the SVG) to the same search narrowed to
its bucket, which works without script.

The store groups by hour or by day only, so buckets of an hour or more are summed from those
groups, one query per series value, while buckets under an hour (narrow ranges only) are
counted one query per bucket, grouped by the series. Buckets are aligned to UTC: hours and
days on the epoch, weeks and longer on Mondays, so that a bucket is the same whichever range
it is seen from.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from trailkeeper.auditlog import AuditLog
from trailkeeper.events import CATEGORIES, OUTCOMES
from trailkeeper.query import DAY_US, HOUR_US, MINUTE_US, Filter, Term, describe, parse_time
from trailkeeper.store.base import Record

WEEK_US: Final = 7 * DAY_US
# 1970-01-01 was a Thursday: Mondays fall 4 days after the epoch, modulo a week.
_MONDAY_US: Final = 4 * DAY_US

SERIES: Final = {"category": CATEGORIES, "outcome": OUTCOMES}


@dataclass(frozen=True)
class Width:
    us: int
    label: str
    max_bars: int


# Under an hour, each bar costs a query of its own: fewer of them.
WIDTHS: Final = (
    Width(MINUTE_US, "1 minute", 30),
    Width(5 * MINUTE_US, "5 minutes", 30),
    Width(15 * MINUTE_US, "15 minutes", 30),
    Width(HOUR_US, "1 hour", 60),
    Width(3 * HOUR_US, "3 hours", 60),
    Width(6 * HOUR_US, "6 hours", 60),
    Width(12 * HOUR_US, "12 hours", 60),
    Width(DAY_US, "1 day", 60),
    Width(WEEK_US, "1 week", 60),
    Width(4 * WEEK_US, "4 weeks", 60),
    Width(13 * WEEK_US, "13 weeks", 60),
    Width(52 * WEEK_US, "52 weeks", 10_000),
)


def choose_width(span_us: int) -> Width:
    """The narrowest bucket that draws ``span_us`` in at most its number of bars."""
    for width in WIDTHS:
        if math.ceil(span_us / width.us) <= width.max_bars:
            return width
    return WIDTHS[-1]


def bucket_start(us: int, width_us: int) -> int:
    """The start of the bucket holding ``us``."""
    origin = _MONDAY_US if width_us >= WEEK_US else 0
    return us - (us - origin) % width_us


@dataclass(frozen=True)
class Bucket:
    start_us: int
    end_us: int
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Activity:
    """Counts per bucket and series over a span: what a chart draws."""

    series_field: str
    series: tuple[str, ...]
    width: Width
    buckets: tuple[Bucket, ...]

    @property
    def total(self) -> int:
        return sum(bucket.total for bucket in self.buckets)

    def totals(self) -> dict[str, int]:
        return {name: sum(b.counts.get(name, 0) for b in self.buckets) for name in self.series}


def time_span(log: AuditLog, tenant: str, query_filter: Filter) -> tuple[int, int] | None:
    """[start, end) of the chart: the filter's bounds where it has them, else the first and
    last matching events (one indexed row each). None when nothing matches and no bound says
    where to look."""
    start = query_filter.after_us
    end = query_filter.before_us
    if start is None:
        first = log.search_filter(tenant, query_filter, limit=1, order="asc").events
        start = _occurred_us(first[0]) if first else None
    if end is None:
        last = log.search_filter(tenant, query_filter, limit=1, order="desc").events
        end = _occurred_us(last[0]) + 1 if last else None
    if start is None or end is None or end <= start:
        return None
    return start, end


Counts = list[dict[str, int]]
"""Per bucket, in time order: how many events of each series value."""

# Buckets that ended this long before now may come from the cache; the later ones, where new
# events land, are counted afresh on every request.
SETTLED_US: Final = 10 * MINUTE_US


def count_activity(
    log: AuditLog,
    tenant: str,
    query_filter: Filter,
    *,
    series_field: str = "category",
    cache: ActivityCache | None = None,
    now_us: int | None = None,
) -> Activity | None:
    """How many events match per bucket and per series value; None when there is no span.

    With a ``cache`` and the time ``now_us``, the buckets that ended :data:`SETTLED_US` before
    now are taken from it when it has them.
    """
    span = time_span(log, tenant, query_filter)
    if span is None:
        return None
    start, end = span
    width = choose_width(end - start)
    first = bucket_start(start, width.us)
    counts: Counts = []
    settled = first
    if cache is not None and now_us is not None:
        settled = max(first, min(end, bucket_start(now_us - SETTLED_US, width.us)))
        if settled > first:
            key = (tenant, describe(query_filter), series_field, str(width.us), str(first), str(settled))
            counts += cache.get(
                key, lambda: _count(log, tenant, query_filter, series_field, width.us, first, settled)
            )
    counts += _count(log, tenant, query_filter, series_field, width.us, settled, end)
    starts = range(first, end, width.us)
    buckets = tuple(Bucket(at, at + width.us, c) for at, c in zip(starts, counts, strict=True))
    return Activity(series_field, SERIES[series_field], width, buckets)


def _count(
    log: AuditLog, tenant: str, query_filter: Filter, series_field: str, width_us: int, first: int, end: int
) -> Counts:
    """Counts of the buckets from ``first`` (a bucket start) up to ``end``."""
    starts = range(first, end, width_us)
    counts: Counts = [{} for _ in starts]
    within = query_filter.merge(Filter(after_us=first, before_us=end))
    if width_us % HOUR_US == 0:
        grain = "day" if width_us % DAY_US == 0 else "hour"
        for name in SERIES[series_field]:
            only = within.merge(Filter(terms=(Term(series_field, name),)))
            for key, n in log.store.count(tenant, only, grain):
                if key is not None:
                    index = (bucket_start(int(key), width_us) - first) // width_us
                    if 0 <= index < len(counts):
                        counts[index][name] = counts[index].get(name, 0) + n
    else:
        for index, at in enumerate(starts):
            bucket = within.merge(Filter(after_us=at, before_us=at + width_us))
            for key, n in log.store.count(tenant, bucket, series_field):
                if key is not None:
                    counts[index][key] = n
    return counts


def _occurred_us(record: Record) -> int:
    return parse_time(str(record["occurred_at"]), "occurred_at")


# --- drawing ------------------------------------------------------------------------------

# Across, the chart is laid out in percentages of its width, so that it fills any width
# without stretching its text; down, in pixels.
HEIGHT: Final = 150
PLOT_TOP: Final = 14
PLOT_BOTTOM: Final = 128
LABEL_Y: Final = 144
_X_LABELS: Final = 8
# A label starting this far right would run off the edge.
_LAST_LABEL_PCT: Final = 93.0


@dataclass(frozen=True)
class Segment:
    series: str
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class Bar:
    x_pct: float
    width_pct: float
    segments: tuple[Segment, ...]
    href: str
    title: str
    total: int


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    """An activity chart laid out for its template: bars and x ticks in percentages of the
    width, y ticks in pixels from the top."""

    height: int
    plot_top: int
    plot_bottom: int
    label_y: int
    bars: tuple[Bar, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    total: int
    width_label: str
    legend: tuple[tuple[str, int], ...]
    series_field: str
    description: str


def nice_ceiling(value: int) -> int:
    """The top of the y axis: the least round number (1, 1.5, 2, 3, 4, 5, 6 or 8 times a power
    of ten, whole) that is at least ``value``; 1 for an empty chart."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 3, 4, 5, 6, 8, 10):
        top = step * power
        if top >= value and float(top).is_integer():
            return int(top)
    raise AssertionError(value)  # unreachable: 10 * power > value


def draw(activity: Activity, href_of: Callable[[Bucket], str]) -> Chart:
    """The bars, ticks and legend of an activity chart; ``href_of`` gives each bar's link."""
    buckets = activity.buckets
    top = nice_ceiling(max((b.total for b in buckets), default=0))
    slot = 100 / max(len(buckets), 1)
    gap = slot * 0.18
    bars = tuple(
        _bar(bucket, i * slot + gap / 2, slot - gap, top, activity, href_of(bucket))
        for i, bucket in enumerate(buckets)
    )
    levels = (0, top // 2, top) if top % 2 == 0 else (0, top)
    y_ticks = tuple(Tick(_y(value, top), f"{value:,}") for value in levels)
    x_ticks = tuple(
        Tick(round(i * slot + gap / 2, 3), tick_label(buckets[i].start_us, activity.width.us))
        for i in _labelled(buckets, activity.width.us)
        if i * slot <= _LAST_LABEL_PCT
    )
    totals = activity.totals()
    return Chart(
        height=HEIGHT,
        plot_top=PLOT_TOP,
        plot_bottom=PLOT_BOTTOM,
        label_y=LABEL_Y,
        bars=bars,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        total=activity.total,
        width_label=activity.width.label,
        legend=tuple((name, totals[name]) for name in activity.series if totals[name]),
        series_field=activity.series_field,
        description=_description(activity),
    )


def _labelled(buckets: tuple[Bucket, ...], width_us: int) -> list[int]:
    """The bars that get a label: at most a few, and on midnights when the chart spans days
    of buckets shorter than a day, so that every label is a date."""
    indexes = list(range(len(buckets)))
    if width_us < DAY_US and len(buckets) * width_us > 2 * DAY_US:
        indexes = [i for i in indexes if buckets[i].start_us % DAY_US == 0]
    return indexes[:: max(1, math.ceil(len(indexes) / _X_LABELS))]


def _y(value: int, top: int) -> float:
    return round(PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * value / top, 2)


def _bar(bucket: Bucket, x: float, width: float, top: int, activity: Activity, href: str) -> Bar:
    segments: list[Segment] = []
    below = 0
    for name in activity.series:
        count = bucket.counts.get(name, 0)
        if count:
            y = _y(below + count, top)
            segments.append(Segment(name, y, round(_y(below, top) - y, 2), count))
            below += count
    title = _bar_title(bucket, activity)
    return Bar(round(x, 3), round(width, 3), tuple(segments), href, title, bucket.total)


def _bar_title(bucket: Bucket, activity: Activity) -> str:
    parts = ", ".join(
        f"{name.replace('_', ' ')} {bucket.counts[name]:,}"
        for name in activity.series
        if bucket.counts.get(name)
    )
    events = f"{bucket.total:,} event{'s' if bucket.total != 1 else ''}"
    return f"{span_label(bucket.start_us, bucket.end_us)}: {events}" + (f" ({parts})" if parts else "")


def _description(activity: Activity) -> str:
    if not activity.buckets:
        return "No activity"
    first, last = activity.buckets[0], activity.buckets[-1]
    return (
        f"{activity.total:,} events from {span_label(first.start_us, last.end_us)}, "
        f"in buckets of {activity.width.label}, stacked by {activity.series_field}"
    )


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def tick_label(us: int, width_us: int) -> str:
    moment = _utc(us)
    if width_us >= DAY_US or (moment.hour == 0 and moment.minute == 0):
        return moment.strftime("%b %d")
    return moment.strftime("%H:%M")


def span_label(start_us: int, end_us: int) -> str:
    """``Nov 02 14:00 – 15:00 UTC``, ``Nov 02 – Nov 09 UTC``: a bucket as people read it."""
    start, end = _utc(start_us), _utc(end_us)
    whole_days = start_us % DAY_US == 0 and end_us % DAY_US == 0
    if whole_days:
        last_day = _utc(end_us - DAY_US)
        if last_day.date() == start.date():
            return f"{start:%Y-%m-%d} UTC"
        return f"{start:%Y-%m-%d} – {last_day:%Y-%m-%d} UTC"
    if end.date() == start.date() or (end_us - start_us <= DAY_US and end_us % DAY_US == 0):
        return f"{start:%Y-%m-%d %H:%M} – {end:%H:%M} UTC"
    return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"


class ActivityCache:
    """Counts of settled buckets, kept ``ttl`` seconds per tenant, search and span.

    Paging through results, or coming back to a search, draws the same chart again; on a large
    log counting is most of the work of a page. Only buckets that ended a while ago are kept
    (see :func:`count_activity`), so a new event shows at once; an event recorded late into an
    old bucket shows within ``ttl`` seconds. The table of results is never cached.
    """

    def __init__(
        self, ttl: float = 30.0, size: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[tuple[str, ...], tuple[float, Counts]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], count: Callable[[], Counts]) -> Counts:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self._ttl:
                return entry[1]
        counts = count()
        with self._lock:
            self._entries[key] = (now, counts)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return counts
