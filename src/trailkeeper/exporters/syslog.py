"""Syslog export: one RFC 5424 message per line.

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [trailkeeper@32473 ...] MSG``

The facility is 10 (authpriv) for authentication events and 13 (log audit) for the rest;
the severity 4 (warning) for a failure and 6 (informational) otherwise. MSGID is the
action, the structured data the record's identity and main fields, MSG one readable
sentence. Purged records have no message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Final

from trailkeeper.exporters._record import (
    PRODUCT,
    Record,
    is_failure,
    is_purged,
    outcome,
    parse_time,
    part,
    summary,
    targets_text,
    text,
)
from trailkeeper.exporters._text import escape_text

# RFC 5424 section 6.2.1, table 1 (facilities) and table 2 (severities).
FACILITY_AUTHPRIV: Final = 10
FACILITY_LOG_AUDIT: Final = 13
SEVERITY_WARNING: Final = 4
SEVERITY_INFORMATIONAL: Final = 6
NILVALUE: Final = "-"
# RFC 5424 section 7.2.2: an SD-ID of our own is name@<private enterprise number>. 32473 is
# the number IANA reserves for documentation (RFC 5612).
SD_ID: Final = "trailkeeper@32473"
# Section 6.4: a message in UTF-8 starts with the BOM; pure ASCII may go without (MSG-ANY).
_BOM: Final = "\ufeff"
_MSGID_LENGTH: Final = 32


def priority(record: Record) -> int:
    """PRI (section 6.2.1): facility times 8 plus severity."""
    is_authentication = record.get("category") == "authentication"
    facility = FACILITY_AUTHPRIV if is_authentication else FACILITY_LOG_AUDIT
    severity = SEVERITY_WARNING if is_failure(record) else SEVERITY_INFORMATIONAL
    return facility * 8 + severity


def timestamp(record: Record) -> str:
    """Section 6.2.3: RFC 3339 in UTC, at most six fraction digits."""
    return parse_time(record["occurred_at"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def msgid(action: str) -> str:
    """Section 6.2.7: 1 to 32 printable US-ASCII characters, or the NILVALUE."""
    printable = "".join(char for char in action if "!" <= char <= "~")
    return printable[:_MSGID_LENGTH] or NILVALUE


def escape_param_value(value: str) -> str:
    """Section 6.3.3: '"', '\\' and ']' are escaped with a backslash; control characters
    get their backslash form as everywhere else."""
    return escape_text(value).replace('"', '\\"').replace("]", "\\]")


def structured_data(record: Record) -> str:
    actor = part(record, "actor")
    params = (
        ("tenant", text(record.get("tenant"))),
        ("seq", text(record.get("seq"))),
        ("id", text(record.get("id"))),
        ("category", text(record.get("category"))),
        ("action", text(record.get("action"))),
        ("outcome", outcome(record)),
        ("actor_type", text(actor.get("type"))),
        ("actor_id", text(actor.get("id"))),
        ("actor_name", text(actor.get("name"))),
        ("actor_email", text(actor.get("email"))),
        ("targets", targets_text(record)),
        ("ip", text(part(record, "context").get("ip"))),
        ("request_id", text(part(record, "context").get("request_id"))),
        ("workflow_run_id", text(part(record, "workflow").get("run_id"))),
        ("integration", text(part(record, "integration").get("provider"))),
    )
    pairs = "".join(f' {name}="{escape_param_value(value)}"' for name, value in params if value)
    return f"[{SD_ID}{pairs}]"


def message(record: Record) -> str:
    """MSG: the record's summary on one line, with the BOM when it is not pure ASCII."""
    msg = escape_text(summary(record))
    return msg if msg.isascii() else _BOM + msg


def line(record: Record) -> str:
    header = (
        f"<{priority(record)}>1",
        timestamp(record),
        NILVALUE,  # HOSTNAME: the export is not tied to the host that serves it
        PRODUCT,
        NILVALUE,  # PROCID
        msgid(text(record.get("action"))),
    )
    return f"{' '.join(header)} {structured_data(record)} {message(record)}\n"


def lines(records: Iterable[Record]) -> Iterator[str]:
    for record in records:
        if not is_purged(record):
            yield line(record)
