"""The store contract: what every backend does, and nothing about how.

A store keeps, per tenant: the records (their canonical bytes, the leaf bytes, and the
columns search needs), the Merkle tiles that cover them, the signed checkpoints, and the API
keys. The facade (:mod:`trailkeeper.auditlog`) owns validation, signing and paging; a store
only reads and writes, each write in one transaction. The conformance suite in
``tests/conformance`` runs unchanged against every store.
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from trailkeeper.events import Prepared
from trailkeeper.query import Filter

Record = dict[str, Any]

GROUP_BY = ("category", "action", "actor", "outcome", "integration", "hour", "day")


@dataclass
class AppendRequest:
    """One caller's batch for one tenant: appended whole or not at all."""

    tenant: str
    events: list[Prepared]


class Appended(msgspec.Struct, frozen=True, gc=False):
    """Where an event of a batch stands in its tenant's log.

    A Struct, made in C: the writer makes one per event, and a frozen dataclass took half a
    microsecond to make."""

    id: str
    seq: int
    leaf_hash: bytes
    duplicate: bool = False


@dataclass(frozen=True)
class Head:
    """A tenant's tree after a write: its size and root."""

    tenant: str
    tree_size: int
    root_hash: bytes


@dataclass(frozen=True)
class StoredCheckpoint:
    tenant: str
    tree_size: int
    root_hash: bytes
    note: str
    created_at: str


@dataclass(frozen=True)
class StoredLeaf:
    """A row as `verify` sees it: the position, the stored bytes and hash, and the columns
    search uses (so that an edit to them alone is caught too)."""

    seq: int
    body: bytes | None
    leaf_hash: bytes
    columns: dict[str, Any] = field(default_factory=dict)


VerifyRow = tuple[int, bytes | None, bytes, bytes | None]
"""A row as :meth:`Store.verify_rows` gives it: ``(seq, body, leaf_hash, columns)``."""


def columns_text(place_and_columns: list[Any]) -> bytes | None:
    """``[seq, tenant, *columns]`` as the compact JSON text :meth:`Store.verify_rows` gives,
    or None when a column holds what JSON cannot."""
    try:
        return json.dumps(
            place_and_columns, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError):  # bytes, or a float JSON has no number for
        return None


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    scopes: tuple[str, ...]
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "scopes": list(self.scopes),
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True)
class Position:
    """A point in the result order (occurred_at, then seq): where a page stopped."""

    occurred_us: int
    seq: int


@dataclass(frozen=True)
class PageQuery:
    tenant: str
    filter: Filter
    order: str = "desc"
    limit: int = 100
    after: Position | None = None
    # Only records below this seq: the log as it was when paging began, so that a cursor
    # never shows an event that arrived in the middle of the walk.
    below_seq: int | None = None


def encode_body(body: bytes) -> Record:
    """Leaf bytes back to the record they encode."""
    record: Record = json.loads(body)
    return record


def with_leaf_hash(body: bytes, leaf_hash: bytes) -> Record:
    record = encode_body(body)
    record["leaf_hash"] = leaf_hash.hex()
    return record


def close_rows(rows: Iterator[Any]) -> None:
    """Close an iterator of rows (a generator that holds a cursor or a connection) that its
    reader left before the end; an iterator with nothing to close is left as it is."""
    close = getattr(rows, "close", None)
    if close is not None:
        close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Store(ABC):
    """What a backend provides. Every method is safe to call from any thread; `append` and
    the other writes are only ever called by the facade's one writer thread per process."""

    url: str

    @abstractmethod
    def schema_version(self) -> int:
        """The version of the schema the store is at (its migrations applied)."""

    # -- writes -----------------------------------------------------------------------
    @abstractmethod
    def append(self, requests: Sequence[AppendRequest]) -> tuple[list[list[Appended]], list[Head]]:
        """Append every request in one transaction (group commit).

        Each tenant's ``seq`` continues gap-free; an event whose ``id`` the tenant already
        holds (or that an earlier event of the same call holds) is not stored again, and its
        first seq is returned with ``duplicate=True``. Leaves and the tiles covering them are
        written in the same transaction. Returns, per request, where each event stands, and
        the new head of every tenant written. Durable once it returns.
        """

    @abstractmethod
    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None: ...

    # -- the tree ---------------------------------------------------------------------
    @abstractmethod
    def tree_size(self, tenant: str) -> int: ...

    @abstractmethod
    def tile(self, tenant: str, level: int, index: int) -> bytes | None:
        """The stored hashes of one tile (see :mod:`trailkeeper.tiles`), or None."""

    @abstractmethod
    def tiles(self, tenant: str) -> Iterator[tuple[int, int, bytes]]:
        """Every stored tile of a tenant, as (level, index, hashes)."""

    @abstractmethod
    def leaves(self, tenant: str, start: int = 0) -> Iterator[StoredLeaf]:
        """Every stored row of a tenant from ``start``, in seq order, for verification."""

    def verify_rows(self, tenant: str, start: int, end: int) -> Iterator[list[VerifyRow]]:
        """The rows with ``start <= seq < end``, in seq order and in batches, as verification
        reads them: ``(seq, body, leaf_hash, columns)``. ``columns`` is the compact JSON text
        (no spaces) of the array ``[seq, tenant, *the searchable columns]``, in the order of
        ``store.sql.INDEX_COLUMN_NAMES``, or None when a column holds what JSON cannot.

        One text per row lets the caller check every column of a batch with one comparison
        instead of one Python object per column. This default reads :meth:`leaves`; a backend
        can build the same rows in its own query, much faster.
        """
        from trailkeeper.store.sql import INDEX_COLUMN_NAMES  # sql imports this module

        leaves = self.leaves(tenant, start)
        batch: list[VerifyRow] = []
        try:
            for leaf in leaves:
                if leaf.seq >= end:
                    break
                text = columns_text([leaf.seq, tenant, *map(leaf.columns.get, INDEX_COLUMN_NAMES)])
                batch.append((leaf.seq, leaf.body, leaf.leaf_hash, text))
                if len(batch) == 1024:
                    yield batch
                    batch = []
        finally:
            close_rows(leaves)
        if batch:
            yield batch

    @abstractmethod
    def stored_targets(self, tenant: str, start: int, end: int) -> list[tuple[int, str, str]]:
        """``(seq, type, id)`` of every target row of the records with ``start <= seq < end``,
        as target searches read them (verify compares them with the bodies)."""

    # Whether the target rows are part of that derived copy (written after the commit) rather
    # than written with the records.
    derived_targets = False

    def indexed_columns(self, tenant: str, start: int, end: int) -> tuple[int, list[bytes | None]] | None:
        """For a store that keeps a derived copy of the searchable columns and the target
        rows (a search index filled after the commit): the seq ``stop`` up to which that copy
        holds every record of ``start <= seq < end``, and its columns of those records in seq
        order, each as :meth:`verify_rows` gives them; the records from ``stop`` on have no
        target rows yet (searches read theirs from the bodies). None (the default) for a
        store without such a copy, whose target rows are written with the records."""
        return None

    def index_difference(self, tenant: str, start: int, end: int) -> tuple[int, str] | None:
        """The first record of ``start <= seq < end`` whose copy in the derived search index
        differs from its columns, and how; None when none does."""
        return None

    def shared_url(self) -> str | None:
        """A URL by which another process reaches this same store, so that a long read (a
        verification) can be shared out; None when no other process can (by default, and for
        an ephemeral store)."""
        return None

    @abstractmethod
    def checkpoints(self, tenant: str) -> list[StoredCheckpoint]:
        """Every checkpoint of a tenant, oldest first."""

    @abstractmethod
    def latest_checkpoint(self, tenant: str) -> StoredCheckpoint | None: ...

    @abstractmethod
    def tenants(self) -> list[str]: ...

    # -- reads ------------------------------------------------------------------------
    @abstractmethod
    def get(self, tenant: str, event_id: str) -> Record | None: ...

    @abstractmethod
    def get_by_seq(self, tenant: str, seq: int) -> Record | None: ...

    @abstractmethod
    def page(self, query: PageQuery) -> list[tuple[Position, Record]]:
        """Up to ``limit`` records matching the filter, in order, after ``after``."""

    @abstractmethod
    def count(self, tenant: str, filter: Filter, group_by: str) -> list[tuple[str | None, int]]:
        """Counts of the matching records per group (see ``GROUP_BY``); hour and day keys are
        the bucket's start in microseconds since the epoch, as text."""

    @abstractmethod
    def since_seq(self, tenant: str, seq: int, limit: int) -> list[Record]:
        """Records with seq >= ``seq``, in seq order (for following a log)."""

    # -- keys -------------------------------------------------------------------------
    @abstractmethod
    def add_key(self, key: ApiKey, secret_hash: bytes) -> None: ...

    @abstractmethod
    def key_by_hash(self, secret_hash: bytes) -> ApiKey | None: ...

    @abstractmethod
    def key(self, key_id: str) -> ApiKey | None: ...

    @abstractmethod
    def keys(self, tenant: str | None = None) -> list[ApiKey]: ...

    @abstractmethod
    def revoke_key(self, key_id: str, when: str) -> ApiKey | None: ...

    @abstractmethod
    def touch_key(self, key_id: str, when: str) -> None: ...

    # -- tenant settings and retention ---------------------------------------------------
    @abstractmethod
    def verifier_key(self, tenant: str) -> str | None: ...

    @abstractmethod
    def set_verifier_key(self, tenant: str, verifier_key: str) -> str:
        """Record a tenant's verifier key unless one is recorded; return the recorded one."""

    @abstractmethod
    def retention_days(self) -> dict[str, int]:
        """Each tenant's retention in days, for the tenants that have one."""

    @abstractmethod
    def set_retention_days(self, tenant: str, days: int | None) -> None:
        """Set (or with None, clear) a tenant's retention."""

    @abstractmethod
    def purge(self, tenant: str, before_us: int) -> int:
        """Drop the bodies of records that occurred before ``before_us``, keeping their seq and
        leaf hash, and move the tenant's purge mark there (in the same transaction); return
        how many were purged."""

    @abstractmethod
    def purged_before(self, tenant: str) -> int | None:
        """The tenant's purge mark: every record before it has lost its body. Searches and
        counts never reach below it."""

    def removed_before(self, tenant: str) -> int | None:
        """How far retention may have removed the tenant's records, by their time: verify
        accepts a leaf without its record only before it. By default the purge mark."""
        return self.purged_before(tenant)

    @abstractmethod
    def close(self) -> None: ...
