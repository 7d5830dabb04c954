"""Fixtures shared by every test: the stores the conformance suite runs against."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from trailkeeper import AuditLog

IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip a test whose service is absent; under CI an absent service is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must be available)")
    pytest.skip(reason)


# Every conformance test runs against every store, each three ways: as configured by default
# (a background thread indexes the committed records; in a test, most reads find them not
# indexed yet), indexing each commit before acknowledging it (every read goes through the
# search index), and never indexing (every read scans the records).
STORES = [
    "sqlite",
    "sqlite-indexed",
    "sqlite-unindexed",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("postgresql-indexed", marks=pytest.mark.postgres),
    pytest.param("postgresql-unindexed", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One database for the whole run, created here and dropped at the end; each test
    empties it first."""
    from pg import pg_available, temporary_database

    reason = pg_available()
    if reason is not None:
        skip_or_fail(reason)
    with temporary_database() as url:
        yield url


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param in ("sqlite", "sqlite-unindexed"):
        yield f"sqlite:///{tmp_path}/audit.db"
        return
    if request.param == "sqlite-indexed":
        yield f"sqlite:///{tmp_path}/audit.db?index=inline"
        return
    if request.param.startswith("postgresql"):
        from pg import reset_database

        url = request.getfixturevalue("postgres_database")
        reset_database(url)
        yield url
        return
    raise AssertionError(request.param)


@pytest.fixture
def log(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AuditLog]:
    audit_log = AuditLog.open(store_url, key_dir=tmp_path / "keys")
    way = request.node.callspec.params.get("store_url")
    if way == "sqlite-unindexed":
        audit_log.store.search_index.pause()  # type: ignore[attr-defined]
    elif way == "postgresql-indexed":
        audit_log.store.index_inline = True  # type: ignore[attr-defined]
    elif way == "postgresql-unindexed":
        audit_log.store.indexer.pause()  # type: ignore[attr-defined]
    try:
        yield audit_log
    finally:
        audit_log.close()
