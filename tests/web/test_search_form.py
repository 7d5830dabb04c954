"""The search form: its URL, and the filter (or the fault) it stands for."""

from __future__ import annotations

from trailkeeper import AuditLog
from trailkeeper.query import HOUR_US, MINUTE_US, parse_time
from trailkeeper.web.search import SearchForm, resolve

NOW = parse_time("2026-11-29T12:00:00Z", "now")


def test_a_form_round_trips_through_its_url_names() -> None:
    form = SearchForm.from_params(
        {"q": "outcome:failure", "from": "2026-11-01", "to": "2026-11-02", "actor": ""}
    )
    assert form.start == "2026-11-01"
    assert form.params() == {"q": "outcome:failure", "from": "2026-11-01", "to": "2026-11-02"}
    assert form.url("/") == "/?q=outcome%3Afailure&from=2026-11-01&to=2026-11-02"


def test_narrowing_replaces_the_preset_with_exact_bounds() -> None:
    form = SearchForm(q="x", range="7d")
    narrowed = form.narrowed(parse_time("2026-11-02", "t"), parse_time("2026-11-03", "t"))
    assert narrowed.range == ""
    assert (narrowed.start, narrowed.end) == ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
    assert narrowed.q == "x"


def test_a_preset_is_the_span_up_to_now_in_whole_minutes(log: AuditLog) -> None:
    resolved = resolve(log, SearchForm(range="1h"), NOW + 25_000_000)
    assert resolved.filter is not None
    assert resolved.filter.after_us == NOW - HOUR_US
    assert resolved.filter.before_us == NOW + MINUTE_US


def test_explicit_bounds_win_over_a_preset(log: AuditLog) -> None:
    resolved = resolve(log, SearchForm(range="1h", start="2026-11-01"), NOW)
    assert resolved.filter is not None
    assert resolved.filter.after_us == parse_time("2026-11-01", "t")
    assert resolved.filter.before_us is None


def test_a_time_without_offset_is_utc(log: AuditLog) -> None:
    resolved = resolve(log, SearchForm(start="2026-11-01T09:30", end="2026-11-01 10:00:15"), NOW)
    assert resolved.filter is not None
    assert resolved.filter.after_us == parse_time("2026-11-01T09:30:00Z", "t")
    assert resolved.filter.before_us == parse_time("2026-11-01T10:00:15Z", "t")


def test_a_query_fault_keeps_its_position(log: AuditLog) -> None:
    resolved = resolve(log, SearchForm(q="outcome:failure acter:jane"), NOW)
    assert resolved.filter is None
    fault = resolved.query_fault
    assert fault is not None
    assert (fault.before, fault.at, fault.after) == ("outcome:failure ", "a", "cter:jane")
    assert fault.message.startswith("unknown field 'acter'")
    assert resolved.fault_code == "invalid_query"


def test_a_bad_control_names_the_form_field(log: AuditLog) -> None:
    assert resolve(log, SearchForm(end="soon"), NOW).field_fault.field == "to"  # type: ignore[union-attr]
    assert resolve(log, SearchForm(category="sales"), NOW).field_fault.field == "category"  # type: ignore[union-attr]
    assert resolve(log, SearchForm(range="3w"), NOW).field_fault.field == "range"  # type: ignore[union-attr]


def test_form_controls_and_query_combine(log: AuditLog) -> None:
    resolved = resolve(log, SearchForm(q="action:auth.*", outcome="failure", actor="usr_*"), NOW)
    assert resolved.filter is not None
    terms = {(t.field, t.value, t.prefix) for t in resolved.filter.terms}
    assert terms == {("action", "auth.", True), ("outcome", "failure", False), ("actor", "usr_", True)}
