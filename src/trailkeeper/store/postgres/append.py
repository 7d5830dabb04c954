"""One append transaction's work for each tenant it writes: lock the head row, read the
tree's right edge as committed, place the new events at their seqs, write the tiles that
cover them and the new head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from trailkeeper import tiles
from trailkeeper.merkle import EMPTY_ROOT
from trailkeeper.store.base import Appended, AppendRequest, Head
from trailkeeper.store.postgres.rows import Rows, event_rows
from trailkeeper.store.postgres.schema import Connection

# The tiles' hashes go in binary (%b): as text, a batch's few full tiles (8 KiB each) were
# sent hex-encoded and decoded by the server, 1.2 ms of each append's 30 (measured).
_UPSERT_TILES = (
    "INSERT INTO tiles (tenant, level, idx, hashes) "
    "SELECT %s, t.level, t.idx, t.hashes FROM unnest(%s::integer[], %s::bigint[], %b::bytea[]) "
    "AS t(level, idx, hashes) "
    "ON CONFLICT (tenant, level, idx) DO UPDATE SET hashes = excluded.hashes"
)


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


def lock_tenant(
    conn: Connection,
    tenant: str,
    requests: Sequence[AppendRequest],
    edges: dict[str, tuple[int, bytes, dict[int, bytes]]],
) -> _TenantAppend:
    """Lock the tenant's head for this transaction and read its tree as committed; ``edges``
    holds the right edges this process remembers (see :class:`.store.PostgresStore`)."""
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
    cached = edges.get(tenant)
    edge = cached[2] if cached is not None and cached[:2] == (size, root) else _read_edge(conn, tenant, size)
    # Only a producer's id can repeat: a UUIDv7 the server made cannot.
    ids = [p.id for r in requests if r.tenant == tenant for p in r.events if p.producer_id]
    known: dict[str, int] = {}
    if ids:
        rows = conn.execute("SELECT id, seq FROM leaves WHERE tenant = %s AND id = ANY(%s)", (tenant, ids))
        known.update((str(event_id), int(seq)) for event_id, seq in rows)
    return _TenantAppend(size, edge, root, known)


def place(request: AppendRequest, part: _TenantAppend, rows: Rows) -> list[Appended]:
    out: list[Appended] = []
    for prepared in request.events:
        event_id = prepared.id
        seq = part.next_seq
        if prepared.producer_id:  # only a producer's own id can repeat
            first = part.known.get(event_id)
            if first is not None:
                out.append(Appended(event_id, first, b"", duplicate=True))
                continue
            part.known[event_id] = seq
        leaf = event_rows(request.tenant, seq, prepared, rows)
        part.leaf_hashes.append(leaf)
        out.append(Appended(event_id, seq, leaf))
    return out


def write_tree(conn: Connection, tenant: str, part: _TenantAppend) -> tuple[Head, dict[int, bytes]]:
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
