"""The PostgreSQL store: several servers, on several hosts, appending to one database.

Each process still appends through its facade's one writer thread; what keeps a tenant's
``seq`` gap-free across processes is the database. An append transaction first locks the
head row of every tenant it writes (in tenant order, so that two groups never wait on each
other), reads the tree's right edge as committed by whoever appended last, assigns seqs,
copies the rows in (COPY: one round trip per table), writes the tiles covering them and
the new head, and commits. The next appender to that tenant waits on the row lock and then
reads what this one committed: READ COMMITTED gives every statement a fresh snapshot.

Reads go through a connection pool. Layout and migrations: :mod:`.pg_schema`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from trailkeeper import tiles
from trailkeeper.errors import InvalidArgument, Unavailable
from trailkeeper.events import Prepared
from trailkeeper.merkle import EMPTY_ROOT
from trailkeeper.query import Filter
from trailkeeper.store import pg_schema
from trailkeeper.store.base import (
    ApiKey,
    Appended,
    AppendRequest,
    Head,
    PageQuery,
    Position,
    Record,
    Store,
    StoredCheckpoint,
    StoredLeaf,
    with_leaf_hash,
)
from trailkeeper.store.pg_schema import Month, column_text, text_from_column
from trailkeeper.store.sql import (
    INDEX_COLUMN_NAMES,
    Dialect,
    count_sql,
    index_columns,
    page_sql,
    search_text,
)

DIALECT = Dialect(
    placeholder="%s",
    # NULL (a term without a word) matches nothing.
    text_clause="e.tsv @@ ?::tsquery",
    text_query=pg_schema.tsquery_text,
    distinct="IS DISTINCT FROM",
)

Connection = psycopg.Connection[TupleRow]

# COPY in binary: measured against the text form and against pipelined INSERTs, it costs
# the server a quarter less than text and half what INSERTs do. Each column's binary type
# is named; a tsvector is sent as bytes already in its binary form (pg_schema).
_EVENT_COLUMNS = (
    ("tenant", "text"),
    ("seq", "int8"),
    ("leaf_hash", "bytea"),
    ("body", "bytea"),
    ("occurred_us", "int8"),
    *((name, "text") for name in INDEX_COLUMN_NAMES[1:]),
    ("tsv", "bytea"),
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
_UPSERT_TILES = (
    "INSERT INTO tiles (tenant, level, idx, hashes) "
    "SELECT %s, t.level, t.idx, t.hashes FROM unnest(%s::integer[], %s::bigint[], %s::bytea[]) "
    "AS t(level, idx, hashes) "
    "ON CONFLICT (tenant, level, idx) DO UPDATE SET hashes = excluded.hashes"
)
# A record's row is found through its leaf, which knows the partition (occurred_us).
RECORD_BY_LEAF = (
    "SELECT e.body, e.leaf_hash FROM leaves l JOIN events e "
    "ON e.tenant = l.tenant AND e.occurred_us = l.occurred_us AND e.seq = l.seq "
    "WHERE l.tenant = %s AND "
)
RECORDS_SINCE_SEQ = "SELECT body, leaf_hash FROM events WHERE tenant = %s AND seq >= %s ORDER BY seq LIMIT %s"
_KEY_COLUMNS = "id, tenant, scopes, created_at, last_used_at, revoked_at, name"

# Partitions are made on demand for months this close to now; rows of other months go to
# the default partition rather than let a producer's clock create tables without end.
PAST_MONTHS = 24
FUTURE_MONTHS = 2
# Creating a partition takes a strong lock on its parent; a server that cannot get it soon
# writes to the default partition instead of stalling every append behind a long read.
PARTITION_LOCK_TIMEOUT = "2s"
DROP_LOCK_TIMEOUT = "10s"


def for_psycopg(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A query of :mod:`.sql` as psycopg takes it: modulo signs doubled (psycopg reads
    ``%`` as a placeholder) and text values as the columns hold them."""
    return re.sub(r"%(?!s)", "%%", sql), [column_text(p) if isinstance(p, str) else p for p in params]


@dataclass
class _TenantAppend:
    """One tenant's part of an append transaction."""

    size: int
    edge: dict[int, bytes]
    root: bytes
    known: dict[str, int]
    leaf_hashes: list[bytes] = field(default_factory=list)

    @property
    def next_seq(self) -> int:
        return self.size + len(self.leaf_hashes)


@dataclass
class _Rows:
    """What one append transaction copies in."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    leaves: list[tuple[Any, ...]] = field(default_factory=list)
    targets: list[tuple[Any, ...]] = field(default_factory=list)


def _event_rows(tenant: str, seq: int, prepared: Prepared, rows: _Rows) -> bytes:
    """Add one new event's rows; return its leaf hash (RFC 9162 section 2.1.1)."""
    body = prepared.leaf_bytes(seq)
    leaf = hashlib.sha256(b"\x00" + body).digest()
    record = prepared.record
    occurred_us = prepared.occurred_us
    columns = [column_text(v) if isinstance(v, str) else v for v in index_columns(record, occurred_us)]
    text = search_text(record)
    tsv = pg_schema.tsvector_binary(text) if text else None
    rows.events.append((tenant, seq, leaf, body, *columns, tsv))
    rows.leaves.append((tenant, seq, prepared.id, occurred_us, leaf))
    seen: set[tuple[str, str]] = set()
    for target in record.get("targets", ()):
        pair = (target["type"], target["id"])
        if pair not in seen:
            seen.add(pair)
            rows.targets.append((tenant, seq, occurred_us, column_text(pair[0]), column_text(pair[1])))
    return leaf


def _hash_to_verify(body: bytes | None, tree_hash: bytes, row_hash: bytes | None) -> bytes:
    """The leaf hash `leaves()` reports. Each record carries a copy of its leaf hash beside
    the tree's; when the two differ, report the one its body does not hash to, so that
    verification stops at this seq whichever of the three was changed."""
    if body is None or row_hash is None or row_hash == tree_hash:
        return tree_hash
    if hashlib.sha256(b"\x00" + body).digest() == tree_hash:
        return row_hash
    return tree_hash


def _months(requests: Sequence[AppendRequest]) -> set[Month]:
    # Stored times are UTC text, YYYY-MM-DDTHH:MM:SS.ffffffZ: the month is in the text.
    stamps = {prepared.record["occurred_at"][:7] for request in requests for prepared in request.events}
    return {(int(stamp[:4]), int(stamp[5:7])) for stamp in stamps}


class PostgresStore(Store):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        # tenant -> (tree size, root, right edge) as last committed by this process.
        self._edges: dict[str, tuple[int, bytes, dict[int, bytes]]] = {}
        self._append_lock = threading.Lock()
        self._partitions = pg_schema.Partitions(PAST_MONTHS, FUTURE_MONTHS, PARTITION_LOCK_TIMEOUT)
        migrate(url)
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=True,
            kwargs={"application_name": "trailkeeper"},
            name="trailkeeper",
        )
        now = datetime.now(UTC)
        self._ensure_partitions({(now.year, now.month), pg_schema.add_months((now.year, now.month), 1)})

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A pooled connection in a transaction, committed on leaving; a lost database is
        :class:`Unavailable` (503), for the caller to retry."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Unavailable(f"the database is unavailable: {reason}") from exc

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows through a server-side cursor, so that a whole log is never held at once."""
        with self._connection() as conn, conn.cursor(name="trailkeeper_stream") as cursor:
            cursor.itersize = 2000
            cursor.execute(sql, params)
            yield from cursor

    def schema_version(self) -> int:
        with self._connection() as conn:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    # -- writes -------------------------------------------------------------------------
    def _ensure_partitions(self, months: set[Month]) -> None:
        missing = self._partitions.wanted(months, datetime.now(UTC))
        if missing:
            # Its own transaction: DDL must not run inside an append, which holds head locks
            # that other servers' appends wait on.
            with self._connection() as conn:
                self._partitions.create(conn, missing)

    def append(self, requests: Sequence[AppendRequest]) -> tuple[list[list[Appended]], list[Head]]:
        if not requests:
            return [], []
        with self._append_lock:
            now = datetime.now(UTC)
            this_month = (now.year, now.month)
            self._ensure_partitions(_months(requests) | {this_month, pg_schema.add_months(this_month, 1)})
            tenants = sorted({request.tenant for request in requests})
            rows = _Rows()
            try:
                with self._connection() as conn, conn.transaction():
                    state = {tenant: self._lock_tenant(conn, tenant, requests) for tenant in tenants}
                    results = [self._place(request, state[request.tenant], rows) for request in requests]
                    written = {tenant: _write_tree(conn, tenant, state[tenant]) for tenant in tenants}
                    _copy(conn, rows)
            except BaseException:
                # An edge is remembered only once committed: an edge of a rolled-back append
                # would be taken for that of another server's append of the same size.
                for tenant in tenants:
                    self._edges.pop(tenant, None)
                raise
            for tenant, (head, edge) in written.items():
                self._edges[tenant] = (head.tree_size, head.root_hash, edge)
            return results, [head for head, _ in written.values()]

    def _lock_tenant(self, conn: Connection, tenant: str, requests: Sequence[AppendRequest]) -> _TenantAppend:
        """Lock the tenant's head for this transaction and read its tree as committed."""
        select = "SELECT tree_size, root_hash FROM heads WHERE tenant = %s FOR UPDATE"
        row = conn.execute(select, (tenant,)).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO heads (tenant, tree_size, root_hash) VALUES (%s, 0, %s) "
                "ON CONFLICT (tenant) DO NOTHING",
                (tenant, EMPTY_ROOT),
            )
            row = conn.execute(select, (tenant,)).fetchone()
        assert row is not None  # inserted just above, or by a transaction that committed
        size, root = int(row[0]), bytes(row[1])
        # A remembered edge is only good for the tree it was read from: another server may
        # have appended since. The root commits to every leaf, so an equal size and root is
        # the same tree; the head lock keeps it from moving until this commits.
        cached = self._edges.get(tenant)
        if cached is not None and cached[:2] == (size, root):
            edge = cached[2]
        else:
            edge = _read_edge(conn, tenant, size)
        # Only a producer's id can repeat: a UUIDv7 the server made cannot.
        ids = [p.id for r in requests if r.tenant == tenant for p in r.events if p.producer_id]
        known: dict[str, int] = {}
        if ids:
            rows = conn.execute(
                "SELECT id, seq FROM leaves WHERE tenant = %s AND id = ANY(%s)", (tenant, ids)
            )
            known.update((str(event_id), int(seq)) for event_id, seq in rows)
        return _TenantAppend(size, edge, root, known)

    @staticmethod
    def _place(request: AppendRequest, part: _TenantAppend, rows: _Rows) -> list[Appended]:
        out: list[Appended] = []
        for prepared in request.events:
            first = part.known.get(prepared.id)
            if first is not None:
                out.append(Appended(prepared.id, first, b"", duplicate=True))
                continue
            seq = part.next_seq
            leaf = _event_rows(request.tenant, seq, prepared, rows)
            part.leaf_hashes.append(leaf)
            if prepared.producer_id:
                part.known[prepared.id] = seq
            out.append(Appended(prepared.id, seq, leaf))
        return out

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint unless one of the same or a larger tree is stored already.

        Servers sign on their own; the advisory lock makes their inserts take turns, so the
        checkpoints of a tenant are stored in the order of their sizes.
        """
        with self._connection() as conn, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                (pg_schema.CHECKPOINT_LOCK_CLASS, checkpoint.tenant),
            )
            conn.execute(
                "INSERT INTO checkpoints (tenant, tree_size, root_hash, note, created_at) "
                "SELECT %s, %s, %s, %s, %s WHERE NOT EXISTS "
                "(SELECT 1 FROM checkpoints WHERE tenant = %s AND tree_size >= %s)",
                (
                    checkpoint.tenant,
                    checkpoint.tree_size,
                    checkpoint.root_hash,
                    checkpoint.note,
                    checkpoint.created_at,
                    checkpoint.tenant,
                    checkpoint.tree_size,
                ),
            )

    # -- the tree -----------------------------------------------------------------------
    def tree_size(self, tenant: str) -> int:
        with self._connection() as conn:
            row = conn.execute("SELECT tree_size FROM heads WHERE tenant = %s", (tenant,)).fetchone()
        return int(row[0]) if row else 0

    def tile(self, tenant: str, level: int, index: int) -> bytes | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT hashes FROM tiles WHERE tenant = %s AND level = %s AND idx = %s",
                (tenant, level, index),
            ).fetchone()
        return bytes(row[0]) if row else None

    def tiles(self, tenant: str) -> Iterator[tuple[int, int, bytes]]:
        sql = "SELECT level, idx, hashes FROM tiles WHERE tenant = %s ORDER BY level, idx"
        for level, index, hashes in self._stream(sql, (tenant,)):
            yield int(level), int(index), bytes(hashes)

    def leaves(self, tenant: str, start: int = 0) -> Iterator[StoredLeaf]:
        names = ", ".join(f"e.{name}" for name in INDEX_COLUMN_NAMES)
        # A LEFT JOIN: a leaf whose body was purged, or whose month was dropped, is still
        # part of the tree.
        sql = (
            f"SELECT l.seq, e.body, l.leaf_hash, e.leaf_hash, {names} FROM leaves l "
            "LEFT JOIN events e ON e.tenant = l.tenant AND e.occurred_us = l.occurred_us "
            "AND e.seq = l.seq WHERE l.tenant = %s AND l.seq >= %s ORDER BY l.seq"
        )
        for seq, body, tree_hash, row_hash, *values in self._stream(sql, (tenant, start)):
            body = None if body is None else bytes(body)
            columns = (
                {}
                if body is None
                else {
                    name: text_from_column(v) if isinstance(v, str) else v
                    for name, v in zip(INDEX_COLUMN_NAMES, values, strict=True)
                }
            )
            leaf_hash = _hash_to_verify(body, bytes(tree_hash), None if row_hash is None else bytes(row_hash))
            yield StoredLeaf(int(seq), body, leaf_hash, columns)

    def checkpoints(self, tenant: str) -> list[StoredCheckpoint]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT tenant, tree_size, root_hash, note, created_at FROM checkpoints "
                "WHERE tenant = %s ORDER BY tree_size",
                (tenant,),
            ).fetchall()
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT tenant, tree_size, root_hash, note, created_at FROM checkpoints "
                "WHERE tenant = %s ORDER BY tree_size DESC LIMIT 1",
                (tenant,),
            ).fetchone()
        return _checkpoint(row) if row else None

    def tenants(self) -> list[str]:
        with self._connection() as conn:
            rows = conn.execute("SELECT tenant FROM heads ORDER BY tenant").fetchall()
        return [str(row[0]) for row in rows]

    # -- reads --------------------------------------------------------------------------
    def get(self, tenant: str, event_id: str) -> Record | None:
        with self._connection() as conn:
            row = conn.execute(RECORD_BY_LEAF + "l.id = %s", (tenant, event_id)).fetchone()
        return with_leaf_hash(bytes(row[0]), bytes(row[1])) if row else None

    def get_by_seq(self, tenant: str, seq: int) -> Record | None:
        with self._connection() as conn:
            row = conn.execute(RECORD_BY_LEAF + "l.seq = %s", (tenant, seq)).fetchone()
        return with_leaf_hash(bytes(row[0]), bytes(row[1])) if row else None

    def page(self, query: PageQuery) -> list[tuple[Position, Record]]:
        with self._connection() as conn:
            unpurged = dataclasses.replace(query, filter=_unpurged(conn, query.tenant, query.filter))
            sql, params = for_psycopg(*page_sql(unpurged, DIALECT))
            rows = conn.execute(sql, params).fetchall()
        return [
            (Position(int(o), int(s)), with_leaf_hash(bytes(body), bytes(leaf))) for o, s, body, leaf in rows
        ]

    def count(self, tenant: str, filter: Filter, group_by: str) -> list[tuple[str | None, int]]:
        with self._connection() as conn:
            sql, params = for_psycopg(*count_sql(_unpurged(conn, tenant, filter), tenant, group_by, DIALECT))
            rows = conn.execute(sql, params).fetchall()
        return [(None if key is None else text_from_column(str(key)), int(n)) for key, n in rows]

    def since_seq(self, tenant: str, seq: int, limit: int) -> list[Record]:
        with self._connection() as conn:
            rows = conn.execute(RECORDS_SINCE_SEQ, (tenant, seq, limit)).fetchall()
        return [with_leaf_hash(bytes(body), bytes(leaf)) for body, leaf in rows]

    # -- keys ---------------------------------------------------------------------------
    def add_key(self, key: ApiKey, secret_hash: bytes) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, tenant, secret_hash, scopes, name, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (key.id, key.tenant, secret_hash, " ".join(key.scopes), key.name, key.created_at),
            )

    def key_by_hash(self, secret_hash: bytes) -> ApiKey | None:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE secret_hash = %s", (secret_hash,)
            ).fetchone()
        return _key(row) if row else None

    def keys(self, tenant: str | None = None) -> list[ApiKey]:
        with self._connection() as conn:
            if tenant is None:
                rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant = %s ORDER BY created_at, id",
                    (tenant,),
                ).fetchall()
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str, when: str) -> ApiKey | None:
        with self._connection() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL", (when, key_id)
            )
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = %s", (key_id,)).fetchone()
        return _key(row) if row else None

    def touch_key(self, key_id: str, when: str) -> None:
        with self._connection() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = %s WHERE id = %s", (when, key_id))

    # -- tenant settings and retention ---------------------------------------------------
    def verifier_key(self, tenant: str) -> str | None:
        with self._connection() as conn:
            row = conn.execute("SELECT verifier_key FROM tenant_keys WHERE tenant = %s", (tenant,)).fetchone()
        return str(row[0]) if row else None

    def set_verifier_key(self, tenant: str, verifier_key: str) -> str:
        """First writer wins, whichever server it is: the key every checkpoint is checked with."""
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO tenant_keys (tenant, verifier_key) VALUES (%s, %s) "
                "ON CONFLICT (tenant) DO NOTHING",
                (tenant, verifier_key),
            )
            row = conn.execute("SELECT verifier_key FROM tenant_keys WHERE tenant = %s", (tenant,)).fetchone()
        assert row is not None  # inserted above, or by whoever won
        return str(row[0])

    def retention_days(self) -> dict[str, int]:
        with self._connection() as conn:
            rows = conn.execute("SELECT tenant, days FROM retention ORDER BY tenant").fetchall()
        return {str(tenant): int(days) for tenant, days in rows}

    def set_retention_days(self, tenant: str, days: int | None) -> None:
        with self._connection() as conn:
            if days is None:
                conn.execute("DELETE FROM retention WHERE tenant = %s", (tenant,))
            else:
                conn.execute(
                    "INSERT INTO retention (tenant, days) VALUES (%s, %s) "
                    "ON CONFLICT (tenant) DO UPDATE SET days = excluded.days",
                    (tenant, days),
                )

    def purge(self, tenant: str, before_us: int) -> int:
        """Delete the rows of records that occurred before ``before_us``: bodies and what
        search reads. Their leaves (seq, id, leaf hash) stay, so proofs still check. The
        tenant's purge mark moves in the same transaction."""
        with self._connection() as conn, conn.transaction():
            bound = (tenant, before_us)
            conn.execute("DELETE FROM event_targets WHERE tenant = %s AND occurred_us < %s", bound)
            cursor = conn.execute("DELETE FROM events WHERE tenant = %s AND occurred_us < %s", bound)
            conn.execute(
                "INSERT INTO purges (tenant, before_us) VALUES (%s, %s) ON CONFLICT (tenant) "
                "DO UPDATE SET before_us = greatest(purges.before_us, excluded.before_us)",
                bound,
            )
            return max(cursor.rowcount, 0)

    def purged_before(self, tenant: str) -> int | None:
        with self._connection() as conn:
            return _purge_mark(conn, tenant)

    def drop_partitions_before(self, before_us: int) -> list[str]:
        """Drop every monthly partition that ends at or before ``before_us``, for all tenants
        at once: what retention does when every tenant's horizon has passed a month. Much
        cheaper than :meth:`purge` row by row; leaves and tiles are not touched."""
        dropped: list[str] = []
        with self._append_lock, self._connection() as conn, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (pg_schema.LOCK_CLASS, pg_schema.PARTITION_LOCK)
            )
            # Past this, the drop fails (503, to be retried) rather than stall every append.
            conn.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
            for month in sorted(pg_schema.existing_months(conn)):
                if pg_schema.month_start_us(pg_schema.next_month(month)) > before_us:
                    continue
                for table in pg_schema.PARTITIONED:
                    name = pg_schema.partition_name(table, month)
                    conn.execute(f"DROP TABLE IF EXISTS {name}")
                    dropped.append(name)
                self._partitions.known.discard(month)
                # A month gone stays gone: late rows of it go to the default partition.
                self._partitions.refused.add(month)
        return dropped

    def shared_url(self) -> str | None:
        # Every process reaches the same database by its URL, so a verification of a large
        # log can be shared out, as it is on SQLite.
        return self.url

    def close(self) -> None:
        self._pool.close()


def _write_tree(conn: Connection, tenant: str, part: _TenantAppend) -> tuple[Head, dict[int, bytes]]:
    """Write the tiles the new leaves change and the new head; return the head and the new
    right edge."""
    if not part.leaf_hashes:
        return Head(tenant, part.size, part.root), part.edge
    size = part.next_seq
    edge, written = tiles.append_leaves(part.size, part.edge, part.leaf_hashes)
    conn.execute(
        _UPSERT_TILES,
        (tenant, [t.level for t in written], [t.index for t in written], [t.hashes for t in written]),
    )
    root = _root(conn, tenant, size, {(t.level, t.index): t.hashes for t in written})
    conn.execute("UPDATE heads SET tree_size = %s, root_hash = %s WHERE tenant = %s", (size, root, tenant))
    return Head(tenant, size, root), edge


def _copy(conn: Connection, rows: _Rows) -> None:
    """COPY the new rows in: one round trip per table, whatever the batch size."""
    with conn.cursor() as cursor:
        for table, columns, data in (
            ("leaves", _LEAF_COLUMNS, rows.leaves),
            ("events", _EVENT_COLUMNS, rows.events),
            ("event_targets", _TARGET_COLUMNS, rows.targets),
        ):
            if not data:
                continue
            names = ", ".join(name for name, _ in columns)
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([kind for _, kind in columns])
                for row in data:
                    copy.write_row(row)


def _purge_mark(conn: Connection, tenant: str) -> int | None:
    row = conn.execute("SELECT before_us FROM purges WHERE tenant = %s", (tenant,)).fetchone()
    return int(row[0]) if row else None


def _unpurged(conn: Connection, tenant: str, query_filter: Filter) -> Filter:
    """The filter, bounded below by the tenant's purge mark: nothing before it is shown."""
    mark = _purge_mark(conn, tenant)
    return query_filter if mark is None else query_filter.merge(Filter(after_us=mark))


def _read_edge(conn: Connection, tenant: str, size: int) -> dict[int, bytes]:
    wanted = tiles.edge_tiles(size)
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT t.level, t.hashes FROM tiles t JOIN unnest(%s::integer[], %s::bigint[]) AS w(level, idx) "
        "ON t.level = w.level AND t.idx = w.idx WHERE t.tenant = %s",
        ([level for level, _ in wanted], [index for _, index in wanted], tenant),
    ).fetchall()
    return {int(level): bytes(hashes) for level, hashes in rows}


def _root(conn: Connection, tenant: str, size: int, written: dict[tuple[int, int], bytes]) -> bytes:
    """The root of a tenant's tree, from the tiles just written (every node the root needs
    is in the partial tiles of the right edge, which an append rewrites) or, failing that,
    the stored tiles."""

    def fetch(level: int, index: int) -> bytes | None:
        if (level, index) in written:
            return written[(level, index)]
        row = conn.execute(
            "SELECT hashes FROM tiles WHERE tenant = %s AND level = %s AND idx = %s", (tenant, level, index)
        ).fetchone()
        return bytes(row[0]) if row else None

    return tiles.TileReader(fetch, size).root()


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(str(row[0]), int(row[1]), bytes(row[2]), str(row[3]), str(row[4]))


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], tuple(row[2].split()), row[3], row[4], row[5], row[6])


def migrate(url: str) -> int:
    """Bring the database at ``url`` to the latest schema; return its version. What
    ``trailkeeper migrate`` runs, and every server on start-up."""
    try:
        with psycopg.connect(url, application_name="trailkeeper-migrate") as conn:
            return pg_schema.apply_migrations(conn)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unavailable(f"cannot reach PostgreSQL: {reason}") from exc


def open_postgres(url: str) -> PostgresStore:
    """``postgresql://user@host:port/database`` (or ``postgres://``), as libpq reads it."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InvalidArgument("db", f"a PostgreSQL URL is postgresql://user@host:port/db, not {url!r}")
    return PostgresStore(url)
