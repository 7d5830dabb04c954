"""Health, metrics, rate limits, the log of reads, and the error shape under bad input."""

from __future__ import annotations

import re
import sqlite3
import string
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.api.helpers import Api, event, record, search, settle

from trailkeeper import AuditLog
from trailkeeper.api.server import running
from trailkeeper.store.sqlite import SQLiteStore, open_sqlite


def test_healthz_needs_no_key(api: Api) -> None:
    response = api.client_with(None).get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


class BreakableStore(SQLiteStore):
    """A real SQLite store whose disk can be made to fail, as a full or lost disk does."""

    broken = False

    def _fail_if_broken(self) -> None:
        if self.broken:
            raise sqlite3.OperationalError("disk I/O error")

    def tenants(self) -> list[str]:
        self._fail_if_broken()
        return super().tenants()

    def get(self, tenant: str, event_id: str) -> dict[str, Any] | None:
        self._fail_if_broken()
        return super().get(tenant, event_id)


@pytest.fixture
def breakable(tmp_path: Path) -> Iterator[tuple[BreakableStore, AuditLog, str]]:
    store = open_sqlite(f"sqlite:///{tmp_path}/audit.db")
    store.__class__ = BreakableStore
    assert isinstance(store, BreakableStore)
    with AuditLog(store, key_dir=tmp_path / "keys") as log, running(log) as url:
        yield store, log, url


def test_healthz_is_503_when_the_store_fails(breakable: tuple[BreakableStore, AuditLog, str]) -> None:
    store, _, url = breakable
    assert httpx.get(f"{url}/healthz").status_code == 200
    store.broken = True

    response = httpx.get(f"{url}/healthz")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


def test_a_fault_of_the_server_is_a_500_in_the_error_shape_and_the_connection_lives_on(
    breakable: tuple[BreakableStore, AuditLog, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, log, url = breakable
    _, secret = log.create_key("acme", ["events:read"])
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
        store.broken = True
        failed = client.get("/v1/events/e1")
        store.broken = False
        after = client.get("/v1/events/e1")
        metrics = client.get("/metrics").text

    assert failed.status_code == 500
    assert failed.json()["error"] == {
        "code": "internal",
        "message": "internal error; the server log has the details",
        "details": None,
    }
    assert "disk I/O error" not in failed.text
    assert "disk I/O error" in caplog.text
    assert after.status_code == 404
    assert 'route="/v1/events/{id}",status="500"' in metrics


def test_metrics_count_requests_ingest_commits_and_tree_sizes(api: Api, tenant: str) -> None:
    client = api.client(tenant)
    record(client, event(), event())
    client.get("/v1/events/no-such-event")

    text = api.client_with(None).get("/metrics").text

    assert 'trailkeeper_http_requests_total{method="GET",route="/v1/events/{id}",status="404"}' in text
    assert 'trailkeeper_http_requests_total{method="POST",route="/v1/events",status="201"}' in text
    assert re.search(rf'trailkeeper_events_ingested_total{{tenant="{tenant}"}} 2\.0', text)
    assert "trailkeeper_commit_seconds_bucket{le=" in text
    assert re.search(rf'trailkeeper_tree_size{{tenant="{tenant}"}} \d+', text)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[AuditLog, str]]:
    log = AuditLog.open(f"sqlite:///{tmp_path}/audit.db", key_dir=tmp_path / "keys")
    with log, running(log, rate_limit=0.5, burst=3) as url:
        yield log, url


def test_key_over_its_rate_gets_429_with_retry_after(limited: tuple[AuditLog, str]) -> None:
    log, url = limited
    _, greedy = log.create_key("acme", ["events:read"])
    _, patient = log.create_key("acme", ["events:read"])
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {greedy}"}) as client:
        statuses = [client.get("/v1/stats").status_code for _ in range(4)]
        refused = client.get("/v1/stats")

    assert statuses[:3] == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) in (1, 2)
    # The limit is per key: another key of the same tenant is unaffected.
    assert httpx.get(f"{url}/v1/stats", headers={"Authorization": f"Bearer {patient}"}).status_code == 200


def test_every_read_is_recorded_in_the_tenants_log(api: Api, tenant: str) -> None:
    key, secret = api.log.create_key(tenant, ["events:read", "events:write"], name="reader one")
    client = api.client_with(secret)
    record(client, event(id="r1", workflow={"run_id": "run-r"}))
    client.get("/v1/events", params={"action": "auth.*", "limit": 5})
    client.get("/v1/events/r1")
    client.get("/v1/events/missing")
    client.get("/v1/workflow-runs/run-r")
    client.get("/v1/stats", params={"group_by": "outcome"})
    client.get("/v1/checkpoint")
    client.get("/v1/proofs/inclusion", params={"seq": 0, "tree_size": 1})
    client.get("/v1/proofs/consistency", params={"from": 1, "to": 2})
    client.get("/v1/public-key")
    settle(api.log, tenant)

    reads = search(client, include_audit=True, action="audit.log.read", order="asc")

    endpoints = [r["metadata"]["endpoint"] for r in reads]
    assert endpoints == [
        "GET /v1/events",
        "GET /v1/events/{id}",
        "GET /v1/events/{id}",
        "GET /v1/workflow-runs/{run_id}",
        "GET /v1/stats",
        "GET /v1/checkpoint",
        "GET /v1/proofs/inclusion",
        "GET /v1/proofs/consistency",
        "GET /v1/public-key",
    ]
    first = reads[0]
    assert first["category"] == "system"
    assert first["actor"] == {"type": "service", "id": key.id, "name": "reader one"}
    assert first["metadata"]["params"] == {"action": "auth.*", "limit": 5}
    assert first["metadata"]["results"] == 1
    assert first["context"]["ip"] == "127.0.0.1"
    found, missing = reads[1], reads[2]
    assert (found["outcome"], found["targets"]) == ("success", [{"type": "event", "id": "r1"}])
    assert (missing["outcome"], missing["metadata"]["error"]) == ("failure", "not_found")


def test_read_with_a_number_beyond_json_precision_is_still_recorded(api: Api, tenant: str) -> None:
    client = api.client(tenant)

    response = client.get("/v1/proofs/inclusion", params={"seq": 0, "tree_size": 2**60})
    settle(api.log, tenant)

    assert response.status_code == 400
    (read,) = search(client, include_audit=True, action="audit.log.read")
    assert read["metadata"]["params"] == {"seq": 0, "tree_size": str(2**60)}


def test_records_of_reads_are_searchable_like_any_event(api: Api, tenant: str) -> None:
    key, secret = api.log.create_key(tenant, ["events:read"])
    client = api.client_with(secret)
    client.get("/v1/events/looked-up")
    settle(api.log, tenant)

    by_target = search(client, include_audit=True, target="looked-up")
    by_words = search(client, include_audit=True, q=f"{key.id} action:audit.log.*")

    assert [r["action"] for r in by_target] == ["audit.log.read"]
    assert by_target[0]["id"] in {r["id"] for r in by_words}


def test_unknown_path_and_method_answer_in_the_error_shape(api: Api) -> None:
    client = api.client_with(None)

    missing = client.get("/v2/events")
    wrong_method = client.delete("/v1/events")

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == {
        "code": "method_not_allowed",
        "message": "Method Not Allowed",
        "details": None,
    }


@pytest.fixture(scope="module")
def prober(api: Api) -> httpx.Client:
    client = api.client("probed", ["admin"])
    record(client, event(id="known"))
    return client


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_params = st.dictionaries(
    st.sampled_from(
        [
            "q",
            "category",
            "action",
            "actor",
            "target",
            "outcome",
            "since",
            "until",
            "cursor",
            "limit",
            "order",
        ]
    ),
    _text | st.sampled_from(["*", "auth.*", "2026-01-01", "-1", "9" * 30, '"', "a:b:c", "after:"]),
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=_params)
def test_arbitrary_search_parameters_never_cause_a_server_error(
    prober: httpx.Client, params: dict[str, str]
) -> None:
    response = prober.get("/v1/events", params=params)

    assert response.status_code in (200, 400, 404), response.text
    assert set(response.json()) == ({"events", "next_cursor"} if response.status_code == 200 else {"error"})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
        max_leaves=10,
    ).map(lambda value: httpx.Request("POST", "/", json=value).content),
    content_type=st.sampled_from(["application/json", "application/x-ndjson", "text/plain"]),
)
def test_arbitrary_bodies_never_cause_a_server_error(
    prober: httpx.Client, body: bytes, content_type: str
) -> None:
    response = prober.post("/v1/events", content=body, headers={"Content-Type": content_type})

    assert response.status_code in (201, 400, 422), response.text
    assert "error" in response.json() or response.status_code == 201


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(string.printable, min_size=1, max_size=300))
def test_arbitrary_ids_and_run_ids_are_200_or_404(prober: httpx.Client, name: str) -> None:
    quoted = urllib.parse.quote(name, safe="")
    for path in (f"/v1/events/{quoted}", f"/v1/workflow-runs/{quoted}"):
        response = prober.get(path)
        assert response.status_code in (200, 400, 404), (path, response.text)
