"""Search, paging, runs and stats: what every store must answer alike."""

from __future__ import annotations

from typing import Any

import pytest

from trailkeeper import AuditLog, InvalidArgument, NotFound, QueryError


def event(action: str, minute: int, **extra: Any) -> dict[str, Any]:
    category = {
        "auth": "authentication",
        "assistant": "user_activity",
        "integration": "integration",
        "workflow": "workflow",
        "alert": "workflow",
        "crm": "workflow",
    }[action.split(".")[0]]
    base: dict[str, Any] = {
        "category": category,
        "action": action,
        "occurred_at": f"2026-11-03T10:{minute:02d}:00Z",
        "actor": {"type": "user", "id": "u_jane", "name": "Jane Doe"},
    }
    base.update(extra)
    return base


@pytest.fixture
def seeded(log: AuditLog) -> AuditLog:
    log.record_many(
        "acme",
        [
            event("auth.login.failed", 0, outcome="failure", context={"ip": "203.0.113.9"}),
            event("auth.login.failed", 1, outcome="failure", context={"ip": "203.0.113.9"}),
            event("auth.login.succeeded", 2, context={"ip": "198.51.100.4"}),
            event("assistant.query.submitted", 3, description="Which deals stalled this quarter?"),
            event(
                "integration.data.retrieved",
                4,
                actor={"type": "integration", "id": "sf-1"},
                integration={"provider": "salesforce", "connection_id": "c1"},
                targets=[{"type": "crm_object", "id": "opportunity", "name": "Opportunities"}],
                metadata={"records": 120, "object": "Opportunity"},
            ),
            event(
                "workflow.started",
                5,
                actor={"type": "agent", "id": "agent-7"},
                workflow={"run_id": "run-1", "name": "Stalled deals", "trigger": "deal stalled 14 days"},
            ),
            event(
                "crm.task.created",
                6,
                actor={"type": "agent", "id": "agent-7"},
                workflow={"run_id": "run-1", "step": "task"},
                targets=[{"type": "deal", "id": "deal-9", "name": "Initech renewal"}],
            ),
            event(
                "alert.sent",
                7,
                actor={"type": "agent", "id": "agent-7"},
                outcome="failure",
                workflow={"run_id": "run-1", "step": "slack"},
                integration={"provider": "slack"},
                description="Slack channel not found",
            ),
            event(
                "workflow.failed",
                8,
                actor={"type": "agent", "id": "agent-7"},
                outcome="failure",
                workflow={"run_id": "run-1"},
            ),
        ],
    )
    log.record("globex", **event("auth.login.failed", 0, outcome="failure"))
    return log


def actions(page_events: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in page_events]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action:auth.login.failed", ["auth.login.failed", "auth.login.failed"]),
        ("action:auth.*", ["auth.login.succeeded", "auth.login.failed", "auth.login.failed"]),
        ("category:workflow outcome:failure", ["workflow.failed", "alert.sent"]),
        ("actor:sf-1", ["integration.data.retrieved"]),
        ("actor_type:integration", ["integration.data.retrieved"]),
        ("integration:salesforce", ["integration.data.retrieved"]),
        ("integration:sl*", ["alert.sent"]),
        ("workflow_run:run-1", ["workflow.failed", "alert.sent", "crm.task.created", "workflow.started"]),
        ("ip:203.0.113.9", ["auth.login.failed", "auth.login.failed"]),
        ("target:deal-9", ["crm.task.created"]),
        ("target_type:crm_object", ["integration.data.retrieved"]),
        ("-target:deal-9 category:workflow", ["workflow.failed", "alert.sent", "workflow.started"]),
        ("-target_type:crm_object actor_type:integration", []),
        ("-actor_type:user -actor_type:agent", ["integration.data.retrieved"]),
        ("-integration:slack category:workflow", ["workflow.failed", "crm.task.created", "workflow.started"]),
        ("stalled", ["workflow.started", "assistant.query.submitted"]),
        ('"channel not found"', ["alert.sent"]),
        ("Opportunity", ["integration.data.retrieved"]),
        ("Initech", ["crm.task.created"]),
        ("after:2026-11-03T10:06:00Z before:2026-11-03T10:08:00Z", ["alert.sent", "crm.task.created"]),
        ("before:2026-11-03", []),
    ],
)
def test_query_finds_exactly_the_matching_events(seeded: AuditLog, query: str, expected: list[str]) -> None:
    assert actions(seeded.search("acme", query).events) == expected


def test_explicit_filters_combine_with_the_query(seeded: AuditLog) -> None:
    page = seeded.search("acme", "outcome:failure", category="authentication", since="2026-11-03T10:01:00Z")
    assert [e["occurred_at"][11:16] for e in page.events] == ["10:01"]


def test_since_is_inclusive_and_until_exclusive(seeded: AuditLog) -> None:
    page = seeded.search("acme", since="2026-11-03T10:02:00Z", until="2026-11-03T10:04:00Z")
    assert [e["occurred_at"][11:16] for e in page.events] == ["10:03", "10:02"]


def test_order_asc_is_oldest_first(seeded: AuditLog) -> None:
    events = seeded.search("acme", order="asc").events
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)


def test_other_tenants_events_are_never_returned(seeded: AuditLog) -> None:
    assert len(seeded.search("globex").events) == 1
    acme_id = seeded.search("acme", limit=1).events[0]["id"]
    assert seeded.get("globex", acme_id) is None


def test_malformed_query_points_at_the_fault(seeded: AuditLog) -> None:
    with pytest.raises(QueryError) as caught:
        seeded.search("acme", "outcome:failure colour:red")
    assert caught.value.position == 16


def test_limit_out_of_range_is_refused(seeded: AuditLog) -> None:
    with pytest.raises(InvalidArgument, match="limit"):
        seeded.search("acme", limit=0)


def test_paging_never_skips_or_repeats_while_events_arrive(log: AuditLog) -> None:
    log.record_many("acme", [event("auth.login.succeeded", m % 60) for m in range(250)])
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = log.search("acme", limit=30, cursor=cursor)
        seen.extend(e["seq"] for e in page.events)
        # New events arrive between pages, some in the past, some in the future.
        log.record_many("acme", [event("auth.login.succeeded", 30), event("auth.login.failed", 59)])
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 9
    assert sorted(seen) == list(range(250))
    assert len(seen) == len(set(seen))


def test_cursor_of_another_tenant_is_refused(seeded: AuditLog) -> None:
    page = seeded.search("acme", limit=2)
    assert page.next_cursor is not None
    with pytest.raises(NotFound):
        seeded.search("globex", limit=2, cursor=page.next_cursor)


def test_garbled_cursor_is_a_clear_error(seeded: AuditLog) -> None:
    with pytest.raises(InvalidArgument, match="cursor"):
        seeded.search("acme", cursor="not-a-cursor")


def test_workflow_run_tells_what_the_run_did(seeded: AuditLog) -> None:
    run = seeded.workflow_run("acme", "run-1")
    assert actions(run["events"]) == ["workflow.started", "crm.task.created", "alert.sent", "workflow.failed"]
    summary = run["summary"]
    assert summary["trigger"] == "deal stalled 14 days"
    assert summary["started_at"] == "2026-11-03T10:05:00.000000Z"
    assert summary["ended_at"] == "2026-11-03T10:08:00.000000Z"
    assert summary["outcome"] == "failure"
    assert summary["counts"] == {
        "workflow.started": 1,
        "crm.task.created": 1,
        "alert.sent": 1,
        "workflow.failed": 1,
    }
    assert [f["action"] for f in summary["failures"]] == ["alert.sent", "workflow.failed"]


def test_unknown_workflow_run_is_not_found(seeded: AuditLog) -> None:
    with pytest.raises(NotFound):
        seeded.workflow_run("globex", "run-1")


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("outcome", {"failure": 4, "success": 5}),
        ("category", {"authentication": 3, "user_activity": 1, "integration": 1, "workflow": 4}),
        ("integration", {None: 7, "salesforce": 1, "slack": 1}),
        ("actor", {"u_jane": 4, "agent-7": 4, "sf-1": 1}),
        ("hour", {"2026-11-03T10:00:00.000000Z": 9}),
        ("day", {"2026-11-03T00:00:00.000000Z": 9}),
    ],
)
def test_stats_count_per_group(seeded: AuditLog, group_by: str, expected: dict[str | None, int]) -> None:
    stats = seeded.stats("acme", group_by=group_by)
    assert {c["key"]: c["count"] for c in stats["counts"]} == expected
    assert stats["total"] == 9


def test_stats_take_the_same_filters_as_search(seeded: AuditLog) -> None:
    stats = seeded.stats("acme", "action:auth.*", group_by="action")
    assert {c["key"]: c["count"] for c in stats["counts"]} == {
        "auth.login.failed": 2,
        "auth.login.succeeded": 1,
    }


def test_unknown_group_is_refused(seeded: AuditLog) -> None:
    with pytest.raises(InvalidArgument, match="group_by"):
        seeded.stats("acme", group_by="colour")


def test_text_reaches_every_string_and_number_nested_in_metadata(log: AuditLog) -> None:
    log.record_many(
        "acme",
        [
            event(
                "integration.data.retrieved",
                0,
                metadata={"sync": {"objects": ["Contact", {"name": "Quillfeather"}], "pages": 7345}},
            ),
            event("integration.data.retrieved", 1, metadata={"flags": [True, None], "note": "plain"}),
        ],
    )
    for word in ("Contact", "Quillfeather", "7345"):
        assert [e["occurred_at"][11:16] for e in log.search("acme", word).events] == ["10:00"]
    assert log.search("acme", "true").events == []  # booleans and nulls are no text
    assert log.search("acme", "null").events == []
