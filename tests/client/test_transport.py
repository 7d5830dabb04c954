"""The wire rules of the client, as pure functions: ids, bodies, responses, waits."""

from __future__ import annotations

import json
import random
import time
import uuid
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from trailkeeper.client.transport import (
    BASE_DELAY,
    MAX_RETRY_AFTER,
    Accepted,
    Invalid,
    Refused,
    Retry,
    Split,
    backoff,
    batch_body,
    classify,
    encode_event,
    retry_after,
    retry_delay,
    uuid7,
)


class Highest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def error(status: int, details: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": "x", "message": "told so", "details": details}}
    return httpx.Response(status, json=body, headers=headers)


def test_uuid7_carries_version_7_the_rfc_variant_and_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(uuid7())
    after = time.time_ns() // 1_000_000

    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_uuid7s_are_distinct_and_sort_by_millisecond() -> None:
    first = uuid7()
    time.sleep(0.002)
    later = [uuid7() for _ in range(1000)]

    assert len(set(later)) == 1000
    assert all(first < made for made in later)


def test_encoded_event_gets_an_id_and_is_one_json_line() -> None:
    event_id, line = encode_event({"action": "a.b", "description": "two\nlines \u2028"})

    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {"action": "a.b", "description": "two\nlines \u2028", "id": event_id}


def test_encoded_event_keeps_the_id_it_brings() -> None:
    assert encode_event({"id": "evt-1"})[0] == "evt-1"


@pytest.mark.parametrize(
    ("event", "error_type"),
    [
        ({"id": 7}, TypeError),
        ({"metadata": {"tags": {"a"}}}, TypeError),
        ({"metadata": {"ratio": float("nan")}}, ValueError),
        ({"description": "\ud800"}, ValueError),
    ],
)
def test_event_json_cannot_carry_is_refused(event: dict[str, Any], error_type: type[Exception]) -> None:
    with pytest.raises(error_type):
        encode_event(event)


def test_batch_body_is_the_events_object_of_the_spooled_lines() -> None:
    lines = [encode_event({"n": n})[1] for n in range(3)]

    assert [e["n"] for e in json.loads(batch_body(lines))["events"]] == [0, 1, 2]


def test_201_accepts_the_batch() -> None:
    assert classify(httpx.Response(201, json={"accepted": 1}), 1, 0.0) == Accepted()


def test_422_names_the_invalid_events_by_index() -> None:
    details = [
        {"index": 2, "field": "action", "message": "bad"},
        {"index": 0, "field": "actor.type", "message": "bad"},
        {"index": 2, "field": "outcome", "message": "bad"},
    ]

    outcome = classify(error(422, details), 3, 0.0)

    assert isinstance(outcome, Invalid)
    assert sorted(outcome.errors) == [0, 2]
    assert [e["field"] for e in outcome.errors[2]] == ["action", "outcome"]


@pytest.mark.parametrize(
    "details",
    [None, "oops", [{"index": 5, "field": "x", "message": "y"}], [{"index": True}], [{"index": "0"}]],
)
def test_422_naming_no_event_of_the_batch_splits_it_rather_than_drop_anything(details: Any) -> None:
    assert isinstance(classify(error(422, details), 3, 0.0), Split)


def test_413_splits_the_batch() -> None:
    assert classify(error(413), 10, 0.0) == Split(413, "413 told so")


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_statuses_that_pass_are_retried(status: int) -> None:
    outcome = classify(error(status, headers={"Retry-After": "2"}), 1, 0.0)

    assert outcome == Retry(status, f"{status} told so", 2.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409])
def test_statuses_a_retry_cannot_change_stop_sending(status: int) -> None:
    assert isinstance(classify(error(status), 1, 0.0), Refused)


def test_message_falls_back_to_the_status_line_when_the_body_is_not_the_api_shape() -> None:
    outcome = classify(httpx.Response(502, text="<html>bad gateway</html>"), 1, 0.0)

    assert outcome == Retry(502, "502 Bad Gateway", None)


def test_retry_after_in_seconds() -> None:
    assert retry_after("3", now=0.0) == 3.0
    assert retry_after(" 0 ", now=0.0) == 0.0


def test_retry_after_as_an_http_date() -> None:
    now = time.time()

    waited = retry_after(formatdate(now + 10, usegmt=True), now)

    assert waited is not None
    assert 8.5 <= waited <= 10.5


@pytest.mark.parametrize("value", [None, "", "soon", "nan"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert retry_after(value, now=0.0) is None


def test_retry_after_in_the_past_or_absurdly_far_is_bounded() -> None:
    assert retry_after("-5", now=0.0) == 0.0
    assert retry_after("1e12", now=0.0) == MAX_RETRY_AFTER


def test_backoff_bound_doubles_per_attempt_up_to_the_cap() -> None:
    bounds = [backoff(attempt, 1.0, Highest()) for attempt in range(6)]

    assert bounds == pytest.approx([BASE_DELAY, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_is_fully_jittered_between_zero_and_its_bound() -> None:
    rng = random.Random(4)

    waits = [backoff(3, 30.0, rng) for _ in range(200)]

    assert all(0.0 <= wait <= BASE_DELAY * 8 for wait in waits)
    assert min(waits) < BASE_DELAY * 2 < BASE_DELAY * 6 < max(waits)


def test_backoff_of_a_very_late_attempt_stays_at_the_cap() -> None:
    assert backoff(10_000, 30.0, Highest()) == 30.0


def test_retry_delay_is_never_shorter_than_the_servers_retry_after() -> None:
    told = Retry(429, "slow down", 5.0)

    assert all(retry_delay(told, 0, 0.01, random.Random(n)) >= 5.0 for n in range(20))
    assert retry_delay(Retry(None, "refused"), 0, 30.0, Highest()) == BASE_DELAY
