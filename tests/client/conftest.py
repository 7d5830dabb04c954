"""Clients over the in-memory fake server, closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.client.fake_server import FakeServer

from trailkeeper.client import Client

BASE_URL = "http://trailkeeper.test"
API_KEY = "tk_test_key"

MakeClient = Callable[..., Client]


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """Build a client over a fake server; short intervals keep the tests fast."""
    made: list[Client] = []

    def make(server: FakeServer, **options: Any) -> Client:
        options.setdefault("flush_interval", 0.01)
        options.setdefault("max_backoff", 0.02)
        client = Client(BASE_URL, API_KEY, transport=server.transport, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)
