"""GET /v1/events with every filter, paging, workflow runs and counts."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from tests.api.helpers import Api, event, record, search

SEED = [
    event(
        id="e1",
        occurred_at="2026-01-01T10:00:00Z",
        actor={"type": "user", "id": "u_1", "name": "Ada"},
        context={"ip": "10.0.0.1"},
    ),
    event(
        id="e2",
        occurred_at="2026-01-02T10:00:00Z",
        outcome="failure",
        actor={"type": "user", "id": "u_2"},
        context={"ip": "10.0.0.2"},
    ),
    event(
        "crm.task.created",
        id="e3",
        category="integration",
        occurred_at="2026-01-03T10:00:00+02:00",
        actor={"type": "integration", "id": "sf-bot"},
        targets=[{"type": "task", "id": "T1"}],
        integration={"provider": "salesforce"},
    ),
    event(
        "workflow.step",
        id="e4",
        category="workflow",
        occurred_at="2026-01-04T10:00:00Z",
        actor={"type": "agent", "id": "a1"},
        workflow={"run_id": "r1"},
        description="sent the weekly digest",
    ),
    event(
        "config.changed",
        id="e5",
        category="user_activity",
        occurred_at="2026-01-05T10:00:00Z",
        targets=[{"type": "setting", "id": "sso"}],
        metadata={"setting": "sso enforced"},
    ),
]


@pytest.fixture(scope="module")
def seeded(api: Api) -> httpx.Client:
    client = api.client("search-seeded")
    record(client, *SEED)
    return client


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in events]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "authentication"}, {"e1", "e2"}),
        ({"action": "auth.*"}, {"e1", "e2"}),
        ({"action": "crm.task.created"}, {"e3"}),
        ({"actor": "u_1"}, {"e1", "e5"}),
        ({"actor": "u_*"}, {"e1", "e2", "e5"}),
        ({"actor_type": "agent"}, {"e4"}),
        ({"target": "T1"}, {"e3"}),
        ({"target_type": "setting"}, {"e5"}),
        ({"outcome": "failure"}, {"e2"}),
        ({"integration": "salesforce"}, {"e3"}),
        ({"workflow_run": "r1"}, {"e4"}),
        ({"ip": "10.0.0.2"}, {"e2"}),
        ({"since": "2026-01-03"}, {"e3", "e4", "e5"}),
        ({"since": "2026-01-03T08:00:01Z"}, {"e4", "e5"}),
        ({"since": "2026-01-03T08:00:00Z"}, {"e3", "e4", "e5"}),
        ({"until": "2026-01-02"}, {"e1"}),
        ({"until": "2026-01-02T10:00:00Z"}, {"e1"}),
        ({"since": "2026-01-02", "until": "2026-01-04T10:00:00Z"}, {"e2", "e3"}),
        ({"q": "action:auth.* outcome:failure"}, {"e2"}),
        ({"q": "-actor_type:user -category:system"}, {"e3", "e4"}),
        ({"q": "digest"}, {"e4"}),
        ({"q": '"sso enforced"'}, {"e5"}),
        ({"q": "Ada"}, {"e1"}),
        ({"q": "before:2026-01-02"}, {"e1"}),
        ({"q": "after:2026-01-05 -category:system"}, {"e5"}),
        ({"q": "category:authentication", "actor": "u_2"}, {"e2"}),
    ],
)
def test_each_filter_selects_exactly_its_events(
    seeded: httpx.Client, params: dict[str, Any], expected: set[str]
) -> None:
    assert set(ids(search(seeded, **params))) == expected


def test_results_are_newest_first_unless_asc(seeded: httpx.Client) -> None:
    newest_first = ids(search(seeded, q="-category:system"))
    oldest_first = ids(search(seeded, q="-category:system", order="asc"))

    assert newest_first == ["e5", "e4", "e3", "e2", "e1"]
    assert oldest_first == newest_first[::-1]


def test_stored_time_is_utc_with_microseconds(seeded: httpx.Client) -> None:
    assert seeded.get("/v1/events/e3").json()["occurred_at"] == "2026-01-03T08:00:00.000000Z"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "action:"}, None),
        ({"q": '"unclosed'}, None),
        ({"since": "yesterday"}, "since"),
        ({"category": "nonsense"}, "category"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"categroy": "system"}, "categroy"),
    ],
)
def test_malformed_parameters_are_400_naming_what_is_wrong(
    seeded: httpx.Client, params: dict[str, str], field: str | None
) -> None:
    response = seeded.get("/v1/events", params=params)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if field is None:
        assert error["code"] == "invalid_query"
        assert "position" in error["details"]
    else:
        assert error["details"]["field"] == field


def test_limit_cuts_a_page_and_the_cursor_continues_it(seeded: httpx.Client) -> None:
    first = seeded.get("/v1/events", params={"q": "-category:system", "limit": 2}).json()
    second = seeded.get(
        "/v1/events", params={"q": "-category:system", "limit": 2, "cursor": first["next_cursor"]}
    ).json()

    assert ids(first["events"]) == ["e5", "e4"]
    assert ids(second["events"]) == ["e3", "e2"]


def test_forged_cursor_is_400(seeded: httpx.Client) -> None:
    cursor = seeded.get("/v1/events", params={"limit": 1}).json()["next_cursor"]
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    payload["k"] = [10**30, 1]
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()

    response = seeded.get("/v1/events", params={"limit": 1, "cursor": forged})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "cursor"


def test_cursor_of_one_order_is_refused_for_the_other(seeded: httpx.Client) -> None:
    cursor = seeded.get("/v1/events", params={"limit": 1}).json()["next_cursor"]

    response = seeded.get("/v1/events", params={"limit": 1, "cursor": cursor, "order": "asc"})

    assert response.status_code == 400


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_paging_while_events_arrive_never_skips_or_repeats(client: httpx.Client, order: str) -> None:
    days = [f"2026-02-{day:02d}T12:00:00Z" for day in range(1, 26)]
    record(client, *(event(id=f"p{i}", occurred_at=at) for i, at in enumerate(days)))
    seen: list[str] = []
    cursor = None
    late = 0
    while True:
        params: dict[str, Any] = {"action": "auth.login", "limit": 7, "order": order}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/events", params=params).json()
        seen.extend(ids(page["events"]))
        # New events land on both sides of where the walk stands.
        record(
            client,
            event(id=f"late-old-{late}", occurred_at="2026-01-15T00:00:00Z"),
            event(id=f"late-new-{late}", occurred_at="2026-03-15T00:00:00Z"),
        )
        late += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    expected = [f"p{i}" for i in range(25)]
    assert seen == (expected[::-1] if order == "desc" else expected)


def test_workflow_run_lists_its_events_oldest_first_with_a_summary(client: httpx.Client) -> None:
    run = {"run_id": "run-7", "name": "Pipeline sync", "trigger": "schedule"}
    record(
        client,
        event(
            "workflow.completed",
            id="w3",
            category="workflow",
            occurred_at="2026-03-01T10:05:00Z",
            workflow=run,
        ),
        event(
            "workflow.started", id="w1", category="workflow", occurred_at="2026-03-01T10:00:00Z", workflow=run
        ),
        event(
            "crm.sync.failed",
            id="w2",
            category="workflow",
            outcome="failure",
            occurred_at="2026-03-01T10:02:00Z",
            workflow={**run, "step": "fetch"},
            description="rate limited by the CRM",
        ),
        event("workflow.started", id="other", category="workflow", workflow={"run_id": "run-8"}),
    )

    body = client.get("/v1/workflow-runs/run-7").json()

    assert body["run_id"] == "run-7"
    assert ids(body["events"]) == ["w1", "w2", "w3"]
    summary = body["summary"]
    assert summary["trigger"] == "schedule"
    assert summary["started_at"] == "2026-03-01T10:00:00.000000Z"
    assert summary["ended_at"] == "2026-03-01T10:05:00.000000Z"
    assert summary["outcome"] == "failure"
    assert summary["counts"] == {"workflow.started": 1, "crm.sync.failed": 1, "workflow.completed": 1}
    (failure,) = summary["failures"]
    assert (failure["id"], failure["step"]) == ("w2", "fetch")


def test_workflow_run_id_may_hold_a_slash(client: httpx.Client) -> None:
    record(client, event("workflow.started", category="workflow", workflow={"run_id": "team/a/42"}))

    response = client.get("/v1/workflow-runs/team%2Fa%2F42")

    assert response.status_code == 200
    assert response.json()["run_id"] == "team/a/42"


def test_unknown_workflow_run_is_404(client: httpx.Client) -> None:
    assert client.get("/v1/workflow-runs/no-such-run").status_code == 404


def counts(client: httpx.Client, group_by: str, **params: str) -> dict[Any, int]:
    response = client.get("/v1/stats", params={"group_by": group_by, "q": "-category:system", **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["group_by"] == group_by
    assert body["total"] == sum(c["count"] for c in body["counts"])
    return {c["key"]: c["count"] for c in body["counts"]}


def test_stats_count_by_each_grouping(seeded: httpx.Client) -> None:
    assert counts(seeded, "category") == {
        "authentication": 2,
        "integration": 1,
        "workflow": 1,
        "user_activity": 1,
    }
    assert counts(seeded, "action")["auth.login"] == 2
    assert counts(seeded, "actor") == {"u_1": 2, "u_2": 1, "sf-bot": 1, "a1": 1}
    assert counts(seeded, "outcome") == {"success": 4, "failure": 1}
    assert counts(seeded, "integration") == {"salesforce": 1, None: 4}
    assert counts(seeded, "day") == {
        "2026-01-01T00:00:00.000000Z": 1,
        "2026-01-02T00:00:00.000000Z": 1,
        "2026-01-03T00:00:00.000000Z": 1,
        "2026-01-04T00:00:00.000000Z": 1,
        "2026-01-05T00:00:00.000000Z": 1,
    }
    assert counts(seeded, "hour", since="2026-01-05")["2026-01-05T10:00:00.000000Z"] == 1


def test_stats_take_the_filters_of_search(seeded: httpx.Client) -> None:
    assert counts(seeded, "outcome", action="auth.*") == {"success": 1, "failure": 1}


def test_stats_group_by_outside_the_list_is_400(seeded: httpx.Client) -> None:
    response = seeded.get("/v1/stats", params={"group_by": "colour"})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "group_by"
