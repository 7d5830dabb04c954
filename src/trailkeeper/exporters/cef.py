"""CEF export: ArcSight Common Event Format, one event per line.

``CEF:0|trailkeeper|trailkeeper|<version>|<action>|<title>|<severity>|<extension>``

Escaping follows the CEF specification: in the header a backslash and a pipe are escaped
with a backslash; in extension values a backslash and an equals sign are, and a newline or
carriage return is written ``\\n`` or ``\\r``. CEF names no escape for other control
characters, so they take the same backslash form (``\\x1b``, ``\\u2028``) and stay text.
Purged records have no event.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Final

from trailkeeper.exporters._record import (
    PRODUCT,
    PRODUCT_VERSION,
    Record,
    epoch_ms,
    is_failure,
    is_purged,
    outcome,
    part,
    targets_text,
    text,
    title,
)
from trailkeeper.exporters._text import escape_text

# CEF severity runs 0-10 (0-3 low, 4-6 medium); a failure asks someone to look.
SEVERITY_FAILURE: Final = 5
SEVERITY_OTHER: Final = 3


def escape_header(value: str) -> str:
    return escape_text(value).replace("|", "\\|")


def escape_extension(value: str) -> str:
    return escape_text(value).replace("=", "\\=")


def _ip_keys(ip: str) -> tuple[str, str] | None:
    """``src`` holds an IPv4 address; CEF puts an IPv6 source in ``c6a2``."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return ("src", ip) if address.version == 4 else ("c6a2", ip)


def _labelled(record: Record) -> Iterator[tuple[str, str]]:
    """The custom string fields, each with its label (``cs1Label``/``cs1``...)."""
    custom = (
        ("tenant", text(record.get("tenant"))),
        ("workflowRunId", text(part(record, "workflow").get("run_id"))),
        ("integrationProvider", text(part(record, "integration").get("provider"))),
        ("targets", targets_text(record)),
        ("actorType", text(part(record, "actor").get("type"))),
        ("requestId", text(part(record, "context").get("request_id"))),
    )
    for number, (label, value) in enumerate(custom, start=1):
        if value:
            yield f"cs{number}Label", label
            yield f"cs{number}", value


def extension(record: Record) -> list[tuple[str, str]]:
    """The extension's key-value pairs, unescaped, in a fixed order."""
    actor = part(record, "actor")
    context = part(record, "context")
    fields: list[tuple[str, str]] = [
        # rt is the time SIEMs index an event by: when it happened, not when it was stored.
        ("rt", str(epoch_ms(record["occurred_at"]))),
        ("externalId", text(record.get("id"))),
        ("cat", text(record.get("category"))),
        ("act", text(record.get("action"))),
        ("outcome", outcome(record)),
        ("suid", text(actor.get("id"))),
        ("suser", text(actor.get("name")) or text(actor.get("email"))),
    ]
    ip = _ip_keys(text(context.get("ip")))
    if ip is not None:
        fields.append(ip)
    fields.append(("requestClientApplication", text(context.get("user_agent"))))
    fields.extend(_labelled(record))
    if "seq" in record:
        fields += [("cn1Label", "seq"), ("cn1", text(record["seq"]))]
    fields.append(("msg", text(record.get("description"))))
    return [(key, value) for key, value in fields if value]


def line(record: Record) -> str:
    severity = SEVERITY_FAILURE if is_failure(record) else SEVERITY_OTHER
    header = (PRODUCT, PRODUCT, PRODUCT_VERSION, text(record.get("action")), title(record))
    pairs = " ".join(f"{key}={escape_extension(value)}" for key, value in extension(record))
    # "CEF:0" is the format's own prefix, not a value: it is never escaped.
    return "|".join(["CEF:0", *map(escape_header, header), str(severity), pairs]) + "\n"


def lines(records: Iterable[Record]) -> Iterator[str]:
    for record in records:
        if not is_purged(record):
            yield line(record)
