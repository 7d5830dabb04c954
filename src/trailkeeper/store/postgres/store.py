"""The PostgreSQL store itself: a pool of connections, one append transaction at a time per
process, and the reads, keys, settings and retention of the :class:`Store` contract."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from trailkeeper.errors import InvalidArgument, Unavailable
from trailkeeper.query import Filter
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
    columns_text,
    with_leaf_hash,
)
from trailkeeper.store.postgres.append import lock_tenant, place, write_tree
from trailkeeper.store.postgres.index import Indexer, indexed_below, lock_mark
from trailkeeper.store.postgres.partitions import Month, Partitions, add_months, dropped_until, months
from trailkeeper.store.postgres.reads import (
    RECORD_BY_LEAF,
    RECORDS_SINCE_SEQ,
    bounded,
    count_statement,
    hash_to_verify,
    page_statement,
    purge_mark,
    read_marks,
    same_record,
)
from trailkeeper.store.postgres.rows import copying
from trailkeeper.store.postgres.schema import CHECKPOINT_LOCK_CLASS, Connection, migrate
from trailkeeper.store.postgres.text import text_from_column
from trailkeeper.store.sql import INDEX_COLUMN_NAMES, column_difference

log = logging.getLogger("trailkeeper.store.postgres")

_KEY_COLUMNS = "id, tenant, scopes, created_at, last_used_at, revoked_at, name"

# A search row's words are not those of its record's row.
_WORDS_DIFFER = "x.tsv IS DISTINCT FROM e.words::tsvector"


def _leaves_with_rows(events_join: str) -> str:
    """The leaves of a range of seqs, each with its row in events (by ``events_join``) and
    its search row, if any: what verify compares."""
    return (
        f" FROM leaves l {events_join} events e ON {same_record('e', 'l')}"
        f" LEFT JOIN search_rows x ON {same_record('x', 'l')}"
        " WHERE l.tenant = %s AND l.seq >= %s AND l.seq < %s"
    )


# Store.indexed_columns: each record's search row, and whether it has its row in events (a
# purged record has neither, and verify reads only its time) and the words of that row.
_INDEXED_COLUMNS = (
    f"SELECT l.seq, l.occurred_us, e.seq IS NULL, x.seq IS NULL OR {_WORDS_DIFFER}, "
    + ", ".join(f"x.{name}" for name in INDEX_COLUMN_NAMES)
    + _leaves_with_rows("LEFT JOIN")
    + " ORDER BY l.seq"
)
_TARGETS_OF = (
    "SELECT seq, type, id FROM {table} WHERE tenant = %(tenant)s AND seq >= %(start)s AND seq < %(end)s"
)
# The first record whose targets are not the same in the two tables, counted with repeats.
_TARGETS_DIFFERENCE = (
    "SELECT min(seq) FROM (("
    + _TARGETS_OF.format(table="event_targets")
    + " EXCEPT ALL "
    + _TARGETS_OF.format(table="search_targets")
    + ") UNION ALL ("
    + _TARGETS_OF.format(table="search_targets")
    + " EXCEPT ALL "
    + _TARGETS_OF.format(table="event_targets")
    + ")) AS differ"
)
# Store.index_difference: the first record whose search row differs from its row in events.
_INDEX_DIFFERENCE = (
    f"SELECT l.seq, x.seq IS NULL, {_WORDS_DIFFER}, "
    + ", ".join(f"e.{name}, x.{name}" for name in INDEX_COLUMN_NAMES)
    + _leaves_with_rows("JOIN")
    + " AND (x.seq IS NULL OR "
    + " OR ".join(f"x.{name} IS DISTINCT FROM e.{name}" for name in INDEX_COLUMN_NAMES)
    + f" OR {_WORDS_DIFFER}) ORDER BY l.seq LIMIT 1"
)

# Partitions are made on demand for months this close to now; rows of other months go to
# the default partition rather than let a producer's clock create tables without end.
PAST_MONTHS = 24
FUTURE_MONTHS = 2
# Creating a partition takes a strong lock on its parent; a server that cannot get it soon
# writes to the default partition instead of stalling every append behind a long read.
PARTITION_LOCK_TIMEOUT = "2s"
DROP_LOCK_TIMEOUT = "10s"


class PostgresStore(Store):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        # tenant -> (tree size, root, right edge) as last committed by this process.
        self._edges: dict[str, tuple[int, bytes, dict[int, bytes]]] = {}
        self._append_lock = threading.Lock()
        self._partitions = Partitions(PAST_MONTHS, FUTURE_MONTHS, PARTITION_LOCK_TIMEOUT)
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
        self._ensure_partitions({(now.year, now.month), add_months((now.year, now.month), 1)})
        self.indexer = Indexer(self._connection)
        # Copy the search rows of each commit before acknowledging it, rather than in the
        # background: every search then reads through them (the conformance suite does so).
        self.index_inline = False

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
            self._ensure_partitions(months(requests) | {this_month, add_months(this_month, 1)})
            tenants = sorted({request.tenant for request in requests})
            try:
                with self._connection() as conn, conn.transaction():
                    state = {tenant: lock_tenant(conn, tenant, requests, self._edges) for tenant in tenants}
                    with copying(conn) as rows:
                        results = [place(request, state[request.tenant], rows) for request in requests]
                    written = {tenant: write_tree(conn, tenant, state[tenant]) for tenant in tenants}
            except BaseException:
                # An edge is remembered only once committed: an edge of a rolled-back append
                # would be taken for that of another server's append of the same size.
                for tenant in tenants:
                    self._edges.pop(tenant, None)
                raise
            for tenant, (head, edge) in written.items():
                self._edges[tenant] = (head.tree_size, head.root_hash, edge)
            self._index_committed()
            return results, [head for head, _ in written.values()]

    def _index_committed(self) -> None:
        """Have what was just committed copied: now (inline) or by the indexer's thread."""
        if self.index_inline:
            try:
                self.indexer.catch_up()
                return
            except Exception:  # the records are committed: they must be acknowledged
                log.exception("copying search rows failed; the indexer's thread will")
        self.indexer.notify()

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint unless one of the same or a larger tree is stored already.

        Servers sign on their own; the advisory lock makes their inserts take turns, so the
        checkpoints of a tenant are stored in the order of their sizes.
        """
        with self._connection() as conn, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                (CHECKPOINT_LOCK_CLASS, checkpoint.tenant),
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
            f"SELECT l.seq, l.occurred_us, e.body, l.leaf_hash, e.leaf_hash, {names} FROM leaves l "
            "LEFT JOIN events e ON e.tenant = l.tenant AND e.occurred_us = l.occurred_us "
            "AND e.seq = l.seq WHERE l.tenant = %s AND l.seq >= %s ORDER BY l.seq"
        )
        for seq, occurred_us, body, tree_hash, row_hash, *values in self._stream(sql, (tenant, start)):
            body = None if body is None else bytes(body)
            # Without its row, a leaf still says when its record occurred: verify judges by it
            # whether retention may have removed the row.
            columns = (
                {"occurred_us": occurred_us}
                if body is None
                else {
                    name: text_from_column(v) if isinstance(v, str) else v
                    for name, v in zip(INDEX_COLUMN_NAMES, values, strict=True)
                }
            )
            leaf_hash = hash_to_verify(body, bytes(tree_hash), None if row_hash is None else bytes(row_hash))
            yield StoredLeaf(int(seq), body, leaf_hash, columns)

    def stored_targets(self, tenant: str, start: int, end: int) -> list[tuple[int, str, str]]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT seq, type, id FROM event_targets WHERE tenant = %s AND seq >= %s AND seq < %s",
                (tenant, start, end),
            ).fetchall()
        return [(int(seq), text_from_column(kind), text_from_column(ident)) for seq, kind, ident in rows]

    def indexed_columns(self, tenant: str, start: int, end: int) -> tuple[int, list[bytes | None]]:
        with self._connection() as conn:
            stop = min(end, indexed_below(conn, tenant))
            if stop <= start:
                return start, []
            rows = conn.execute(_INDEXED_COLUMNS, (tenant, start, stop)).fetchall()
            targets_differ = _targets_difference(conn, tenant, start, stop)
        copied: list[bytes | None] = []
        for seq, occurred_us, purged, differs, *values in rows:
            if seq == targets_differ:
                copied.append(None)  # its copied targets differ: index_difference says how
            elif purged:
                copied.append(columns_text([seq, tenant, occurred_us] + [None] * (len(values) - 1)))
            elif differs:
                copied.append(None)  # no search row, or other words: index_difference says which
            else:
                columns = [text_from_column(v) if isinstance(v, str) else v for v in values]
                copied.append(columns_text([seq, tenant, *columns]))
        return stop, copied

    def index_difference(self, tenant: str, start: int, end: int) -> tuple[int, str] | None:
        with self._connection() as conn:
            row = conn.execute(_INDEX_DIFFERENCE, (tenant, start, end)).fetchone()
            targets_differ = _targets_difference(conn, tenant, start, end)
        if targets_differ is not None and (row is None or targets_differ < row[0]):
            message = (
                f"the targets of record {targets_differ} differ between event_targets and search_targets"
            )
            return targets_differ, message
        if row is None:
            return None
        seq, missing, words = row[0], row[1], row[2]
        if missing:
            return seq, f"record {seq} is missing from the search rows"
        if words:
            return seq, f"the words of record {seq} differ between the events table and the search rows"
        found = column_difference(seq, row[3:], "the search rows")
        return None if found is None else (seq, found)

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
            purged_before, mark = read_marks(conn, query.tenant, for_page=True)
            page = dataclasses.replace(query, filter=bounded(query.filter, purged_before))
            rows = conn.execute(*page_statement(page, mark)).fetchall()
            if any(body is None for _, _, body, _ in rows):
                rows = conn.execute(*page_statement(page, mark, joined=True)).fetchall()
        return [
            (Position(int(o), int(s)), with_leaf_hash(bytes(body), bytes(leaf))) for o, s, body, leaf in rows
        ]

    def count(self, tenant: str, filter: Filter, group_by: str) -> list[tuple[str | None, int]]:
        with self._connection() as conn:
            purged_before, mark = read_marks(conn, tenant)
            rows = conn.execute(
                *count_statement(bounded(filter, purged_before), tenant, group_by, mark)
            ).fetchall()
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
        return self._key_where("secret_hash", secret_hash)

    def key(self, key_id: str) -> ApiKey | None:
        return self._key_where("id", key_id)

    def _key_where(self, column: str, value: object) -> ApiKey | None:
        """The key whose ``column`` (unique: its id or its secret's hash) holds ``value``."""
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE {column} = %s"
        with self._connection() as conn:
            row = conn.execute(sql, (value,)).fetchone()
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
            lock_mark(conn, tenant, wait=True)
            for table in ("event_targets", "search_rows", "search_targets"):
                conn.execute(f"DELETE FROM {table} WHERE tenant = %s AND occurred_us < %s", bound)
            cursor = conn.execute("DELETE FROM events WHERE tenant = %s AND occurred_us < %s", bound)
            conn.execute(
                "INSERT INTO purges (tenant, before_us) VALUES (%s, %s) ON CONFLICT (tenant) "
                "DO UPDATE SET before_us = greatest(purges.before_us, excluded.before_us)",
                bound,
            )
            return max(cursor.rowcount, 0)

    def purged_before(self, tenant: str) -> int | None:
        with self._connection() as conn:
            return purge_mark(conn, tenant)

    def drop_partitions_before(self, before_us: int) -> list[str]:
        """Drop every monthly partition that ends at or before ``before_us``, for all tenants
        at once: what retention does when every tenant's horizon has passed a month. Much
        cheaper than :meth:`purge` row by row; leaves and tiles are not touched."""
        with self._append_lock, self._connection() as conn, conn.transaction():
            dropped = self._partitions.drop_before(conn, before_us, DROP_LOCK_TIMEOUT)
            if dropped:
                conn.execute(
                    "INSERT INTO partitions_dropped (before_us) VALUES (%s) ON CONFLICT (only_row) "
                    "DO UPDATE SET before_us = greatest(partitions_dropped.before_us, excluded.before_us)",
                    (dropped_until(dropped),),
                )
            return dropped

    def removed_before(self, tenant: str) -> int | None:
        with self._connection() as conn:
            marks = [purge_mark(conn, tenant)]
            row = conn.execute("SELECT before_us FROM partitions_dropped").fetchone()
        marks.append(int(row[0]) if row else None)
        present = [mark for mark in marks if mark is not None]
        return max(present) if present else None

    def shared_url(self) -> str | None:
        # Every process reaches the same database by its URL, so a verification of a large
        # log can be shared out, as it is on SQLite.
        return self.url

    def indexed_below(self, tenant: str) -> int:
        """Every record of the tenant below this seq has its search row."""
        with self._connection() as conn:
            return indexed_below(conn, tenant)

    def close(self) -> None:
        self.indexer.close()
        self._pool.close()


def _targets_difference(conn: Connection, tenant: str, start: int, end: int) -> int | None:
    """The first record of ``start <= seq < end`` whose copied targets differ from those
    written with it; None when none does."""
    row = conn.execute(_TARGETS_DIFFERENCE, {"tenant": tenant, "start": start, "end": end}).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(str(row[0]), int(row[1]), bytes(row[2]), str(row[3]), str(row[4]))


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], tuple(row[2].split()), row[3], row[4], row[5], row[6])


def open_postgres(url: str) -> PostgresStore:
    """``postgresql://user@host:port/database`` (or ``postgres://``), as libpq reads it."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InvalidArgument("db", f"a PostgreSQL URL is postgresql://user@host:port/db, not {url!r}")
    return PostgresStore(url)
