"""The rows an append copies in, built from its records, and the binary COPY that sends
them: one round trip per table, whatever the batch size."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.string import BytesBinaryDumper

from trailkeeper.events import Prepared
from trailkeeper.store.postgres.schema import Connection
from trailkeeper.store.postgres.text import column_text, tsvector_text
from trailkeeper.store.sql import INDEX_COLUMN_NAMES, index_columns, search_text

# COPY in binary: measured against the text form and against pipelined INSERTs, it costs
# the server a quarter less than text and half what INSERTs do. Each column's binary type
# is named; the words, UTF-8 text made as bytes, are sent as they are.
_EVENT_COLUMNS = (
    ("tenant", "text"),
    ("seq", "int8"),
    ("leaf_hash", "bytea"),
    ("body", "bytea"),
    ("occurred_us", "int8"),
    *((name, "text") for name in INDEX_COLUMN_NAMES[1:]),
    ("words", "bytea"),
)
_LEAF_COLUMNS = (
    ("tenant", "text"),
    ("seq", "int8"),
    ("id", "text"),
    ("occurred_us", "int8"),
    ("leaf_hash", "bytea"),
)
_TARGET_COLUMNS = (
    ("tenant", "text"),
    ("seq", "int8"),
    ("occurred_us", "int8"),
    ("type", "text"),
    ("id", "text"),
)


@dataclass
class Rows:
    """What one append transaction copies in: each record's row of ``events`` goes to a COPY
    already under way (``add_event``), the leaves and targets are held for the COPYs after."""

    add_event: Callable[[tuple[Any, ...]], None]
    leaves: list[tuple[Any, ...]] = field(default_factory=list)
    targets: list[tuple[Any, ...]] = field(default_factory=list)


def event_rows(tenant: str, seq: int, prepared: Prepared, rows: Rows) -> bytes:
    """Add one new event's rows; return its leaf hash (RFC 9162 section 2.1.1)."""
    body = prepared.leaf_bytes(seq)
    leaf = hashlib.sha256(b"\x00" + body).digest()
    record = prepared.record
    occurred_us = prepared.occurred_us
    columns = index_columns(record, occurred_us)
    # The body holds every string a column does, and canonical JSON writes U+0000 and U+0001
    # as \u0000 and \u0001: without "\u000" in it, no column needs escaping (the check
    # spares the writer a call per column of nearly every record).
    escape = b"\\u000" in body
    if escape:
        columns = tuple(column_text(v) if isinstance(v, str) else v for v in columns)
    text = search_text(record)
    rows.add_event((tenant, seq, leaf, body, *columns, tsvector_text(text) if text else None))
    rows.leaves.append((tenant, seq, prepared.id, occurred_us, leaf))
    seen: set[tuple[str, str]] = set()
    for target in record.get("targets", ()):
        pair = (target["type"], target["id"])
        if pair not in seen:
            seen.add(pair)
            if escape:
                pair = (column_text(pair[0]), column_text(pair[1]))
            rows.targets.append((tenant, seq, occurred_us, *pair))
    return leaf


@contextmanager
def copying(conn: Connection) -> Iterator[Rows]:
    """COPY the rows made inside the block: the records' rows while they are made, so that
    the server stores each part of a batch while the writer makes the next, then the leaves
    and the targets. One round trip per table, whatever the batch size."""
    with conn.cursor() as cursor:
        # bytea by psycopg's own binary dumper, in C: the one the type's oid finds by default
        # is that of DB-API's Binary wrapper, a Python call per value (1 us per record).
        cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
        with _copy(cursor, "events", _EVENT_COLUMNS) as events:
            rows = Rows(events.write_row)
            yield rows
        for table, columns, data in (
            ("leaves", _LEAF_COLUMNS, rows.leaves),
            ("event_targets", _TARGET_COLUMNS, rows.targets),
        ):
            if data:
                with _copy(cursor, table, columns) as copy:
                    for row in data:
                        copy.write_row(row)


@contextmanager
def _copy(
    cursor: psycopg.Cursor[Any], table: str, columns: tuple[tuple[str, str], ...]
) -> Iterator[psycopg.Copy]:
    names = ", ".join(name for name, _ in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in columns])
        yield copy
