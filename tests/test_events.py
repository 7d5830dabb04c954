"""The event schema of CONTRACT section 2: every rule, and errors that name the field."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from trailkeeper.errors import InvalidEvent
from trailkeeper.events import prepare_batch, uuid7, uuid7_batch

GOOD: dict[str, Any] = {
    "category": "integration",
    "action": "integration.data.retrieved",
    "actor": {"type": "integration", "id": "sf-1", "name": "Salesforce sync"},
}


def problems(event: Any) -> dict[str, str]:
    with pytest.raises(InvalidEvent) as caught:
        prepare_batch("acme", [event])
    return {e.field: e.message for e in caught.value.errors}


def test_a_minimal_event_gets_id_time_and_outcome() -> None:
    record = prepare_batch("acme", [GOOD])[0].record
    assert record["outcome"] == "success"
    assert record["occurred_at"] == record["received_at"]
    assert len(record["id"]) == 36


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"category": "billing"}, "category"),
        ({"action": "Auth.Login"}, "action"),
        ({"action": "auth..login"}, "action"),
        ({"action": "a" * 129}, "action"),
        ({"outcome": "ok"}, "outcome"),
        ({"id": "has space"}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"occurred_at": "2026-11-03T10:00:00"}, "occurred_at"),
        ({"occurred_at": "2026-02-30T10:00:00Z"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, "occurred_at"),
        ({"actor": {"type": "robot", "id": "r"}}, "actor.type"),
        ({"actor": {"type": "user"}}, "actor.id"),
        ({"actor": {"type": "user", "id": "u", "role": "x"}}, "actor.role"),
        ({"targets": [{"type": "deal", "id": "d"}] * 33}, "targets"),
        ({"targets": [{"type": "deal", "id": "d"}, {"id": "x"}]}, "targets[1].type"),
        ({"integration": {"connection_id": "c"}}, "integration.provider"),
        ({"workflow": {"name": "w"}}, "workflow.run_id"),
        ({"context": {"ip": "999.1.1.1"}}, "context.ip"),
        ({"context": {"browser": "x"}}, "context.browser"),
        ({"description": "d" * 1001}, "description"),
        ({"metadata": {"blob": "x" * 17000}}, "metadata"),
        ({"metadata": {"n": 2**60}}, "metadata.n"),
        ({"metadata": {"n": [float("nan")]}}, "metadata.n[0]"),
        ({"metadata": []}, "metadata"),
        ({"description": 5}, "description"),
        ({"description": None}, "description"),
        ({"tags": ["x"]}, "tags"),
        ({"description": "bad \ud800 surrogate"}, "description"),
    ],
)
def test_each_rule_is_enforced_and_names_its_field(change: dict[str, Any], field: str) -> None:
    assert field in problems({**GOOD, **change})


def test_missing_required_fields_are_each_named() -> None:
    assert set(problems({"outcome": "success"})) == {"category", "action", "actor"}


def test_an_event_must_be_an_object() -> None:
    assert problems("auth.login") == {"": "an event must be a JSON object"}


def test_times_are_stored_in_utc_with_microseconds() -> None:
    record = prepare_batch("acme", [{**GOOD, "occurred_at": "2026-11-03T23:30:00.5-02:00"}])[0].record
    assert record["occurred_at"] == "2026-11-04T01:30:00.500000Z"


def test_a_year_before_1000_keeps_its_four_digits() -> None:
    for sent in ("0005-01-01T00:00:00Z", "0005-01-01T00:00:00.000000Z"):
        prepared = prepare_batch("acme", [{**GOOD, "occurred_at": sent}])[0]
        assert prepared.record["occurred_at"] == "0005-01-01T00:00:00.000000Z"
        assert b'"occurred_at":"0005-01-01T00:00:00.000000Z"' in prepared.leaf_bytes(0)


def test_batch_errors_carry_the_index_of_each_bad_event() -> None:
    with pytest.raises(InvalidEvent) as caught:
        prepare_batch("acme", [GOOD, {**GOOD, "outcome": "maybe"}, GOOD, {**GOOD, "action": ""}])
    assert [(e.index, e.field) for e in caught.value.errors] == [(1, "outcome"), (3, "action")]


def test_a_batch_holds_at_most_1000_events() -> None:
    with pytest.raises(InvalidEvent, match="at most 1000"):
        prepare_batch("acme", [GOOD] * 1001)


def test_a_batch_of_server_ids_are_distinct_uuid7s_of_this_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ids = uuid7_batch(1000)
    after = time.time_ns() // 1_000_000
    made = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in made] == ids
    assert len(set(ids)) == 1000
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in made)
    assert before <= int.from_bytes(made[0].bytes[:6], "big") <= after
    assert {u.bytes[:6] for u in made} == {made[0].bytes[:6]}
    assert uuid7_batch(0) == []


def test_server_ids_are_uuid7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)
