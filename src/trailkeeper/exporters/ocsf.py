"""OCSF export: one OCSF 1.3.0 event object per line (NDJSON).

The class and activity come from the event catalogue (:func:`trailkeeper.catalogue.
ocsf_class_for`). Every event has the base attributes (class, category, activity,
``type_uid``, ``time``, severity, status, ``metadata``), the actor as ``actor.user``, the
source IP and user agent, and the attributes its class requires (``user`` for
Authentication and Account Change, ``entity`` for Entity Management, ``api`` for API
Activity, ``web_resources``, ``email``, ``app``). What has no place in OCSF (workflow,
integration, targets, metadata, and the rest of the context) is kept under ``unmapped``.
Purged records have no event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from trailkeeper.catalogue import (
    ACCOUNT_CHANGE,
    API_ACTIVITY,
    APPLICATION_LIFECYCLE,
    AUTHENTICATION_CLASS,
    EMAIL_ACTIVITY,
    ENTITY_MANAGEMENT,
    OCSF_VERSION,
    OTHER_ACTIVITY,
    WEB_RESOURCES_ACTIVITY,
)
from trailkeeper.exporters._record import (
    PRODUCT,
    PRODUCT_VERSION,
    Record,
    epoch_ms,
    is_failure,
    is_purged,
    ocsf_type,
    outcome,
    part,
    text,
    title,
)
from trailkeeper.exporters._text import json_text, sorted_json

# status_id: 0 Unknown, 1 Success, 2 Failure, 99 Other (then named by status).
_STATUS: Final[Mapping[str, tuple[int, str]]] = {
    "success": (1, "Success"),
    "failure": (2, "Failure"),
    "pending": (99, "Pending"),
    "unknown": (0, "Unknown"),
}
# severity_id: 1 Informational; a failure asks someone to look, hence 3 Medium.
_INFORMATIONAL: Final = (1, "Informational")
_MEDIUM: Final = (3, "Medium")
# user type_id: 0 Unknown, 1 User, 2 Admin, 3 System, 99 Other (then named by type).
_USER_TYPES: Final[Mapping[str, tuple[int, str]]] = {
    "user": (1, "User"),
    "system": (3, "System"),
    "agent": (99, "Agent"),
    "integration": (99, "Integration"),
    "service": (99, "Service"),
}
# auth_protocol_id of the Authentication class, from the catalogue's metadata.protocol.
_AUTH_PROTOCOLS: Final[Mapping[str, tuple[int, str]]] = {
    "oidc": (4, "OpenID"),
    "saml": (5, "SAML"),
    "oauth2": (6, "OAUTH 2.0"),
}
# Context fields that have a place in OCSF; the others go to unmapped.
_MAPPED_CONTEXT: Final = ("ip", "user_agent", "request_id", "session_id")


def _present(**fields: Any) -> dict[str, Any]:
    """Only the fields with a value: OCSF leaves out what is not known."""
    return {key: value for key, value in fields.items() if value not in (None, "", {}, [])}


def _user(fields: Mapping[str, Any]) -> dict[str, Any]:
    type_id, type_name = _USER_TYPES.get(text(fields.get("type")), (0, "Unknown"))
    return _present(
        uid=fields.get("id"),
        name=fields.get("name"),
        email_addr=fields.get("email"),
        type=type_name if "type" in fields else None,
        type_id=type_id if "type" in fields else None,
    )


def _resources(record: Record) -> list[dict[str, Any]]:
    return [
        _present(uid=target.get("id"), name=target.get("name"), type=target.get("type"))
        for target in record.get("targets") or ()
    ]


def _entity(record: Record) -> dict[str, Any]:
    resources = _resources(record)
    if resources:
        return resources[0]
    integration = part(record, "integration")
    if integration:
        return _present(
            uid=integration.get("connection_id"),
            name=integration.get("provider"),
            type="integration",
        )
    return {"name": text(record.get("action"))}


def _class_attributes(record: Record, class_uid: int) -> dict[str, Any]:
    """The attributes a class requires beyond the base event."""
    actor_user = _user(part(record, "actor"))
    metadata = part(record, "metadata")
    if class_uid == AUTHENTICATION_CLASS:
        protocol = _AUTH_PROTOCOLS.get(text(metadata.get("protocol")).lower())
        if protocol is None:
            return {"user": actor_user}
        return {"user": actor_user, "auth_protocol_id": protocol[0], "auth_protocol": protocol[1]}
    if class_uid == ACCOUNT_CHANGE:
        users = [t for t in record.get("targets") or () if t.get("type") == "user"]
        return {"user": _user({**users[0], "type": "user"}) if users else actor_user}
    if class_uid == ENTITY_MANAGEMENT:
        return {"entity": _entity(record)}
    if class_uid == API_ACTIVITY:
        provider = part(record, "integration").get("provider")
        api = _present(operation=record.get("action"), service=_present(name=provider))
        return _present(api=api, resources=_resources(record))
    if class_uid == WEB_RESOURCES_ACTIVITY:
        return {"web_resources": _resources(record) or [{"name": title(record)}]}
    if class_uid == EMAIL_ACTIVITY:
        # direction_id 2: outbound, the platform sent it.
        email = _present(to=[metadata["destination"]] if metadata.get("destination") else None)
        return {"direction_id": 2, "direction": "Outbound", "email": email}
    if class_uid == APPLICATION_LIFECYCLE:
        return {"app": {"name": PRODUCT, "vendor_name": PRODUCT, "version": PRODUCT_VERSION}}
    return {}


def _unmapped(record: Record) -> dict[str, Any]:
    context = part(record, "context")
    rest_of_context = {k: v for k, v in context.items() if k not in _MAPPED_CONTEXT}
    return _present(
        category=record.get("category"),
        action=record.get("action"),
        outcome=record.get("outcome"),
        actor_type=part(record, "actor").get("type"),
        targets=record.get("targets"),
        integration=record.get("integration"),
        workflow=record.get("workflow"),
        context=rest_of_context,
        metadata=sorted_json(record["metadata"]) if "metadata" in record else None,
    )


def event(record: Record) -> dict[str, Any]:
    """The OCSF event of a stored record."""
    ocsf = ocsf_type(record)
    status_id, status = _STATUS.get(outcome(record), (99, outcome(record)))
    severity_id, severity = _MEDIUM if is_failure(record) else _INFORMATIONAL
    context = part(record, "context")
    workflow = part(record, "workflow")
    actor = _present(user=_user(part(record, "actor")), session=_present(uid=context.get("session_id")))
    metadata = _present(
        version=OCSF_VERSION,
        product={"name": PRODUCT, "vendor_name": PRODUCT, "version": PRODUCT_VERSION},
        uid=record.get("id"),
        log_name=record.get("tenant"),
        sequence=record.get("seq"),
        logged_time=epoch_ms(record["received_at"]) if "received_at" in record else None,
        # The run ties together every event a workflow run recorded.
        correlation_uid=workflow.get("run_id"),
    )
    return _present(
        class_uid=ocsf.class_uid,
        class_name=ocsf.class_name,
        category_uid=ocsf.category_uid,
        category_name=ocsf.category_name,
        activity_id=ocsf.activity_id,
        # Activity 99 "Other" is named by the source: our title of the action.
        activity_name=title(record) if ocsf.activity_id == OTHER_ACTIVITY else ocsf.activity_name,
        type_uid=ocsf.type_uid,
        type_name=ocsf.type_name,
        time=epoch_ms(record["occurred_at"]),
        severity_id=severity_id,
        severity=severity,
        status_id=status_id,
        status=status,
        message=record.get("description"),
        actor=actor,
        src_endpoint=_present(ip=context.get("ip")),
        http_request=_present(user_agent=context.get("user_agent"), uid=context.get("request_id")),
        metadata=metadata,
        **_class_attributes(record, ocsf.class_uid),
        unmapped=_unmapped(record),
    )


def line(record: Record) -> str:
    return json_text(event(record)) + "\n"


def lines(records: Iterable[Record]) -> Iterator[str]:
    for record in records:
        if not is_purged(record):
            yield line(record)
