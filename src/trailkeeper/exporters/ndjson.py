"""NDJSON export: the stored records themselves, one compact JSON object per line.

Keys come in one fixed order, whatever order the store hands them over in (PostgreSQL's
jsonb, for one, reorders them): the record's fields as CONTRACT section 2 lists them, the
fields of its objects likewise, and ``metadata`` with its keys sorted. Purged records pass
through as they are, so the export still accounts for every ``seq``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from trailkeeper.exporters._record import Record
from trailkeeper.exporters._text import json_text, sorted_json

FIELD_ORDER: Final = (
    "tenant", "seq", "id", "occurred_at", "received_at", "category", "action", "outcome",
    "actor", "targets", "integration", "workflow", "context", "description", "metadata",
    "purged", "leaf_hash",
)  # fmt: skip
_OBJECT_ORDER: Final[Mapping[str, tuple[str, ...]]] = {
    "actor": ("type", "id", "name", "email"),
    "targets": ("type", "id", "name"),
    "integration": ("provider", "connection_id"),
    "workflow": ("run_id", "id", "name", "trigger", "step"),
    "context": ("ip", "user_agent", "request_id", "trace_id", "session_id", "location"),
}


def _in_order(fields: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    ordered = {key: fields[key] for key in order if key in fields}
    if len(ordered) < len(fields):
        ordered.update((key, fields[key]) for key in sorted(fields) if key not in ordered)
    return ordered


def ordered_record(record: Record) -> dict[str, Any]:
    """The record with its keys in the export's fixed order (``metadata`` encoded sorted)."""
    ordered = _in_order(record, FIELD_ORDER)
    for field, order in _OBJECT_ORDER.items():
        value = ordered.get(field)
        if isinstance(value, dict):
            ordered[field] = _in_order(value, order)
        elif isinstance(value, list):
            ordered[field] = [_in_order(item, order) for item in value]
    if "metadata" in ordered:
        ordered["metadata"] = sorted_json(ordered["metadata"])
    return ordered


def line(record: Record) -> str:
    return json_text(ordered_record(record)) + "\n"


def lines(records: Iterable[Record]) -> Iterator[str]:
    for record in records:
        yield line(record)
