"""The embedded store: one SQLite file in WAL mode.

One writer (the facade's writer thread) holds its own connection; every other thread reads
through a connection of its own, which WAL lets run beside the writer. ``synchronous=FULL``
makes a commit durable before the writer acknowledges it: an acknowledged event survives a
power cut, and group commit spreads the cost of that fsync over every caller waiting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from trailkeeper import tiles
from trailkeeper.errors import InvalidArgument
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
    VerifyRow,
    with_leaf_hash,
)
from trailkeeper.store.migrations import SQLITE_DATA_STEPS, SQLITE_MIGRATIONS
from trailkeeper.store.overlap import Overlapped
from trailkeeper.store.search_index import TOKENIZE, SearchIndex, index_path
from trailkeeper.store.sql import (
    COLUMNS,
    INDEX_COLUMN_NAMES,
    TABLE,
    Dialect,
    Source,
    column_difference,
    count_sql,
    index_columns,
    page_sql,
    prefix_upper_bound,
    search_text,
)


def _as_is(value: bytes | None) -> bytes | None:
    return value


# Python's sqlite3 binds an int, a float or a str as it is, and looks for an adapter for any
# other value: for bytes and None (a leaf hash, a body, an absent column: several per row)
# that search ends in an attribute look-up that raises and clears an AttributeError, about
# a tenth of a microsecond each, half a microsecond of each row the writer inserts. Found
# in the registry instead, they are bound as they are, as before. The registry is the whole
# process's: an adapter the application registered first is left in place.
for _kind in (bytes, type(None)):
    sqlite3.adapters.setdefault((_kind, sqlite3.PrepareProtocol), _as_is)


def _fts_query(words: tuple[str, ...]) -> str:
    # Each term is one FTS5 phrase (a quoted string, quotes doubled): words and phrases
    # match as written, and no user text is ever read as FTS5 query syntax.
    return " AND ".join('"' + word.replace('"', '""') + '"' for word in words)


DIALECT = Dialect(
    placeholder="?",
    text_clause="{hide}{record}.row IN (SELECT rowid FROM ix.events_fts WHERE events_fts MATCH ?)",
    text_query=_fts_query,
    distinct="IS NOT",
)

# The records below a tenant's watermark, through the search index (attached as "ix"); the
# events table gives their bodies.
INDEXED = Source(
    rows="ix.search_rows e JOIN events m ON m.tenant = e.tenant AND m.seq = e.seq",
    record="m",
    targets="ix.event_targets",
)
# Counts read the index's compact rows alone, unless a text term needs the record's row.
INDEXED_COLUMNS = Source(rows="ix.search_rows e", record="e", targets="ix.event_targets")


def _unindexed(watermark: int) -> Source:
    """The records at or above a tenant's watermark, from the events table: targets from
    the bodies, and text from the words of their search text in ``temp.tail_fts`` (see
    :func:`_tokenize_tail`)."""
    return Source(
        rows="events e",
        record="e",
        targets=None,
        # A body changed by hand into something else than JSON, or with targets of another
        # shape, matches no target (verify reports it) rather than failing the search.
        body_targets=(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(CAST(e.body AS TEXT)) "
            "THEN CAST(e.body AS TEXT) END, '$.targets') j WHERE {match})"
        ),
        body_target="json_extract(CASE WHEN j.type = 'object' THEN j.value END, '$.{name}')",
        text_clause="{hide}e.row IN (SELECT rowid FROM temp.tail_fts WHERE tail_fts MATCH ?)",
        min_seq=watermark,
    )


_PAGE_SIZE = 16384
_WAL_CHECKPOINT_BYTES = 32 * 1024 * 1024

_EVENT_COLUMNS = ("row", "tenant", "seq", "id", "leaf_hash", "body", *INDEX_COLUMN_NAMES, "text")
_INSERT_EVENT = f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES "
# Rows per INSERT statement: well under SQLite's limit on bound parameters (32,766 by default).
_ROWS_PER_STATEMENT = 200


@functools.lru_cache(maxsize=_ROWS_PER_STATEMENT)
def _insert_events(count: int) -> str:
    """The statement that inserts ``count`` rows of ``events``, made once per count.

    One statement per few hundred rows, rather than one per row, is fewer calls, and above
    all fewer times the writer's statement thread lets go of the GIL and must win it back.
    """
    one = "(" + ", ".join("?" * len(_EVENT_COLUMNS)) + ")"
    return _INSERT_EVENT + ", ".join([one] * count)


def _columns_json(alias: str) -> str:
    return (
        f"CAST(json_array({alias}.seq, {alias}.tenant, "
        + ", ".join(f"{alias}.{name}" for name in INDEX_COLUMN_NAMES)
        + ") AS BLOB)"
    )


def _any_blob(alias: str) -> str:
    # A BLOB sorts after every number and text: one max() over the columns (NULLs made empty
    # text, as a NULL would make it NULL) tells whether any is one, cheaper than a typeof()
    # per column on every row.
    columns = ", ".join(f"coalesce({alias}.{name}, '')" for name in INDEX_COLUMN_NAMES)
    return f"max({columns}) >= x''"


# Store.verify_rows: the searchable columns as one JSON text per row, built by SQLite, so that
# Python makes one object per row instead of one per column. JSON holds no BLOB: json_array
# refuses one, or (from SQLite 3.45) reads it as JSONB, which a BLOB made for the purpose could
# pass for the body's value; a row with a BLOB in a searchable column gives None instead, which
# no body's columns equal.
_VERIFY_ROWS = (
    f"SELECT e.seq, e.body, e.leaf_hash, CASE WHEN {_any_blob('e')} THEN NULL ELSE {_columns_json('e')} END "
    "FROM events e WHERE e.tenant = ? AND e.seq >= ? AND e.seq < ? ORDER BY e.seq"
)
# Store.indexed_columns: the same text, of the search index's copy of the columns.
_INDEXED_COLUMNS = (
    f"SELECT {_columns_json('x')} FROM ix.search_rows x WHERE x.tenant = ? AND x.seq >= ? AND x.seq < ? "
    "ORDER BY x.seq"
)
# Store.index_difference: the first record whose copy in the search index differs.
_INDEX_DIFFERENCE = (
    "SELECT e.seq, x.seq IS NULL, "
    + ", ".join(f"e.{name}, x.{name}" for name in INDEX_COLUMN_NAMES)
    + " FROM events e LEFT JOIN ix.search_rows x ON x.tenant = e.tenant AND x.seq = e.seq "
    "WHERE e.tenant = ? AND e.seq >= ? AND e.seq < ? AND (x.seq IS NULL OR "
    + " OR ".join(f"x.{name} IS NOT e.{name}" for name in INDEX_COLUMN_NAMES)
    + ") ORDER BY e.seq LIMIT 1"
)
# A tile's worth of rows: small enough that each body is still in the CPU's cache when it is
# decoded after it is hashed (measured: 256 rows beat 1024 by a tenth).
_VERIFY_BATCH = 256


class _EdgeCache:
    """The writer's view of a tenant's right edge: tree size and partial tiles.

    Only the writer appends to a SQLite file, so the edge read once stays true until the
    writer changes it; it is dropped when a transaction rolls back.
    """

    def __init__(self) -> None:
        self.edges: dict[str, tuple[int, dict[int, bytes]]] = {}


class SQLiteStore(Store):
    def __init__(self, url: str, path: str, *, index: str = "background") -> None:
        self.url = url
        self.path = path
        # ":memory:" is an ephemeral log (tests, the testing helper): a file in a private
        # temporary directory, gone at close. A real in-memory database would need SQLite's
        # shared cache for its reader threads, whose table locks ignore busy_timeout.
        self._scratch = tempfile.mkdtemp(prefix="trailkeeper-") if path == ":memory:" else None
        if self._scratch is not None:
            path = os.path.join(self._scratch, "log.db")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._target = Path(path).absolute().as_uri()
        self._local = threading.local()
        # Every reader connection opened, one per thread, so close() can close them all.
        self._readers: list[sqlite3.Connection] = []
        self._writer = self._connect()
        # Checkpoint the WAL into the database every 32 MiB rather than every 4 MiB: a page
        # that several commits dirty is then copied into the file once, not once per commit.
        page_size = int(self._writer.execute("PRAGMA page_size").fetchone()[0])
        self._writer.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_BYTES // page_size}")
        self._write_lock = threading.RLock()
        self._edges = _EdgeCache()
        self._migrate()
        self._statements = Overlapped(self._writer, "trailkeeper-sqlite-statements")
        # "inline": the writer indexes each commit itself before acknowledging it (every
        # search then reads through the index); "background": a thread of the index does.
        self._index_inline = index == "inline"
        # Absolute, as the log's own URI is: every connection attaches the same file.
        absolute = str(Path(path).absolute())
        self._index_path = index_path(absolute)
        self.search_index = SearchIndex(self._index_path, absolute, background=not self._index_inline)

    # -- connections ----------------------------------------------------------------------
    def _connect(self, *, attach_index: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(self._target, uri=True, isolation_level=None, check_same_thread=False)
        # Pages of 16 KiB for a new file (an existing one keeps its own): a commit appends
        # its records to the WAL in a quarter as many frames, each its own write() call
        # (a million events: 12% faster than with 4 KiB pages, measured in alternation).
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        # Durable before acknowledged; an ephemeral log has nothing to keep.
        conn.execute("PRAGMA synchronous = " + ("OFF" if self._scratch else "FULL"))
        conn.execute("PRAGMA foreign_keys = ON")
        # Index inserts land all over their B-trees: keep the pages in memory (64 MiB of
        # cache per connection) and map the file, so a miss costs no read() call.
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA mmap_size = 4294967296")
        conn.execute("PRAGMA temp_store = MEMORY")
        if attach_index:
            # Readers only: a write transaction would lock every attached file, and the
            # writer must never wait for the indexer, nor the indexer for the writer.
            conn.execute("ATTACH DATABASE ? AS ix", (self._index_path,))
            conn.execute("PRAGMA ix.cache_size = -65536")
            conn.execute("PRAGMA ix.mmap_size = 4294967296")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(attach_index=True)
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    def _migrate(self) -> None:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                current = row[0] or 0
                for version, script in SQLITE_MIGRATIONS:
                    if version > current:
                        for statement in script:
                            conn.execute(statement)
                        if version in SQLITE_DATA_STEPS:
                            SQLITE_DATA_STEPS[version](conn)
                        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        row = self._reader().execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0])

    # -- writes -------------------------------------------------------------------------
    _row_id: int | None = None

    def _next_row(self, conn: sqlite3.Connection) -> int:
        # The writer numbers rows itself, so the full-text index gets its rowid without a
        # lookup; only this writer inserts, so the number read once stays right.
        if self._row_id is None:
            self._row_id = int(conn.execute("SELECT coalesce(max(row), 0) + 1 FROM events").fetchone()[0])
        return self._row_id

    def _edge(self, conn: sqlite3.Connection, tenant: str) -> tuple[int, dict[int, bytes]]:
        cached = self._edges.edges.get(tenant)
        if cached is not None:
            return cached
        row = conn.execute("SELECT tree_size FROM heads WHERE tenant = ?", (tenant,)).fetchone()
        size = row[0] if row else 0
        edge: dict[int, bytes] = {}
        for level, index in tiles.edge_tiles(size):
            got = conn.execute(
                "SELECT hashes FROM tiles WHERE tenant = ? AND level = ? AND idx = ?",
                (tenant, level, index),
            ).fetchone()
            if got is not None:
                edge[level] = got[0]
        return size, edge

    def append(self, requests: Sequence[AppendRequest]) -> tuple[list[list[Appended]], list[Head]]:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            edges = dict(self._edges.edges)
            try:
                results = [self._append_one(conn, edges, request) for request in requests]
                self._statements.drain()
                heads = []
                for tenant, (size, edge) in edges.items():
                    if tenant in {r.tenant for r in requests}:
                        root = _root(conn, tenant, size, edge)
                        conn.execute(
                            "INSERT INTO heads (tenant, tree_size, root_hash) VALUES (?, ?, ?) "
                            "ON CONFLICT (tenant) DO UPDATE SET tree_size = excluded.tree_size, "
                            "root_hash = excluded.root_hash",
                            (tenant, size, root),
                        )
                        heads.append(Head(tenant, size, root))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    self._statements.drain()
                conn.execute("ROLLBACK")
                self._row_id = None
                raise
            self._edges.edges = edges
            self._index_committed()
            return results, heads

    def _index_committed(self) -> None:
        """Have what was just committed indexed: now (inline) or by the index's thread."""
        if self._index_inline:
            self.search_index.catch_up()
        else:
            self.search_index.notify()

    def _append_one(
        self,
        conn: sqlite3.Connection,
        edges: dict[str, tuple[int, dict[int, bytes]]],
        request: AppendRequest,
    ) -> list[Appended]:
        tenant = request.tenant
        # What the last request handed over runs before this one reads the connection.
        self._statements.drain()
        size, edge = edges.get(tenant) or self._edge(conn, tenant)
        ids = [p.id for p in request.events if p.producer_id]
        known: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(
                conn.execute(
                    f"SELECT id, seq FROM events WHERE tenant = ? AND id IN ({marks})",
                    (tenant, *chunk),
                ).fetchall()
            )
        out: list[Appended] = []
        # The rows go to the statement thread a chunk at a time, each as soon as it is made:
        # SQLite inserts one chunk while this thread makes the next.
        values: list[Any] = []
        add = values.extend
        made = 0
        leaf_hashes: list[bytes] = []
        seq = size
        row_id = self._next_row(conn)
        sha256 = hashlib.sha256
        statements = self._statements
        for prepared in request.events:
            event_id = prepared.id
            if prepared.producer_id:  # only a producer's own id can repeat
                first = known.get(event_id)
                if first is not None:
                    out.append(Appended(event_id, first, b"", duplicate=True))
                    continue
                known[event_id] = seq
            body = prepared.leaf_bytes(seq)
            leaf = sha256(b"\x00" + body).digest()
            record = prepared.record
            add((row_id, tenant, seq, event_id, leaf, body))
            add(index_columns(record, prepared.occurred_us))
            values.append(search_text(record) or None)
            leaf_hashes.append(leaf)
            out.append(Appended(event_id, seq, leaf))
            seq += 1
            row_id += 1
            made += 1
            if made == _ROWS_PER_STATEMENT:
                statements.execute(_insert_events(made), values)
                values = []
                add = values.extend
                made = 0
        if made:
            statements.execute(_insert_events(made), values)
        if leaf_hashes:
            self._row_id = row_id
            new_edge, written = tiles.append_leaves(size, edge, leaf_hashes)
            statements.execute(
                "INSERT OR REPLACE INTO tiles (tenant, level, idx, hashes) VALUES (?, ?, ?, ?)",
                [(tenant, t.level, t.index, t.hashes) for t in written],
                many=True,
            )
            edges[tenant] = (seq, new_edge)
        else:
            edges[tenant] = (size, edge)
        return out

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        with self._write_lock:
            self._writer.execute(
                "INSERT OR IGNORE INTO checkpoints (tenant, tree_size, root_hash, note, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    checkpoint.tenant,
                    checkpoint.tree_size,
                    checkpoint.root_hash,
                    checkpoint.note,
                    checkpoint.created_at,
                ),
            )

    # -- the tree -----------------------------------------------------------------------
    def tree_size(self, tenant: str) -> int:
        row = self._reader().execute("SELECT tree_size FROM heads WHERE tenant = ?", (tenant,)).fetchone()
        return int(row[0]) if row else 0

    def tile(self, tenant: str, level: int, index: int) -> bytes | None:
        row = (
            self._reader()
            .execute(
                "SELECT hashes FROM tiles WHERE tenant = ? AND level = ? AND idx = ?",
                (tenant, level, index),
            )
            .fetchone()
        )
        return bytes(row[0]) if row else None

    def tiles(self, tenant: str) -> Iterator[tuple[int, int, bytes]]:
        cursor = self._reader().execute(
            "SELECT level, idx, hashes FROM tiles WHERE tenant = ? ORDER BY level, idx", (tenant,)
        )
        for level, index, hashes in cursor:
            yield level, index, bytes(hashes)

    def leaves(self, tenant: str, start: int = 0) -> Iterator[StoredLeaf]:
        names = ", ".join(INDEX_COLUMN_NAMES)
        cursor = self._connect().execute(
            f"SELECT seq, body, leaf_hash, {names} FROM events WHERE tenant = ? AND seq >= ? ORDER BY seq",
            (tenant, start),
        )
        try:
            for row in cursor:
                yield StoredLeaf(row[0], row[1], row[2], dict(zip(INDEX_COLUMN_NAMES, row[3:], strict=True)))
        finally:
            cursor.connection.close()

    def verify_rows(self, tenant: str, start: int, end: int) -> Iterator[list[VerifyRow]]:
        # A connection of its own, as for leaves(): a verification reads for a long time. The
        # probe for BLOBs and the rows are read in one transaction, so they see the same rows.
        conn = self._connect(attach_index=True)
        try:
            conn.execute("BEGIN")
            cursor = conn.execute(_VERIFY_ROWS, (tenant, start, end))
            while batch := cursor.fetchmany(_VERIFY_BATCH):
                yield batch
        finally:
            conn.close()

    def stored_targets(self, tenant: str, start: int, end: int) -> list[tuple[int, str, str]]:
        rows: list[tuple[int, str, str]] = (
            self._reader()
            .execute(
                "SELECT seq, type, id FROM ix.event_targets WHERE tenant = ? AND seq >= ? AND seq < ?",
                (tenant, start, end),
            )
            .fetchall()
        )
        return rows

    def indexed_below(self, tenant: str) -> int:
        """The search index holds every record of the tenant below this seq."""
        return _watermark(self._reader(), tenant)

    derived_targets = True  # the search index file holds them

    def indexed_columns(self, tenant: str, start: int, end: int) -> tuple[int, list[bytes | None]]:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            stop = min(end, _watermark(conn, tenant))
            if stop <= start:
                return start, []
            try:
                return stop, [row[0] for row in conn.execute(_INDEXED_COLUMNS, (tenant, start, stop))]
            except sqlite3.OperationalError:  # a BLOB put in the index by hand
                return stop, [None]
        finally:
            conn.execute("COMMIT")

    def index_difference(self, tenant: str, start: int, end: int) -> tuple[int, str] | None:
        row = self._reader().execute(_INDEX_DIFFERENCE, (tenant, start, end)).fetchone()
        if row is None:
            return None
        seq, missing = row[0], row[1]
        if missing:
            return seq, f"record {seq} is missing from the search index"
        found = column_difference(seq, row[2:], "the search index")
        return None if found is None else (seq, found)

    def shared_url(self) -> str | None:
        if self._scratch is not None:
            return None
        return "sqlite:///" + url2pathname(urlsplit(self._target).path)

    def checkpoints(self, tenant: str) -> list[StoredCheckpoint]:
        rows = self._reader().execute(
            "SELECT tenant, tree_size, root_hash, note, created_at FROM checkpoints "
            "WHERE tenant = ? ORDER BY tree_size",
            (tenant,),
        )
        return [StoredCheckpoint(*row) for row in rows]

    def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None:
        row = (
            self._reader()
            .execute(
                "SELECT tenant, tree_size, root_hash, note, created_at FROM checkpoints "
                "WHERE tenant = ? ORDER BY tree_size DESC LIMIT 1",
                (tenant,),
            )
            .fetchone()
        )
        return StoredCheckpoint(*row) if row else None

    def tenants(self) -> list[str]:
        rows = self._reader().execute("SELECT tenant FROM heads ORDER BY tenant")
        return [row[0] for row in rows]

    # -- reads --------------------------------------------------------------------------
    def get(self, tenant: str, event_id: str) -> Record | None:
        row = (
            self._reader()
            .execute(
                "SELECT body, leaf_hash FROM events WHERE tenant = ? AND id = ? AND body IS NOT NULL",
                (tenant, event_id),
            )
            .fetchone()
        )
        return with_leaf_hash(row[0], row[1]) if row else None

    def get_by_seq(self, tenant: str, seq: int) -> Record | None:
        row = (
            self._reader()
            .execute(
                "SELECT body, leaf_hash FROM events WHERE tenant = ? AND seq = ? AND body IS NOT NULL",
                (tenant, seq),
            )
            .fetchone()
        )
        return with_leaf_hash(row[0], row[1]) if row else None

    # Below this many candidate rows, fetching them all and sorting beats walking the time
    # order; above it, the walk finds a page's worth of matches soon enough.
    SORT_AFTER_AT_MOST = 2000

    def _few_candidates(self, query: PageQuery, conn: sqlite3.Connection | None = None) -> str | None:
        """Which filter that an ordered index cannot serve ("text", "target", "prefix"), if
        any, selects few enough rows to start from. This is the planner's one question that
        SQLite, without statistics on those sets, cannot answer well by itself."""
        conn = conn or self._reader()
        cap = self.SORT_AFTER_AT_MOST + 1
        probes: list[tuple[str, str, tuple[Any, ...]]] = []
        if query.filter.text:
            text = _fts_query(query.filter.text)
            probes.append(("text", "SELECT rowid FROM ix.events_fts WHERE events_fts MATCH ?", (text,)))
        for term in query.filter.terms:
            if term.negated:
                continue
            if term.field in ("target", "target_type"):
                table, column, kind = "ix.event_targets", "id" if term.field == "target" else "type", "target"
            elif term.prefix and term.value:
                table, column, kind = "ix.search_rows", COLUMNS[term.field], "prefix"
            else:
                continue
            if term.prefix:
                match = f"{column} >= ? AND {column} < ?"
                values: tuple[Any, ...] = (term.value, prefix_upper_bound(term.value))
            else:
                match, values = f"{column} = ?", (term.value,)
            probes.append(
                (kind, f"SELECT 1 FROM {table} WHERE tenant = ? AND {match}", (query.tenant, *values))
            )
        for kind, sql, params in probes:
            found = conn.execute(f"SELECT count(*) FROM ({sql} LIMIT {cap})", params).fetchone()[0]
            if found < cap:
                return kind
        return None

    def purged_before(self, tenant: str) -> int | None:
        row = self._reader().execute("SELECT before_us FROM purges WHERE tenant = ?", (tenant,)).fetchone()
        return int(row[0]) if row else None

    def _unpurged(self, tenant: str, query_filter: Filter) -> Filter:
        mark = self.purged_before(tenant)
        return query_filter if mark is None else query_filter.merge(Filter(after_us=mark))

    def page(self, query: PageQuery) -> list[tuple[Position, Record]]:
        query = dataclasses.replace(query, filter=self._unpurged(query.tenant, query.filter))
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            statements = self._page_statements(conn, query)
            rows = []
            for sql, params in statements:
                rows += conn.execute(sql, params).fetchall()
            if len(statements) > 1:
                rows.sort(key=lambda row: (row[0], row[1]), reverse=query.order != "asc")
                del rows[query.limit :]
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc):
                raise InvalidArgument("q", f"text search: {exc}") from None
            raise
        finally:
            conn.execute("COMMIT")
        return [(Position(o, s), with_leaf_hash(body, leaf)) for o, s, body, leaf in rows]

    def explain(self, query: PageQuery) -> list[list[str]]:
        """The plan SQLite makes for each statement of a page: what the planner tests read."""
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return [
                [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
                for sql, params in self._page_statements(conn, query)
            ]
        finally:
            conn.execute("COMMIT")

    def _page_statements(self, conn: sqlite3.Connection, query: PageQuery) -> list[tuple[str, list[Any]]]:
        """The statements whose rows, merged in order, make a page."""
        if not query.filter.terms and not query.filter.text:
            # Time alone: the events table's own time index.
            return [self._page_sql(conn, query, TABLE)]
        statements = []
        watermark = _watermark(conn, query.tenant)
        if watermark > 0:
            statements.append(self._page_sql(conn, query, dataclasses.replace(INDEXED, below_seq=watermark)))
        unindexed = _unindexed_source(conn, query.tenant, watermark, bool(query.filter.text))
        if unindexed is not None:
            # The unindexed records are few: their matches are found and sorted.
            statements.append(page_sql(query, DIALECT, sort_after=True, source=unindexed))
        return statements

    def _page_sql(self, conn: sqlite3.Connection, query: PageQuery, source: Source) -> tuple[str, list[Any]]:
        driver = self._few_candidates(query, conn)
        return page_sql(
            query,
            DIALECT,
            sort_after=driver is not None,
            drive_by_text=driver == "text",
            hide_prefixes=driver is None,
            source=source,
        )

    def count(self, tenant: str, filter: Filter, group_by: str) -> list[tuple[str | None, int]]:
        filter = self._unpurged(tenant, filter)
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            # The indexed records and the unindexed ones, counted apart and added up.
            watermark = _watermark(conn, tenant)
            sources = []
            if watermark > 0:
                indexed = INDEXED if filter.text else INDEXED_COLUMNS
                sources.append(dataclasses.replace(indexed, below_seq=watermark))
            unindexed = _unindexed_source(conn, tenant, watermark, bool(filter.text))
            if unindexed is not None:
                sources.append(unindexed)
            rows = (
                conn.execute(*count_sql(filter, tenant, group_by, DIALECT, tuple(sources))).fetchall()
                if sources
                else []
            )
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc):
                raise InvalidArgument("q", f"text search: {exc}") from None
            raise
        finally:
            conn.execute("COMMIT")
        return [(None if key is None else str(key), int(n)) for key, n in rows]

    def since_seq(self, tenant: str, seq: int, limit: int) -> list[Record]:
        rows = self._reader().execute(
            "SELECT body, leaf_hash FROM events WHERE tenant = ? AND seq >= ? AND body IS NOT NULL "
            "ORDER BY seq LIMIT ?",
            (tenant, seq, limit),
        )
        return [with_leaf_hash(body, leaf) for body, leaf in rows]

    # -- keys ---------------------------------------------------------------------------
    def add_key(self, key: ApiKey, secret_hash: bytes) -> None:
        with self._write_lock:
            self._writer.execute(
                "INSERT INTO api_keys (id, tenant, secret_hash, scopes, name, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key.id, key.tenant, secret_hash, " ".join(key.scopes), key.name, key.created_at),
            )

    _KEY_COLUMNS = "id, tenant, scopes, created_at, last_used_at, revoked_at, name"

    @staticmethod
    def _key(row: Sequence[Any]) -> ApiKey:
        return ApiKey(row[0], row[1], tuple(row[2].split()), row[3], row[4], row[5], row[6])

    def key_by_hash(self, secret_hash: bytes) -> ApiKey | None:
        return self._key_where("secret_hash", secret_hash)

    def key(self, key_id: str) -> ApiKey | None:
        return self._key_where("id", key_id)

    def _key_where(self, column: str, value: object) -> ApiKey | None:
        """The key whose ``column`` (unique: its id or its secret's hash) holds ``value``."""
        sql = f"SELECT {self._KEY_COLUMNS} FROM api_keys WHERE {column} = ?"
        row = self._reader().execute(sql, (value,)).fetchone()
        return self._key(row) if row else None

    def keys(self, tenant: str | None = None) -> list[ApiKey]:
        if tenant is None:
            rows = self._reader().execute(f"SELECT {self._KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")
        else:
            rows = self._reader().execute(
                f"SELECT {self._KEY_COLUMNS} FROM api_keys WHERE tenant = ? ORDER BY created_at, id",
                (tenant,),
            )
        return [self._key(row) for row in rows]

    def revoke_key(self, key_id: str, when: str) -> ApiKey | None:
        with self._write_lock:
            self._writer.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (when, key_id),
            )
            row = self._writer.execute(
                f"SELECT {self._KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        return self._key(row) if row else None

    def touch_key(self, key_id: str, when: str) -> None:
        with self._write_lock:
            self._writer.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (when, key_id))

    # -- tenant settings and retention ---------------------------------------------------
    def verifier_key(self, tenant: str) -> str | None:
        row = (
            self._reader()
            .execute("SELECT verifier_key FROM tenant_keys WHERE tenant = ?", (tenant,))
            .fetchone()
        )
        return str(row[0]) if row else None

    def set_verifier_key(self, tenant: str, verifier_key: str) -> str:
        with self._write_lock:
            self._writer.execute(
                "INSERT OR IGNORE INTO tenant_keys (tenant, verifier_key) VALUES (?, ?)",
                (tenant, verifier_key),
            )
            row = self._writer.execute(
                "SELECT verifier_key FROM tenant_keys WHERE tenant = ?", (tenant,)
            ).fetchone()
        return str(row[0])

    def retention_days(self) -> dict[str, int]:
        rows = self._reader().execute("SELECT tenant, days FROM retention ORDER BY tenant")
        return {tenant: int(days) for tenant, days in rows}

    def set_retention_days(self, tenant: str, days: int | None) -> None:
        with self._write_lock:
            if days is None:
                self._writer.execute("DELETE FROM retention WHERE tenant = ?", (tenant,))
            else:
                self._writer.execute(
                    "INSERT INTO retention (tenant, days) VALUES (?, ?) "
                    "ON CONFLICT (tenant) DO UPDATE SET days = excluded.days",
                    (tenant, days),
                )

    def purge(self, tenant: str, before_us: int) -> int:
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                # The search text goes with the body; the search index forgets the
                # records' words on its next pass.
                purged = conn.execute(
                    "UPDATE events SET body = NULL, text = NULL "
                    "WHERE tenant = ? AND occurred_us < ? AND body IS NOT NULL",
                    (tenant, before_us),
                ).rowcount
                conn.execute(
                    "INSERT INTO purges (tenant, before_us) VALUES (?, ?) ON CONFLICT (tenant) "
                    "DO UPDATE SET before_us = max(before_us, excluded.before_us)",
                    (tenant, before_us),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._index_committed()
        return purged

    def close(self) -> None:
        self.search_index.close()
        for conn in self._readers:
            conn.close()
        self._statements.close()
        self._writer.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _watermark(conn: sqlite3.Connection, tenant: str) -> int:
    """Every record of the tenant below this seq is in the search index."""
    row = conn.execute("SELECT next_seq FROM ix.watermarks WHERE tenant = ?", (tenant,)).fetchone()
    return int(row[0]) if row else 0


def _unindexed_source(conn: sqlite3.Connection, tenant: str, watermark: int, text: bool) -> Source | None:
    """How to read the tenant's records at or above the watermark; None when there are none.
    With ``text``, their words are made ready to match first."""
    row = conn.execute(
        "SELECT 1 FROM events WHERE tenant = ? AND seq >= ? LIMIT 1", (tenant, watermark)
    ).fetchone()
    if row is None:
        return None
    if text:
        _tokenize_tail(conn, tenant, watermark)
    return _unindexed(watermark)


# Words of records below the watermark that the tail table may keep, beyond the unindexed
# records' own, before it is emptied and filled again.
_TAIL_SLACK = 10_000


def _tokenize_tail(conn: sqlite3.Connection, tenant: str, watermark: int) -> None:
    """Put the words of the tenant's unindexed records into the connection's own temporary
    full-text table, with the search index's tokenizer, so that they match a text term
    exactly as they will once indexed. In the read transaction of the statements that use
    it, so both see the same records.

    The table keeps what it holds from one search to the next (``temp.tail_words`` says
    which of the tenant's records, by seq): a search tokenizes only the records committed
    since. Words of records the index has taken since are left in place, as the statements
    read only the records at or above the watermark; the table is emptied when those would
    outnumber the unindexed ones, or another tenant is searched. So a search during a large
    rebuild of the index, when most records are unindexed, does not tokenize them all each
    time: the work over the rebuild is about twice the first search's."""
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.tail_fts "
        f"USING fts5 (text, content='', tokenize='{TOKENIZE}')"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS temp.tail_words (tenant TEXT NOT NULL, start INTEGER NOT NULL, "
        "upto INTEGER NOT NULL)"
    )
    held = conn.execute("SELECT tenant, start, upto FROM temp.tail_words").fetchone()
    end = conn.execute("SELECT coalesce(max(seq) + 1, 0) FROM events WHERE tenant = ?", (tenant,)).fetchone()[
        0
    ]
    if (
        held is None
        or held[0] != tenant
        or not held[1] <= watermark <= held[2] <= end
        or watermark - held[1] > max(end - watermark, _TAIL_SLACK)
    ):
        conn.execute("INSERT INTO temp.tail_fts (tail_fts) VALUES ('delete-all')")
        start = upto = watermark
    else:
        start, upto = held[1], held[2]
    if end > upto:
        conn.execute(
            "INSERT INTO temp.tail_fts (rowid, text) SELECT row, text FROM events "
            "WHERE tenant = ? AND seq >= ? AND seq < ? AND text IS NOT NULL",
            (tenant, upto, end),
        )
    conn.execute("DELETE FROM temp.tail_words")
    conn.execute("INSERT INTO temp.tail_words VALUES (?, ?, ?)", (tenant, start, max(end, upto)))


def _root(conn: sqlite3.Connection, tenant: str, size: int, edge: dict[int, bytes]) -> bytes:
    """The root of a tenant's tree, from its edge tiles (every node the root needs is in the
    partial tiles of the right edge) and, failing that, the stored tiles."""
    partial = dict(tiles.edge_tiles(size))

    def fetch(level: int, index: int) -> bytes | None:
        if partial.get(level) == index and level in edge:
            return edge[level]
        row = conn.execute(
            "SELECT hashes FROM tiles WHERE tenant = ? AND level = ? AND idx = ?",
            (tenant, level, index),
        ).fetchone()
        return bytes(row[0]) if row else None

    return tiles.TileReader(fetch, size).root()


_INDEX_MODES = ("background", "inline")


def open_sqlite(url: str) -> SQLiteStore:
    """``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``sqlite:///:memory:``,
    optionally with ``?index=inline`` (the writer indexes each commit before acknowledging
    it) or ``?index=background`` (the default: a thread indexes what was committed)."""
    if not url.startswith("sqlite:///"):
        raise InvalidArgument("db", f"a SQLite URL looks like sqlite:///path/to/file.db, not {url!r}")
    path, _, options = url[len("sqlite:///") :].partition("?")
    if not path:
        raise InvalidArgument("db", "the SQLite URL names no file")
    index = "background"
    for option in filter(None, options.split("&")):
        name, _, value = option.partition("=")
        if name != "index" or value not in _INDEX_MODES:
            raise InvalidArgument(
                "db", f"a SQLite URL takes only index={' or index='.join(_INDEX_MODES)}, not {option!r}"
            )
        index = value
    return SQLiteStore(url, path, index=index)
