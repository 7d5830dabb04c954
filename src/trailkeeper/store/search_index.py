"""The SQLite store's search index: the value-keyed and full-text indexes, kept off the
acknowledged path.

A record is acknowledged once its row in ``events`` (found by seq, by id and by time, with
its search text beside it) and its tree tiles are committed durably. The indexes that serve
the filters on values (actor, action, category, outcome, actor type, integration, workflow
run, IP, targets) take their keys from all over their B-trees: kept up in each commit, every
one of them dirties about a page per event, and WAL writes every dirty page at each commit;
the full-text index costs the writer a fifth of its time in tokenizing and merging. Here
they live in a second file beside the log, ``<db>.index``, filled from the committed events
by a thread of their own, thousands of events per transaction: a page is written once for
many keys, and the work runs beside the writer instead of in its way.

Everything in the index is derived from the events, so it can be deleted at any time and is
rebuilt. Each tenant has a watermark: the index holds exactly the records below it. A search
reads the records below the watermark through the index and the few above it (the newest,
committed since the last pass) from the events table, so it sees every committed record at
once, indexed or not. The watermark also keeps the leaf hash of the last record indexed: an
index that no longer matches its log (a log restored from a copy, say) is rebuilt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading

import msgspec

from trailkeeper.store.passes import PacedPasses
from trailkeeper.store.sql import INDEX_COLUMN_NAMES

log = logging.getLogger("trailkeeper")

# The version of the index file's layout; a file of another version is emptied and rebuilt.
INDEX_VERSION = 3

# The full-text index's tokenizer, which the unindexed records' text is matched with too.
TOKENIZE = "unicode61 remove_diacritics 2"
_COLUMNS = ("tenant", "seq", *INDEX_COLUMN_NAMES)
# The events table's types, so that comparisons between the two use the indexes (a column
# without a type compares with an INTEGER one only after a conversion no index serves).
_TYPES = {"seq": "INTEGER", "occurred_us": "INTEGER"}
SCHEMA = (
    "CREATE TABLE meta (version INTEGER NOT NULL)",
    # Every record of the tenant with seq < next_seq is in the index; last_leaf is the leaf
    # hash of record next_seq - 1, to tell this index from one of another log.
    """CREATE TABLE watermarks (
        tenant TEXT PRIMARY KEY,
        next_seq INTEGER NOT NULL,
        last_leaf BLOB
    ) WITHOUT ROWID""",
    # The searchable columns, copied from the events table: compact rows that the indexes
    # below point into, and that counts (the console's charts) read instead of the events.
    "CREATE TABLE search_rows ("
    + ", ".join(f"{name} {_TYPES.get(name, 'TEXT')}" for name in _COLUMNS)
    + ", PRIMARY KEY (tenant, seq)) WITHOUT ROWID",
    # One index per filter of CONTRACT section 4, each ending in the result order, so that a
    # filtered page is read in order from one index and stops at the limit.
    "CREATE INDEX search_time ON search_rows (tenant, occurred_us, seq)",
    "CREATE INDEX search_actor ON search_rows (tenant, actor_id, occurred_us, seq)",
    "CREATE INDEX search_action ON search_rows (tenant, action, occurred_us, seq)",
    "CREATE INDEX search_category ON search_rows (tenant, category, occurred_us, seq)",
    # Most events succeed and most actors are people or agents: for those values the time
    # order itself finds a page of matches at once, so these indexes hold only the rest
    # (see sql.PARTIAL_INDEXES).
    "CREATE INDEX search_outcome ON search_rows (tenant, outcome, occurred_us, seq) "
    "WHERE outcome <> 'success'",
    "CREATE INDEX search_actor_type ON search_rows (tenant, actor_type, occurred_us, seq) "
    "WHERE actor_type NOT IN ('user', 'agent')",
    "CREATE INDEX search_integration ON search_rows (tenant, integration, occurred_us, seq) "
    "WHERE integration IS NOT NULL",
    "CREATE INDEX search_run ON search_rows (tenant, workflow_run, occurred_us, seq) "
    "WHERE workflow_run IS NOT NULL",
    "CREATE INDEX search_ip ON search_rows (tenant, ip, occurred_us, seq) WHERE ip IS NOT NULL",
    """CREATE TABLE event_targets (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        PRIMARY KEY (tenant, id, seq, type)
    ) WITHOUT ROWID""",
    "CREATE INDEX event_targets_type ON event_targets (tenant, type, seq)",
    "CREATE INDEX event_targets_seq ON event_targets (tenant, seq)",
    # The words of each record's search text, by the log's row number. It keeps the text
    # (it is not contentless), so that the words of purged records can be deleted by row;
    # not the number of words in each (columnsize=0): that serves ranking, which search does
    # not do, and cost a sixth of each insert.
    f"CREATE VIRTUAL TABLE events_fts USING fts5 (text, tokenize='{TOKENIZE}', columnsize=0)",
    # How far each tenant's purges have been applied to the full-text index.
    """CREATE TABLE purges (
        tenant TEXT PRIMARY KEY,
        before_us INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

# Records indexed per transaction: large enough that most index pages take many keys at
# once, small enough that a rebuild of a large log shows progress and holds little memory.
_PASS_ROWS = 100_000


def index_path(log_path: str) -> str:
    return log_path + ".index"


def connect_index(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    # Derived data: a crash may lose the last passes (WAL with NORMAL never corrupts the
    # file), and the watermark, lost with them, has them indexed again.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA mmap_size = 4294967296")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def ensure_schema(path: str) -> None:
    """Make the index file, or empty one of another version and lay it out anew."""
    try:
        _ensure_schema(path)
    except sqlite3.DatabaseError as exc:
        # Not a database at all (a damaged or foreign file): derived data, made again.
        log.warning("the search index %s is unreadable (%s): rebuilding it", path, exc)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        _ensure_schema(path)


def _ensure_schema(path: str) -> None:
    conn = connect_index(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = None
            if "meta" in tables:
                row = conn.execute("SELECT max(version) FROM meta").fetchone()
                version = row[0] if row else None
            if version != INDEX_VERSION:
                for table in tables:
                    conn.execute(f'DROP TABLE "{table}"')
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO meta (version) VALUES (?)", (INDEX_VERSION,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


_INSERT_TEXT = (
    "INSERT OR REPLACE INTO events_fts (rowid, text) "
    "SELECT row, text FROM log.events WHERE tenant = ? AND seq >= ? AND seq < ? AND text IS NOT NULL"
)
# Purges that the full-text index has not followed yet.
_NEW_PURGES = (
    "SELECT p.tenant, p.before_us FROM log.purges p LEFT JOIN purges q ON q.tenant = p.tenant "
    "WHERE q.before_us IS NULL OR q.before_us < p.before_us"
)
_INSERT_ROWS = (
    f"INSERT OR REPLACE INTO search_rows ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_COLUMNS)} FROM log.events WHERE tenant = ? AND seq >= ? AND seq < ?"
)
# The targets, from the bodies that name any: those are copied once into a temporary table,
# and the two statements that read them read it (each read every body of the pass before).
# Every guard is needed: a body changed by hand (which verify reports) must not stop the
# index, only lose its targets. SQLite's JSON functions end a string at an escaped NUL
# (\u0000): the few bodies that hold one are read in Python instead (_NUL_BODIES).
_NAMING_TABLE = "CREATE TEMP TABLE naming (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)"
_COPY_NAMING = (
    "INSERT INTO temp.naming (seq, body) SELECT seq, body FROM log.events "
    "WHERE tenant = ? AND seq >= ? AND seq < ? AND instr(body, '\"targets\":') > 0"
)
_BODY = "CAST(e.body AS TEXT)"
_HAS_NUL = "instr(e.body, '\\u0000') > 0"
_INSERT_TARGETS = (
    "INSERT OR IGNORE INTO event_targets (tenant, id, seq, type) "
    "SELECT ?, json_extract(j.value, '$.id'), e.seq, json_extract(j.value, '$.type') "
    f"FROM temp.naming e, json_each({_BODY}, '$.targets') j "
    f"WHERE NOT {_HAS_NUL} AND json_valid({_BODY}) AND json_type({_BODY}, '$.targets') = 'array' "
    "AND json_type(j.value, '$.id') = 'text' AND json_type(j.value, '$.type') = 'text'"
)
_NUL_BODIES = f"SELECT e.seq, e.body FROM temp.naming e WHERE {_HAS_NUL}"


class _Target(msgspec.Struct):
    type: str
    id: str


class _Targets(msgspec.Struct):
    targets: list[_Target] = []


_decode_targets = msgspec.json.Decoder(_Targets).decode


class SearchIndex:
    """Keeps ``<db>.index`` up with the log: a pass indexes every record committed since
    the last one. ``background`` runs passes on a thread of its own, at most one per
    ``interval`` seconds, so that under load each pass takes a large batch; otherwise the
    owner calls ``catch_up`` itself.

    A pass is a few statements that copy from the log (attached to the index's connection)
    into the index: SQLite does the whole of it without holding Python's GIL, so that the
    writer and the callers, in Python, lose no time to it.
    """

    def __init__(self, path: str, log_path: str, *, background: bool = True, interval: float = 2.0) -> None:
        self.path = path
        ensure_schema(path)
        self._conn = connect_index(path)
        # Only read through this connection, in deferred transactions: the log's writer
        # never waits for the index.
        self._conn.execute("ATTACH DATABASE ? AS log", (log_path,))
        self._conn.execute("PRAGMA log.cache_size = -16384")
        self._conn.execute("PRAGMA log.mmap_size = 4294967296")
        self._conn.execute(_NAMING_TABLE)
        self._lock = threading.Lock()
        self._checked = False
        self._passes: PacedPasses | None = None
        if background:
            self._passes = PacedPasses(
                self._index_in_background,
                name="trailkeeper-index",
                interval=interval,
                failure=f"indexing {path} failed",
            )

    def notify(self) -> None:
        """New records were committed."""
        if self._passes is not None:
            self._passes.notify()

    def pause(self) -> None:
        """Stop indexing in the background (searches then read every record unindexed)."""
        if self._passes is not None:
            self._passes.stop()
            self._passes = None

    def close(self) -> None:
        self.pause()
        with self._lock:
            self._conn.close()

    def _index_in_background(self) -> bool:
        self._index(background=True)
        return False  # _index ran the passes a backlog needs

    def catch_up(self) -> int:
        """Index every committed record not yet indexed; how many were."""
        return self._index(background=False)

    def _index(self, *, background: bool) -> int:
        """Passes until nothing is left. In the background, the records committed while a
        pass ran are left to the next interval's pass (unless the pass stopped at its size):
        many small passes cost far more than one large one, each writing the index pages it
        touches; and a pause stops the passes."""
        total = 0
        with self._lock:
            while done := self._pass():
                total += done
                stopping = self._passes is not None and self._passes.stopping
                if background and (done < _PASS_ROWS or stopping):
                    break
        return total

    def _pass(self) -> int:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            # A write first, which takes the index's write lock (waiting for another
            # process's indexer if need be) before anything is read; BEGIN IMMEDIATE
            # would lock the log too.
            conn.execute("UPDATE meta SET version = version")
            if not self._checked:
                self._forget_other_logs(conn)
                self._checked = True
            self._forget_purged(conn)
            marks = {t: n for t, n in conn.execute("SELECT tenant, next_seq FROM watermarks")}
            budget = _PASS_ROWS
            done = 0
            for tenant, size in conn.execute("SELECT tenant, tree_size FROM log.heads").fetchall():
                start = marks.get(tenant, 0)
                if size <= start or budget <= 0:
                    continue
                end = min(size, start + budget)
                self._index_range(conn, tenant, start, end)
                done += end - start
                budget -= end - start
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return done

    @staticmethod
    def _index_range(conn: sqlite3.Connection, tenant: str, start: int, end: int) -> None:
        conn.execute(_INSERT_ROWS, (tenant, start, end))
        conn.execute(_INSERT_TEXT, (tenant, start, end))
        conn.execute(_COPY_NAMING, (tenant, start, end))
        conn.execute(_INSERT_TARGETS, (tenant,))
        for seq, body in conn.execute(_NUL_BODIES).fetchall():
            try:
                named = _decode_targets(body).targets
            except (msgspec.DecodeError, TypeError):
                continue  # a body changed by hand (verify reports it): no targets
            conn.executemany(
                "INSERT OR IGNORE INTO event_targets (tenant, id, seq, type) VALUES (?, ?, ?, ?)",
                [(tenant, target.id, seq, target.type) for target in named],
            )
        conn.execute("DELETE FROM temp.naming")
        conn.execute(
            "INSERT INTO watermarks (tenant, next_seq, last_leaf) "
            "VALUES (?, ?, (SELECT leaf_hash FROM log.events WHERE tenant = ? AND seq = ?)) "
            "ON CONFLICT (tenant) DO UPDATE SET next_seq = excluded.next_seq, last_leaf = excluded.last_leaf",
            (tenant, end, tenant, end - 1),
        )

    @staticmethod
    def _forget_other_logs(conn: sqlite3.Connection) -> None:
        """Empty the index if the last indexed record of any tenant is not the log's: it was
        made from another log (the full-text index's row numbers are the whole log's, so
        one tenant's rows cannot be told apart from another's there)."""
        stale = conn.execute(
            "SELECT w.tenant FROM watermarks w LEFT JOIN log.events e "
            "ON e.tenant = w.tenant AND e.seq = w.next_seq - 1 "
            "WHERE e.leaf_hash IS NULL OR e.leaf_hash IS NOT w.last_leaf"
        ).fetchall()
        if stale:
            tenants = ", ".join(repr(tenant) for (tenant,) in stale)
            log.warning("the search index does not match the log (tenants %s): rebuilding it", tenants)
            for table in ("search_rows", "event_targets", "events_fts", "purges", "watermarks"):
                conn.execute(f"DELETE FROM {table}")

    @staticmethod
    def _forget_purged(conn: sqlite3.Connection) -> None:
        """Delete the words of records purged since the last pass (their text is gone from
        the log; the index must not keep it). Their other columns stay, as they do in the
        log's own row: searches stop at the purge mark."""
        for tenant, before_us in conn.execute(_NEW_PURGES).fetchall():
            conn.execute(
                "DELETE FROM events_fts WHERE rowid IN "
                "(SELECT row FROM log.events WHERE tenant = ? AND occurred_us < ?)",
                (tenant, before_us),
            )
            conn.execute(
                "INSERT INTO purges (tenant, before_us) VALUES (?, ?) "
                "ON CONFLICT (tenant) DO UPDATE SET before_us = excluded.before_us",
                (tenant, before_us),
            )
