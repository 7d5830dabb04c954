"""A PostgreSQL database of its own for each test run, on the server CI keeps up.

Tests never touch a database they did not make: :func:`temporary_database` creates one with
a random name and drops it (``WITH (FORCE)``, past any connection a failed test left open)
when the run is over. The server is reached as ``TRAILKEEPER_TEST_POSTGRES`` says, by
default the trust-authenticated one on 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

ADMIN_URL = os.environ.get("TRAILKEEPER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

# Every table the store writes; the schema and its version stay.
_TABLES = (
    "heads",
    "leaves",
    "events",
    "event_targets",
    "search_rows",
    "search_targets",
    "index_marks",
    "tiles",
    "checkpoints",
    "tenant_keys",
    "api_keys",
    "retention",
    "purges",
)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def pg_available() -> str | None:
    """None when the test server answers; otherwise why not, to skip (or fail, in CI) with."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {ADMIN_URL}: {_first_line(exc)}"
    return None


def require_postgres() -> None:
    """Skip the calling test when the server is away; under ``CI=true`` fail it instead, so
    that CI never passes without having run the PostgreSQL tests."""
    reason = pg_available()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL must be up)")
    pytest.skip(reason)


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return urlsplit(ADMIN_URL)._replace(path=f"/{name}").geturl()


@contextmanager
def temporary_database() -> Iterator[str]:
    """Create an empty database, yield its ``postgresql://`` URL, drop it afterwards."""
    name = f"tk_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def reset_database(url: str) -> None:
    """Empty every table of a migrated database, so that tests can share one database and
    still each start from nothing (much quicker than a database per test)."""
    with psycopg.connect(url, autocommit=True) as conn:
        present = {
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
        }
        # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE makes new files for
        # every partition and index, which takes a second.
        with conn.transaction():
            for table in _TABLES:
                if table in present:
                    conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
