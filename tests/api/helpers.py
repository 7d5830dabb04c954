"""What the tests of the HTTP API share: valid events, keys, and the calls they repeat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from trailkeeper import AuditLog


def event(action: str = "auth.login", **fields: Any) -> dict[str, Any]:
    """A valid event; ``fields`` override or add to it."""
    base: dict[str, Any] = {
        "category": "authentication",
        "action": action,
        "actor": {"type": "user", "id": "u_1"},
    }
    base.update(fields)
    return base


@dataclass
class Api:
    """The server under test, and keys to talk to it with."""

    url: str
    log: AuditLog
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, tenant: str, scopes: Sequence[str] = ("events:read", "events:write")) -> httpx.Client:
        _, secret = self.log.create_key(tenant, list(scopes))
        return self.client_with(secret)

    def client_with(self, secret: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=10)
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()


def open_log(directory: Path) -> AuditLog:
    return AuditLog.open(f"sqlite:///{directory}/audit.db", key_dir=directory / "keys")


def settle(log: AuditLog, tenant: str) -> None:
    """Wait until the records the service queued about its reads are committed: the writer
    commits in order, so an empty batch queued now is done only after all of them."""
    log.record_later(tenant, []).result(timeout=10)


def record(client: httpx.Client, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """POST events; return what was acknowledged (id and seq of each)."""
    response = client.post("/v1/events", json={"events": list(events)})
    assert response.status_code == 201, response.text
    acknowledged: list[dict[str, Any]] = response.json()["events"]
    return acknowledged


def search(client: httpx.Client, *, include_audit: bool = False, **params: Any) -> list[dict[str, Any]]:
    """Every event of a search, over all pages, leaving out the log's own records (of reads
    and keys) unless ``include_audit``."""
    params.setdefault("limit", 1000)
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = client.get("/v1/events", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(e for e in page["events"] if include_audit or not e["action"].startswith("audit."))
        cursor = page["next_cursor"]
        if cursor is None:
            return found
