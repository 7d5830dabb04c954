"""The search syntax (CONTRACT section 5) and the explicit filters of GET /v1/events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.errors import InvalidArgument, QueryError
from trailkeeper.events import ACTOR_TYPES, CATEGORIES, OUTCOMES
from trailkeeper.query import (
    FIELDS,
    Filter,
    Term,
    describe,
    filter_from_params,
    format_time,
    parse_query,
    parse_time,
)

SECOND_US = 1_000_000
DAY_US = 86_400 * SECOND_US


def utc_us(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> int:
    """Microseconds since the epoch of a UTC calendar moment, computed independently."""
    moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * DAY_US + delta.seconds * SECOND_US + delta.microseconds


def error_of(query: str) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    return caught.value


# --- The contract's example and the term forms ----------------------------------------------


def test_contract_example_parses_to_prefix_exact_negated_terms_and_exclusive_bound() -> None:
    parsed = parse_query("action:auth.* outcome:failure -actor_type:system before:2026-12-01")
    assert parsed == Filter(
        terms=(
            Term("action", "auth.", prefix=True),
            Term("outcome", "failure"),
            Term("actor_type", "system", negated=True),
        ),
        before_us=utc_us(2026, 12, 1),
    )


def test_every_field_is_searchable() -> None:
    for field in FIELDS:
        value = {"category": "system", "outcome": "success", "actor_type": "agent"}.get(field, "x1")
        assert parse_query(f"{field}:{value}").terms == (Term(field, value),)


def test_empty_and_blank_queries_are_the_empty_filter() -> None:
    assert parse_query("") == Filter()
    assert parse_query("  \t \n") == Filter()
    assert parse_query("").is_empty


def test_terms_keep_their_order_and_repeat() -> None:
    parsed = parse_query("actor:u_1 target:doc_9 actor:u_2")
    assert [(t.field, t.value) for t in parsed.terms] == [
        ("actor", "u_1"),
        ("target", "doc_9"),
        ("actor", "u_2"),
    ]


def test_quoted_value_may_hold_spaces() -> None:
    parsed = parse_query('integration:"google calendar" outcome:success')
    assert parsed.terms[0] == Term("integration", "google calendar")


def test_star_inside_quotes_is_literal_and_after_them_is_a_prefix() -> None:
    assert parse_query('action:"auth.*"').terms == (Term("action", "auth.*"),)
    assert parse_query('integration:"google c"*').terms == (Term("integration", "google c", prefix=True),)


def test_only_the_last_star_of_a_bare_value_makes_the_prefix() -> None:
    assert parse_query("target:a*b").terms == (Term("target", "a*b"),)
    assert parse_query("target:a**").terms == (Term("target", "a*", prefix=True),)


def test_colons_after_the_field_name_belong_to_the_value() -> None:
    assert parse_query("ip:2001:db8::1").terms == (Term("ip", "2001:db8::1"),)
    assert parse_query("ip:2001:db8:*").terms == (Term("ip", "2001:db8:", prefix=True),)


def test_enumerated_fields_accept_a_prefix_of_a_known_value() -> None:
    assert parse_query("category:auth*").terms == (Term("category", "auth", prefix=True),)
    assert parse_query("-actor_type:s*").terms == (Term("actor_type", "s", prefix=True, negated=True),)


def test_a_hyphen_inside_a_value_or_word_is_not_negation() -> None:
    parsed = parse_query("target:doc-1 re-run")
    assert parsed.terms == (Term("target", "doc-1"),)
    assert parsed.text == ("re-run",)


# --- Free text ------------------------------------------------------------------------------


def test_bare_words_and_phrases_are_text_with_case_and_inner_spaces_kept() -> None:
    parsed = parse_query('Quarterly  "Pipeline  Review" export')
    assert parsed.text == ("Quarterly", "Pipeline  Review", "export")
    assert parsed.terms == ()


def test_escapes_inside_quotes_give_quote_and_backslash() -> None:
    assert parse_query(r'"say \"hi\" \\ now"').text == ('say "hi" \\ now',)


def test_other_backslashes_are_literal() -> None:
    assert parse_query(r'"C:\path" a\b').text == ("C:\\path", "a\\b")


def test_quoting_a_word_with_a_colon_searches_it_as_text() -> None:
    assert parse_query('"https://crm.example.com" "-draft"').text == (
        "https://crm.example.com",
        "-draft",
    )


def test_a_colon_not_after_a_name_is_text() -> None:
    assert parse_query("10:30 a1:b").text == ("10:30", "a1:b")


# --- Time bounds -----------------------------------------------------------------------------


def test_after_is_recorded_as_the_inclusive_bound_and_before_as_the_exclusive_one() -> None:
    parsed = parse_query("after:2026-11-01T10:00:00Z before:2026-11-02T10:00:00Z")
    assert parsed.after_us == utc_us(2026, 11, 1, 10)
    assert parsed.before_us == utc_us(2026, 11, 2, 10)


def test_a_bare_date_means_its_midnight_utc() -> None:
    assert parse_query("after:2026-11-01").after_us == utc_us(2026, 11, 1)


def test_offsets_are_converted_to_utc() -> None:
    assert parse_query("after:2026-11-01T12:00:00+02:00").after_us == utc_us(2026, 11, 1, 10)
    assert parse_query("before:2026-11-01T00:30:00-01:00").before_us == utc_us(2026, 11, 1, 1, 30)


def test_repeated_bounds_keep_the_tightest() -> None:
    parsed = parse_query(
        "after:2026-01-01 after:2026-03-01 after:2026-02-01 before:2026-12-01 before:2026-10-01"
    )
    assert parsed.after_us == utc_us(2026, 3, 1)
    assert parsed.before_us == utc_us(2026, 10, 1)


def test_a_quoted_time_may_use_the_space_separator() -> None:
    assert parse_query('after:"2026-11-01 10:00:00Z"').after_us == utc_us(2026, 11, 1, 10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", utc_us(2026, 11, 1)),
        ("2026-11-01T10:00:00Z", utc_us(2026, 11, 1, 10)),
        ("2026-11-01t10:00:00z", utc_us(2026, 11, 1, 10)),
        ("2026-11-01T10:00:00.5Z", utc_us(2026, 11, 1, 10, 0, 0, 500_000)),
        ("2026-11-01T10:00:00.123456789Z", utc_us(2026, 11, 1, 10, 0, 0, 123_456)),
        ("2026-11-01T05:30:00+05:30", utc_us(2026, 11, 1)),
        ("2026-11-01T00:00:00-00:00", utc_us(2026, 11, 1)),
        ("2026-01-01T00:15:00+01:00", utc_us(2025, 12, 31, 23, 15)),
        ("1969-12-31T23:59:59.999999Z", -1),
        ("2028-02-29", utc_us(2028, 2, 29)),
    ],
)
def test_parse_time_reads_rfc3339_and_dates(text: str, expected: int) -> None:
    assert parse_time(text, "since") == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected a time such as"),
        ("yesterday", "expected a time such as"),
        ("2026-11", "expected a time such as"),
        ("2026-11-01T10:00Z", "expected a time such as"),
        ("2026-11-01T10:00:00", "needs its offset"),
        ("2026-02-30", "not a date on the calendar"),
        ("2027-02-29", "not a date on the calendar"),
        ("2026-11-01T24:00:00Z", "not a time of day"),
        ("2026-12-31T23:59:60Z", "not a time of day"),
        ("2026-11-01T10:00:00+24:00", "not an offset"),
        ("2026-11-01T10:00:00+0200", "expected a time such as"),
        ("2026-11-01 ", "expected a time such as"),
        ("\uff12\uff10\uff12\uff16-11-01", "expected a time such as"),
        ("0001-01-01T00:00:00+00:01", "outside the years 0001-9999"),
        ("9999-12-31T23:59:59-00:01", "outside the years 0001-9999"),
    ],
)
def test_parse_time_refuses_what_is_not_a_time_naming_the_parameter(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_time(text, "until")
    assert caught.value.field == "until"
    assert caught.value.message.startswith("until: ")
    assert fragment in caught.value.message


def test_format_time_prints_the_stored_form() -> None:
    assert format_time(utc_us(2026, 11, 1, 10, 5, 7, 42)) == "2026-11-01T10:05:07.000042Z"
    assert format_time(0) == "1970-01-01T00:00:00.000000Z"
    assert format_time(-1) == "1969-12-31T23:59:59.999999Z"
    assert format_time(utc_us(1, 1, 1)) == "0001-01-01T00:00:00.000000Z"


def test_format_time_refuses_moments_outside_four_digit_years() -> None:
    with pytest.raises(ValueError, match="0001-9999"):
        format_time(utc_us(1, 1, 1) - 1)
    with pytest.raises(ValueError, match="0001-9999"):
        format_time(utc_us(9999, 12, 31, 23, 59, 59, 999_999) + 1)


EARLIEST_US = utc_us(1, 1, 1)
LATEST_US = utc_us(9999, 12, 31, 23, 59, 59, 999_999)


@given(st.integers(EARLIEST_US, LATEST_US))
@settings(max_examples=200)
def test_format_time_and_parse_time_are_inverse(us: int) -> None:
    assert parse_time(format_time(us), "since") == us


# --- Errors and where they point -------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "fragment"),
    [
        ('actor:u_1 "unfinished phrase', 10, "unterminated quote"),
        ('integration:"google', 12, "unterminated quote"),
        ("outcome:failure acter:jane", 16, "unknown field 'acter'"),
        ("-acter:jane", 1, "unknown field 'acter'"),
        ("Outcome:failure", 0, "did you mean 'outcome'"),
        ("https://example.com", 0, "unknown field 'https'"),
        ("after:2026-13-01", 6, "after: 2026-13-01 is not a date"),
        ('before:"2026-11-01T10:00:00"', 8, "needs its offset"),
        ("after:soon", 6, "expected a time such as"),
        ("outcome: failure", 8, "needs a value right after the colon"),
        ("actor:", 6, "needs a value right after the colon"),
        ('actor:"" x', 6, "needs a value right after the colon"),
        ("action:*", 7, "needs a value right after the colon"),
        ("x after:", 8, "needs a value right after the colon"),
        ('a ""', 2, "empty phrase"),
        ('"   "', 0, "empty phrase"),
        ("outcome:failed", 8, "outcome must be one of success, failure, pending, unknown"),
        ("category:auth", 9, "category must be one of"),
        ("actor_type:robot*", 11, "no actor_type starts with 'robot'"),
        ("category:System", 9, "category must be one of"),
        ("sso -error", 4, "'-' negates field terms only"),
        ("x -", 2, "'-' negates field terms only"),
        ('-"a phrase"', 0, "'-' negates field terms only"),
        ("-after:2026-01-01", 0, "after: cannot be negated"),
        ("-before:2026-01-01", 0, "before: cannot be negated"),
        ("after:2026-01-01*", 16, "not a prefix"),
        ('integration:"slack"x', 19, "expected a space after the closing quote"),
        ('"sso"*', 5, "expected a space after the closing quote"),
        ('say"hi"', 3, "unexpected '\"' inside a word"),
        ('actor:ja"ne', 8, "unexpected '\"' inside a word"),
        ("actor:ja\x00ne", 8, "control character U+0000"),
        ('"tab\there"', 4, "control character U+0009"),
        ("word\x7f", 4, "control character U+007F"),
        ("lone\ud800", 4, "lone surrogate U+D800"),
    ],
)
def test_malformed_query_names_the_fault_and_its_position(query: str, position: int, fragment: str) -> None:
    error = error_of(query)
    assert error.position == position
    assert fragment in error.message
    assert error.query == query
    assert error.details == {"position": position, "query": query}


def test_unknown_field_message_lists_every_field() -> None:
    message = error_of("foo:bar").message
    for name in (*FIELDS, "after", "before"):
        assert name in message


def test_bad_enumerated_value_message_lists_the_allowed_values() -> None:
    for field, allowed in (
        ("category", CATEGORIES),
        ("outcome", OUTCOMES),
        ("actor_type", ACTOR_TYPES),
    ):
        message = error_of(f"{field}:nope").message
        assert all(value in message for value in allowed)


def test_the_first_fault_from_the_left_is_reported() -> None:
    assert error_of("acter:x outcome:failed").position == 0
    assert error_of("outcome:failed acter:x").position == 8


# --- The explicit filters ----------------------------------------------------------------------


def test_params_become_exact_and_prefix_terms_and_bounds() -> None:
    parsed = filter_from_params(
        action="crm.task.*",
        actor="Jane Doe",
        outcome="failure",
        ip="10.0.*",
        since="2026-11-01",
        until="2026-11-01T12:00:00+02:00",
    )
    assert parsed == Filter(
        terms=(
            Term("action", "crm.task.", prefix=True),
            Term("actor", "Jane Doe"),
            Term("outcome", "failure"),
            Term("ip", "10.0.", prefix=True),
        ),
        after_us=utc_us(2026, 11, 1),
        before_us=utc_us(2026, 11, 1, 10),
    )


def test_no_params_is_the_empty_filter() -> None:
    assert filter_from_params().is_empty


def test_param_values_are_literal_apart_from_the_trailing_star() -> None:
    parsed = filter_from_params(target='"quoted" -x', workflow_run="a*b")
    assert parsed.terms == (Term("target", '"quoted" -x'), Term("workflow_run", "a*b"))


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"category": "auth"}, "category", "must be one of"),
        ({"outcome": "x*"}, "outcome", "no outcome starts with"),
        ({"actor": ""}, "actor", "must not be empty"),
        ({"action": "*"}, "action", "must not be empty"),
        ({"target": "doc\n1"}, "target", "control character U+000A"),
        ({"since": "2026-11-01T10:00:00"}, "since", "needs its offset"),
        ({"until": "tomorrow"}, "until", "expected a time such as"),
    ],
)
def test_bad_param_raises_invalid_argument_naming_it(
    params: dict[str, str], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        filter_from_params(**params)
    assert caught.value.field == field
    assert fragment in caught.value.message


# --- Filter ----------------------------------------------------------------------------------


def test_merge_is_the_and_of_both_with_the_tighter_bounds() -> None:
    left = Filter(terms=(Term("actor", "u1"),), text=("sso",), after_us=10, before_us=100)
    right = Filter(terms=(Term("outcome", "failure"),), text=("okta",), after_us=20, before_us=90)
    assert left.merge(right) == Filter(
        terms=(Term("actor", "u1"), Term("outcome", "failure")),
        text=("sso", "okta"),
        after_us=20,
        before_us=90,
    )


def test_merge_keeps_a_bound_only_one_side_has() -> None:
    assert Filter(after_us=5).merge(Filter(before_us=9)) == Filter(after_us=5, before_us=9)
    assert Filter().merge(Filter()) == Filter()


def test_a_filter_with_anything_in_it_is_not_empty() -> None:
    assert not Filter(text=("x",)).is_empty
    assert not Filter(terms=(Term("ip", "1"),)).is_empty
    assert not Filter(after_us=0).is_empty
    assert not Filter(before_us=0).is_empty


def test_a_term_on_an_unknown_field_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        Term("tenant", "acme")


# --- Back to text ----------------------------------------------------------------------------


def test_describe_writes_the_canonical_query() -> None:
    parsed = parse_query(
        'outcome:failure  "sso  error" -action:auth.* after:2026-11-01T00:00:00+00:00 '
        "before:2026-11-02T10:00:00.5Z integration:\"google cal\" 'x'"
    )
    assert describe(parsed) == (
        'outcome:failure -action:auth.* integration:"google cal" "sso  error" \'x\' '
        "after:2026-11-01 before:2026-11-02T10:00:00.500000Z"
    )


def test_describe_quotes_what_would_otherwise_read_differently() -> None:
    described = describe(
        Filter(
            terms=(
                Term("action", "auth.*"),
                Term("actor", 'a"b'),
                Term("target", "x y", prefix=True),
            ),
            text=("-draft", "foo:bar", 'say "hi"', "back\\slash"),
            after_us=utc_us(2026, 11, 1, 10),
        )
    )
    assert described == (
        'action:"auth.*" actor:"a\\"b" target:"x y"* "-draft" "foo:bar" "say \\"hi\\"" '
        "back\\slash after:2026-11-01T10:00:00Z"
    )


def test_describe_of_the_empty_filter_is_the_empty_query() -> None:
    assert describe(Filter()) == ""


printable = st.characters(blacklist_categories=("Cc", "Cs"))
ENUMERATED = {"category": CATEGORIES, "outcome": OUTCOMES, "actor_type": ACTOR_TYPES}


@st.composite
def terms(draw: st.DrawFn) -> Term:
    field = draw(st.sampled_from(FIELDS))
    prefix = draw(st.booleans())
    negated = draw(st.booleans())
    if field in ENUMERATED:
        option = draw(st.sampled_from(ENUMERATED[field]))
        value = option[: draw(st.integers(1, len(option)))] if prefix else option
    else:
        value = draw(st.text(printable, min_size=1, max_size=12))
    return Term(field, value, prefix=prefix, negated=negated)


bounds = st.none() | st.one_of(
    st.integers(EARLIEST_US, LATEST_US),
    st.integers(EARLIEST_US // SECOND_US, LATEST_US // SECOND_US).map(lambda s: s * SECOND_US),
    st.integers(EARLIEST_US // DAY_US, LATEST_US // DAY_US).map(lambda d: d * DAY_US),
)
filters = st.builds(
    Filter,
    terms=st.lists(terms(), max_size=4).map(tuple),
    text=st.lists(st.text(printable, min_size=1, max_size=12).filter(lambda t: t.strip(" ")), max_size=3).map(
        tuple
    ),
    after_us=bounds,
    before_us=bounds,
)


@given(filters)
@settings(max_examples=300)
def test_describe_then_parse_gives_the_same_filter(search: Filter) -> None:
    assert parse_query(describe(search)) == search


def check_parses_or_points_into_the_query(query: str) -> None:
    outcome: Filter | QueryError
    try:
        outcome = parse_query(query)
    except QueryError as error:
        outcome = error
    if isinstance(outcome, QueryError):
        assert 0 <= outcome.position <= len(query)
        assert outcome.query == query
    else:
        assert parse_query(describe(outcome)) == outcome


@given(st.text(st.characters(blacklist_categories=()), max_size=40))
@settings(max_examples=300)
def test_any_text_gives_a_filter_or_a_query_error(query: str) -> None:
    check_parses_or_points_into_the_query(query)


# Pieces of the syntax, so that generated queries reach past the first character.
fragments = st.sampled_from(
    [
        "action:", "outcome:", "category:", "actor_type:", "ip:", "after:", "before:",
        "acter:", "Outcome:", "-", '"', "\\", "*", " ", ":", "auth.", "fail", "failure",
        "system", "2026-11-01", "T10:00:00", ".5", "Z", "+02:00", "\x00", "é",
    ]
)  # fmt: skip


@given(st.lists(fragments | st.text(max_size=2), max_size=12).map("".join))
@settings(max_examples=400)
def test_syntax_like_text_gives_a_filter_or_a_query_error(query: str) -> None:
    check_parses_or_points_into_the_query(query)
