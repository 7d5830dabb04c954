"""What the console's pages show, gathered from the facade: an event's fields in sections, an
actor's activity and sign-ins, an integration's connections and grants, and the record each
page view leaves in the log."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from trailkeeper.auditlog import AuditLog
from trailkeeper.query import Filter, Term
from trailkeeper.store.base import Record
from trailkeeper.web.render import actor_url, integration_url, run_url

log = logging.getLogger("trailkeeper.web")

RECENT: Final = 25
SIGN_INS: Final = 50
LIFECYCLE: Final = 200
_MAX_ID: Final = 256


# --- an event in sections -------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    value: object
    link: str | None = None
    code: bool = False


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[Field, ...]


_SHOWN_ELSEWHERE: Final = frozenset(
    {
        "id",
        "seq",
        "tenant",
        "occurred_at",
        "received_at",
        "category",
        "action",
        "outcome",
        "description",
        "actor",
        "targets",
        "integration",
        "workflow",
        "context",
        "metadata",
        "leaf_hash",
    }
)
_CODE: Final = frozenset({"id", "ip", "request_id", "trace_id", "session_id", "connection_id", "run_id"})


def event_fields(record: Record) -> list[Section]:
    """Every field of a record but its metadata and targets (shown as they are), in sections."""
    sections = [
        Section(
            "Event",
            _present(
                record,
                ("id", "occurred_at", "received_at", "category", "action", "outcome", "description"),
            ),
        ),
        Section("Actor", _part(record.get("actor"), {"id": actor_url})),
        Section("Integration", _part(record.get("integration"), {"provider": integration_url})),
        Section("Workflow", _part(record.get("workflow"), {"run_id": run_url})),
        Section("Context", _part(record.get("context"), {})),
        Section("Log", _present(record, ("tenant", "seq", "leaf_hash"))),
    ]
    others = tuple(Field(name, value) for name, value in record.items() if name not in _SHOWN_ELSEWHERE)
    if others:
        sections.append(Section("Other", others))
    return [section for section in sections if section.fields]


def _present(record: Mapping[str, Any], names: Sequence[str]) -> tuple[Field, ...]:
    return tuple(Field(name, record[name], code=name in _CODE) for name in names if name in record)


# Within a part, the fields people look for first come first; any other follows, by name.
_ORDER: Final = (
    "run_id", "type", "id", "name", "email", "provider", "connection_id", "trigger", "step",
    "ip", "location", "user_agent", "session_id", "request_id", "trace_id",
)  # fmt: skip


def _part(part: object, links: Mapping[str, Any]) -> tuple[Field, ...]:
    if not isinstance(part, Mapping):
        return ()
    names = sorted(part, key=lambda name: (_ORDER.index(name) if name in _ORDER else len(_ORDER), name))
    return tuple(
        Field(
            name,
            value,
            link=links[name](value) if name in links and isinstance(value, str) else None,
            code=name in _CODE,
        )
        for name, value in ((name, part[name]) for name in names)
    )


def run_subject(events: Sequence[Record]) -> str | None:
    """What a run was about: the first target of its first event (the deal, the lead)."""
    for record in events:
        for target in record.get("targets", ()):
            if target.get("type") not in ("workflow", "user"):
                return str(target.get("name") or target.get("id"))
    return None


# --- an actor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    ip: str
    sign_ins: int
    failures: int
    last_at: str
    location: str | None


@dataclass(frozen=True)
class ActorActivity:
    total: int
    by_outcome: dict[str, int]
    top_actions: list[tuple[str, int]]
    identity: Mapping[str, Any]
    recent: list[Record]
    sign_ins: list[Record]
    addresses: list[Address] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return self.by_outcome.get("failure", 0)


def actor_activity(audit_log: AuditLog, tenant: str, actor_id: str) -> ActorActivity:
    # A Term, not query text: an actor id is matched exactly, even one ending in '*'.
    only = Filter(terms=(Term("actor", actor_id),))
    by_outcome = {str(k): n for k, n in audit_log.store.count(tenant, only, "outcome") if k is not None}
    total = sum(by_outcome.values())
    if not total:
        return ActorActivity(0, {}, [], {}, [], [])
    actions = [(str(k), n) for k, n in audit_log.store.count(tenant, only, "action") if k is not None]
    recent = audit_log.search_filter(tenant, only, limit=RECENT).events
    auth = only.merge(Filter(terms=(Term("action", "auth.", prefix=True),)))
    sign_ins = audit_log.search_filter(tenant, auth, limit=SIGN_INS).events
    identity = recent[0]["actor"] if recent else {"id": actor_id}
    return ActorActivity(total, by_outcome, actions[:8], identity, recent, sign_ins, addresses(sign_ins))


def addresses(sign_ins: Sequence[Record]) -> list[Address]:
    """The IP addresses sign-ins came from, newest first, with their failures counted."""
    seen: dict[str, list[Record]] = {}
    for record in sign_ins:
        ip = record.get("context", {}).get("ip")
        if isinstance(ip, str):
            seen.setdefault(ip, []).append(record)
    return [
        Address(
            ip,
            len(records),
            sum(r.get("outcome") == "failure" for r in records),
            records[0]["occurred_at"],
            records[0].get("context", {}).get("location"),
        )
        for ip, records in seen.items()
    ]


# --- an integration -------------------------------------------------------------------------

_STATUS: Final = {
    "integration.connected": "connected",
    "integration.oauth.granted": "granted",
    "integration.oauth.revoked": "revoked",
    "integration.disconnected": "disconnected",
}
RETRIEVED: Final = "integration.data.retrieved"
REFRESHED: Final = "integration.oauth.refreshed"


@dataclass(frozen=True)
class Connection:
    id: str
    status: str
    since: str | None
    by: Mapping[str, Any] | None
    last_retrieval: str | None


@dataclass(frozen=True)
class IntegrationActivity:
    total: int
    by_action: list[tuple[str, int]]
    lifecycle: list[Record]
    retrievals: list[Record]
    connections: list[Connection]

    @property
    def retrieval_count(self) -> int:
        return dict(self.by_action).get(RETRIEVED, 0)


def integration_activity(audit_log: AuditLog, tenant: str, provider: str) -> IntegrationActivity:
    only = Filter(terms=(Term("integration", provider),))
    by_action = [(str(k), n) for k, n in audit_log.store.count(tenant, only, "action") if k is not None]
    total = sum(n for _, n in by_action)
    if not total:
        return IntegrationActivity(0, [], [], [], [])
    # Connections, grants and revocations: every integration action but the routine ones.
    lifecycle_filter = only.merge(
        Filter(
            terms=(
                Term("action", "integration.", prefix=True),
                Term("action", RETRIEVED, negated=True),
                Term("action", REFRESHED, negated=True),
            )
        )
    )
    lifecycle = audit_log.search_filter(tenant, lifecycle_filter, limit=LIFECYCLE).events
    retrieval_filter = only.merge(Filter(terms=(Term("action", RETRIEVED),)))
    retrievals = audit_log.search_filter(tenant, retrieval_filter, limit=RECENT).events
    return IntegrationActivity(total, by_action, lifecycle, retrievals, connections(lifecycle, retrievals))


def connections(lifecycle: Sequence[Record], retrievals: Sequence[Record]) -> list[Connection]:
    """Each connection's standing: its latest connect, grant, revocation or disconnection
    (both lists newest first), and its latest retrieval."""
    latest: dict[str, Record] = {}
    for record in lifecycle:
        connection = record.get("integration", {}).get("connection_id")
        if isinstance(connection, str) and record["action"] in _STATUS and connection not in latest:
            latest[connection] = record
    last_read: dict[str, str] = {}
    for record in retrievals:
        connection = record.get("integration", {}).get("connection_id")
        if isinstance(connection, str):
            last_read.setdefault(connection, record["occurred_at"])
    found = [
        Connection(
            connection,
            _STATUS[record["action"]] if record.get("outcome", "success") == "success" else "failed",
            record["occurred_at"],
            record.get("actor"),
            last_read.get(connection),
        )
        for connection, record in latest.items()
    ]
    found += [
        Connection(connection, "in use", None, None, at)
        for connection, at in last_read.items()
        if connection not in latest
    ]
    return sorted(found, key=lambda c: c.id)
