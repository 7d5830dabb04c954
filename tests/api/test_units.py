"""The pure parts of the service: token buckets, body parsing, the declared enumerations."""

from __future__ import annotations

from typing import get_args

import pytest

from trailkeeper.api.errors import InvalidBody, RateLimited
from trailkeeper.api.ratelimit import RateLimiter, TokenBucket
from trailkeeper.api.routes.ingest import events_of
from trailkeeper.api.routes.params import ExportFormat, GroupBy
from trailkeeper.errors import InvalidEvent
from trailkeeper.exporters import FORMATS, attachment_name, encode_chunks
from trailkeeper.store.base import GROUP_BY


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_says_when_the_next_token_comes() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, tokens=3.0, updated=0.0)

    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


def test_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0, tokens=2.0, updated=0.0)

    bucket.take(1000.0)

    assert bucket.tokens == pytest.approx(1.0)


def test_limiter_refuses_with_retry_after_in_whole_seconds_rounded_up() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=0.4, burst=1, clock=clock)
    limiter.check("key_a")

    with pytest.raises(RateLimited) as refused:
        limiter.check("key_a")

    assert refused.value.headers == {"Retry-After": "3"}  # 2.5 s, rounded up
    limiter.check("key_b")  # another key has its own bucket
    clock.now += 2.5
    limiter.check("key_a")


def test_body_of_only_events_is_a_batch_and_anything_else_one_event() -> None:
    assert events_of(b'{"events": [{"a": 1}, {"b": 2}]}', "application/json") == [{"a": 1}, {"b": 2}]
    assert events_of(b'{"events": [], "category": "system"}', "application/json") == [
        {"events": [], "category": "system"}
    ]
    assert events_of(b"[1, 2]", "text/plain") == [[1, 2]]


def test_ndjson_skips_blank_lines_and_names_a_bad_one() -> None:
    assert events_of(b'{"a": 1}\r\n\n  \n{"b": 2}', "application/x-ndjson; charset=utf-8") == [
        {"a": 1},
        {"b": 2},
    ]
    with pytest.raises(InvalidBody) as bad:
        events_of(b'{"a": 1}\n{"b": NaN}\n', "application/x-ndjson")
    assert bad.value.details == {"line": 2}


@pytest.mark.parametrize("body", [b"", b"  \n", b"{", b'"\xff"', b"[" * 100_000, b"1e999", b"NaN"])
def test_what_is_not_json_is_invalid_body(body: bytes) -> None:
    with pytest.raises(InvalidBody):
        events_of(body, "application/json")


def test_events_field_that_is_not_a_list_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent):
        events_of(b'{"events": "all"}', "application/json")


def test_chunks_gather_lines_up_to_a_size() -> None:
    lines = [f"{i:03d}\n" for i in range(10)]

    gathered = list(encode_chunks(lines, size=12))

    assert b"".join(gathered) == "".join(lines).encode()
    assert [len(chunk) for chunk in gathered] == [12, 12, 12, 4]


def test_export_filename_names_tenant_time_and_format() -> None:
    from datetime import UTC, datetime

    assert attachment_name("acme", "ocsf", datetime(2026, 5, 1, 12, 0, 9, tzinfo=UTC)) == (
        "trailkeeper-acme-20260501T120009Z.ocsf.ndjson"
    )


def test_documented_enumerations_are_the_ones_the_code_knows() -> None:
    assert set(get_args(ExportFormat)) == set(FORMATS)
    assert set(get_args(GroupBy)) == set(GROUP_BY)
