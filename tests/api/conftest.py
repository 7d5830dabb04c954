"""A real server on a free port of 127.0.0.1, over a fresh SQLite file, per test module.

Each test works in a tenant of its own (the ``tenant`` fixture), so that tests sharing a
server cannot see each other's events, which is itself what the API promises.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest
from tests.api.helpers import Api, open_log

from trailkeeper.api.server import running

_tenant_numbers = itertools.count()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    log = open_log(tmp_path_factory.mktemp("api"))
    try:
        with running(log, rate_limit=None) as url:
            served = Api(url, log)
            try:
                yield served
            finally:
                served.close_clients()
    finally:
        log.close()


@pytest.fixture
def tenant() -> str:
    return f"t{next(_tenant_numbers)}"


@pytest.fixture
def client(api: Api, tenant: str) -> httpx.Client:
    """A client of ``tenant`` with a key that may read and write."""
    return api.client(tenant)
