"""Keys, scopes and tenants: 401, 403, and 404 for anything of another tenant."""

from __future__ import annotations

import httpx
import pytest
from tests.api.helpers import Api, event, record

READ_PATHS = [
    "/v1/events",
    "/v1/events/some-id",
    "/v1/workflow-runs/some-run",
    "/v1/stats",
    "/v1/export",
    "/v1/checkpoint",
    "/v1/proofs/inclusion?seq=0&tree_size=1",
    "/v1/proofs/consistency?from=1&to=1",
    "/v1/public-key",
]


@pytest.mark.parametrize("path", READ_PATHS)
def test_request_without_a_key_is_401_with_a_bearer_challenge(api: Api, path: str) -> None:
    response = api.client_with(None).get(path)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="trailkeeper"'
    assert response.json()["error"]["code"] == "unauthorized"


def test_unknown_key_is_401_invalid_token(api: Api) -> None:
    response = api.client_with("tk_nope_nope").post("/v1/events", json=event())

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_other_authorization_scheme_is_401(api: Api, tenant: str) -> None:
    _, secret = api.log.create_key(tenant, ["admin"])
    client = api.client_with(None)

    response = client.get("/v1/events", headers={"Authorization": f"Basic {secret}"})

    assert response.status_code == 401


def test_revoked_key_is_refused_at_once(api: Api, tenant: str) -> None:
    key, secret = api.log.create_key(tenant, ["events:read"])
    client = api.client_with(secret)
    assert client.get("/v1/stats").status_code == 200

    api.log.revoke_key(key.id)

    assert client.get("/v1/stats").status_code == 401


def test_read_only_key_cannot_write(api: Api, tenant: str) -> None:
    response = api.client(tenant, ["events:read"]).post("/v1/events", json=event())

    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"required_scope": "events:write"}
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", READ_PATHS)
def test_write_only_key_cannot_read(api: Api, tenant: str, path: str) -> None:
    response = api.client(tenant, ["events:write"]).get(path)

    assert response.status_code == 403


def test_admin_key_may_read_and_write(api: Api, tenant: str) -> None:
    client = api.client(tenant, ["admin"])

    (ack,) = record(client, event(id="by-admin"))

    assert client.get("/v1/events/by-admin").json()["seq"] == ack["seq"]


def test_event_of_another_tenant_is_404(api: Api, tenant: str) -> None:
    record(api.client(tenant), event(id="secret-1"))
    other = api.client(tenant + "x")

    response = other.get("/v1/events/secret-1")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_workflow_run_of_another_tenant_is_404(api: Api, tenant: str) -> None:
    run = {"run_id": "run-secret"}
    record(api.client(tenant), event("workflow.started", category="workflow", workflow=run))

    assert api.client(tenant).get("/v1/workflow-runs/run-secret").status_code == 200
    assert api.client(tenant + "x").get("/v1/workflow-runs/run-secret").status_code == 404


def test_cursor_of_another_tenant_is_404(api: Api, tenant: str) -> None:
    owner = api.client(tenant)
    record(owner, *(event() for _ in range(3)))
    cursor = owner.get("/v1/events", params={"limit": 1}).json()["next_cursor"]
    assert cursor is not None

    response = api.client(tenant + "x").get("/v1/events", params={"limit": 1, "cursor": cursor})

    assert response.status_code == 404


def test_a_write_lands_in_the_keys_tenant_whatever_the_event_says(api: Api, tenant: str) -> None:
    # "tenant" is not a field a producer may send: it is the key's, always.
    response = api.client(tenant).post("/v1/events", json=event(tenant="someone-else"))

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "tenant"


def test_last_use_of_a_key_is_written_once_per_interval(api: Api, tenant: str) -> None:
    key, secret = api.log.create_key(tenant, ["events:read"])
    client = api.client_with(secret)

    client.get("/v1/stats")
    first = next(k for k in api.log.keys(tenant) if k.id == key.id).last_used_at
    client.get("/v1/stats")
    second = next(k for k in api.log.keys(tenant) if k.id == key.id).last_used_at

    assert first is not None
    assert second == first


def test_malformed_authorization_header_is_401_not_500(api: Api) -> None:
    client: httpx.Client = api.client_with(None)

    for header in ["Bearer", "Bearer  x", "Bearer " + "x" * 5000, "bearer\tx", "Bearer x y"]:
        response = client.get("/v1/events", headers={"Authorization": header})
        assert response.status_code == 401, header
