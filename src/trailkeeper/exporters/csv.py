"""CSV export (RFC 4180): a header, then one row per record, in fixed columns.

Every record is exactly one line, even when its strings hold newlines: control characters
are written as backslash escapes (a backslash doubled), never left for quoting to carry.
A cell that a spreadsheet would take for a formula gets a leading ``'``, as OWASP's "CSV
Injection" page recommends. ``metadata`` is one cell of compact JSON, ``targets`` one cell
of ``type:id`` pairs joined by ``;``. Purged records have no row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from trailkeeper.exporters._record import Record, is_purged, outcome, part, targets_text, text
from trailkeeper.exporters._text import escape_text, json_text, sorted_json


def _field(name: str) -> Callable[[Record], str]:
    return lambda record: text(record.get(name))


def _subfield(name: str, key: str) -> Callable[[Record], str]:
    return lambda record: text(part(record, name).get(key))


def _metadata(record: Record) -> str:
    return json_text(sorted_json(record["metadata"])) if "metadata" in record else ""


COLUMNS: Final[tuple[tuple[str, Callable[[Record], str]], ...]] = (
    ("seq", _field("seq")),
    ("id", _field("id")),
    ("occurred_at", _field("occurred_at")),
    ("received_at", _field("received_at")),
    ("category", _field("category")),
    ("action", _field("action")),
    ("outcome", outcome),
    ("actor_type", _subfield("actor", "type")),
    ("actor_id", _subfield("actor", "id")),
    ("actor_name", _subfield("actor", "name")),
    ("actor_email", _subfield("actor", "email")),
    ("targets", targets_text),
    ("integration_provider", _subfield("integration", "provider")),
    ("integration_connection_id", _subfield("integration", "connection_id")),
    ("workflow_run_id", _subfield("workflow", "run_id")),
    ("workflow_name", _subfield("workflow", "name")),
    ("workflow_step", _subfield("workflow", "step")),
    ("ip", _subfield("context", "ip")),
    ("user_agent", _subfield("context", "user_agent")),
    ("request_id", _subfield("context", "request_id")),
    ("description", _field("description")),
    ("metadata", _metadata),
    ("leaf_hash", _field("leaf_hash")),
)
HEADER: Final = tuple(name for name, _ in COLUMNS)

# OWASP, CSV Injection: a cell starting with one of these is a formula to Excel, LibreOffice
# or Google Sheets. Tab and CR cannot start an escaped cell; they stay for defence in depth.
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")


def cell(value: str) -> str:
    """A value as a safe cell: on one line and never read as a formula."""
    escaped = escape_text(value)
    return "'" + escaped if escaped.startswith(FORMULA_TRIGGERS) else escaped


def row(record: Record) -> list[str]:
    return [cell(column(record)) for _, column in COLUMNS]


def lines(records: Iterable[Record]) -> Iterator[str]:
    """The header, then a row per record, each one CRLF-terminated line (RFC 4180 section 2)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def written(cells: Iterable[str]) -> str:
        writer.writerow(cells)
        chunk = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return chunk

    yield written(HEADER)
    for record in records:
        if not is_purged(record):
            yield written(row(record))
