"""The activity chart: bucket widths, alignment, counting against a real log, and layout."""

from __future__ import annotations

from trailkeeper import AuditLog
from trailkeeper.query import Filter, parse_query, parse_time
from trailkeeper.web.chart import (
    DAY_US,
    HOUR_US,
    MINUTE_US,
    PLOT_BOTTOM,
    PLOT_TOP,
    WEEK_US,
    Activity,
    ActivityCache,
    Bucket,
    bucket_start,
    choose_width,
    count_activity,
    draw,
    nice_ceiling,
    span_label,
)


def test_a_width_is_the_narrowest_that_fits_its_bars() -> None:
    assert choose_width(30 * MINUTE_US).us == MINUTE_US
    assert choose_width(HOUR_US).us == 5 * MINUTE_US
    assert choose_width(DAY_US).us == HOUR_US
    assert choose_width(7 * DAY_US).us == 3 * HOUR_US
    assert choose_width(42 * DAY_US).us == DAY_US
    assert choose_width(365 * DAY_US).us == WEEK_US


def test_weeks_start_on_monday_and_days_at_midnight_utc() -> None:
    wednesday_noon = parse_time("2026-11-04T12:00:00Z", "t")
    assert bucket_start(wednesday_noon, WEEK_US) == parse_time("2026-11-02", "t")
    assert bucket_start(wednesday_noon, DAY_US) == parse_time("2026-11-04", "t")
    assert bucket_start(wednesday_noon + 1, 3 * HOUR_US) == wednesday_noon


def test_the_y_axis_ends_on_a_round_number_at_or_above_the_tallest_bar() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 7, 11, 107, 165, 1001)] == [1, 1, 8, 15, 150, 200, 1500]


def _record(log: AuditLog, tenant: str, at: str, category: str) -> None:
    log.record(tenant, occurred_at=at, category=category, action="x.y", actor={"type": "user", "id": "u"})


def test_counts_per_bucket_and_category_match_what_was_recorded(log: AuditLog) -> None:
    for at, category in [
        ("2026-11-02T10:15:00Z", "authentication"),
        ("2026-11-02T10:45:00Z", "authentication"),
        ("2026-11-02T11:05:00Z", "workflow"),
        ("2026-11-03T09:00:00Z", "workflow"),
    ]:
        _record(log, "acme", at, category)
    activity = count_activity(log, "acme", Filter())
    assert activity is not None
    assert activity.width.us == HOUR_US
    counts = {b.start_us: b.counts for b in activity.buckets if b.counts}
    assert counts == {
        parse_time("2026-11-02T10:00:00Z", "t"): {"authentication": 2},
        parse_time("2026-11-02T11:00:00Z", "t"): {"workflow": 1},
        parse_time("2026-11-03T09:00:00Z", "t"): {"workflow": 1},
    }
    assert activity.total == 4


def test_narrow_ranges_are_counted_bucket_by_bucket(log: AuditLog) -> None:
    for minute in (1, 2, 2, 7, 29):
        _record(log, "acme", f"2026-11-02T10:{minute:02d}:30Z", "system")
    narrow = parse_query("after:2026-11-02T10:00:00Z before:2026-11-02T10:30:00Z")
    activity = count_activity(log, "acme", narrow)
    assert activity is not None
    assert activity.width.us == MINUTE_US
    assert len(activity.buckets) == 30
    assert [b.total for b in activity.buckets if b.total] == [1, 2, 1, 1]


def test_the_filter_applies_to_the_chart(log: AuditLog) -> None:
    _record(log, "acme", "2026-11-02T10:15:00Z", "authentication")
    _record(log, "acme", "2026-11-02T12:15:00Z", "workflow")
    activity = count_activity(log, "acme", parse_query("category:workflow"))
    assert activity is not None
    assert activity.total == 1
    assert count_activity(log, "acme", parse_query("category:system")) is None


def test_bars_stack_their_segments_from_the_baseline() -> None:
    activity = Activity(
        "category",
        ("authentication", "workflow"),
        choose_width(2 * DAY_US),
        (
            Bucket(0, DAY_US, {"authentication": 3, "workflow": 1}),
            Bucket(DAY_US, 2 * DAY_US, {}),
        ),
    )
    chart = draw(activity, lambda bucket: f"/?from={bucket.start_us}")
    first, second = chart.bars
    assert [s.series for s in first.segments] == ["authentication", "workflow"]
    assert first.segments[0].y + first.segments[0].height == PLOT_BOTTOM
    assert first.segments[1].y + first.segments[1].height == first.segments[0].y
    assert first.segments[1].y == PLOT_TOP  # 4 events, the top of a 4-high axis
    assert second.segments == ()
    assert second.href == f"/?from={DAY_US}"
    assert first.x_pct + first.width_pct <= second.x_pct
    assert "4 events (authentication 3, workflow 1)" in first.title
    assert chart.legend == (("authentication", 3), ("workflow", 1))


def test_a_bucket_is_labelled_as_people_read_it() -> None:
    day = parse_time("2026-11-02", "t")
    assert span_label(day, day + DAY_US) == "2026-11-02 UTC"
    assert span_label(day, day + WEEK_US) == "2026-11-02 – 2026-11-08 UTC"
    assert span_label(day + HOUR_US, day + 2 * HOUR_US) == "2026-11-02 01:00 – 02:00 UTC"


def test_settled_buckets_come_from_the_cache_and_recent_ones_are_counted_afresh(log: AuditLog) -> None:
    now = parse_time("2026-11-10T12:00:00Z", "now")
    _record(log, "acme", "2026-11-01T10:00:00Z", "system")
    _record(log, "acme", "2026-11-10T11:55:00Z", "system")
    cache = ActivityCache()

    def totals() -> list[int]:
        activity = count_activity(log, "acme", Filter(), cache=cache, now_us=now)
        assert activity is not None
        return [b.total for b in activity.buckets if b.total]

    assert totals() == [1, 1]
    _record(log, "acme", "2026-11-01T10:30:00Z", "system")  # late, into a settled bucket
    _record(log, "acme", "2026-11-10T11:57:00Z", "system")  # into the bucket of now
    assert totals() == [1, 2]
    assert count_activity(log, "acme", Filter()) is not None
    assert [b.total for b in count_activity(log, "acme", Filter()).buckets if b.total] == [2, 2]  # type: ignore[union-attr]
