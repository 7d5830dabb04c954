"""Stores behind one contract, chosen by the storage URL."""

from __future__ import annotations

from trailkeeper.errors import InvalidArgument
from trailkeeper.store.base import Store

DEFAULT_URL = "sqlite:///trailkeeper.db"


def open_store(url: str = DEFAULT_URL) -> Store:
    """The store a URL names: ``sqlite:///path.db`` (the default) or ``postgresql://...``."""
    if url.startswith("sqlite:"):
        from trailkeeper.store.sqlite import open_sqlite

        return open_sqlite(url)
    if url.startswith(("postgresql:", "postgres:")):
        try:
            from trailkeeper.store.postgres import open_postgres
        except ImportError:
            raise InvalidArgument("db", "the PostgreSQL store is not available in this build") from None
        return open_postgres(url)
    raise InvalidArgument("db", f"unknown storage URL {url!r}: use sqlite:///path.db or postgresql://...")


__all__ = ["DEFAULT_URL", "Store", "open_store"]
