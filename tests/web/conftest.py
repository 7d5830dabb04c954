"""The console on a real server: a FastAPI app holding the console and nothing else, served by
uvicorn on a free port of 127.0.0.1, over a SQLite log with the demo tenant written into it.

One server serves the whole package of tests; tests that change what they look at (record
hostile events, revoke keys) do it in tenants and keys of their own.
"""

from __future__ import annotations

import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from trailkeeper import AuditLog
from trailkeeper.demo import DemoFacts, write_demo
from trailkeeper.web import create_console

DEMO_EVENTS = 2000
DEMO_SEED = 7
_tenants = itertools.count()
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    """The server under test, its log, and the facts of the demo tenant in it."""

    url: str
    log: AuditLog
    facts: DemoFacts

    def key(self, tenant: str = "demo", scopes: Sequence[str] = ("events:read",)) -> tuple[str, str]:
        """A new key of ``tenant``: its id and its secret."""
        key, secret = self.log.create_key(tenant, list(scopes), name="console test")
        return key.id, secret

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=20)

    @contextmanager
    def signed_in(self, secret: str) -> Iterator[httpx.Client]:
        """A client signed in with ``secret``, as a browser would: form, token, cookie."""
        with self.client() as client:
            response = sign_in(client, secret)
            assert response.status_code == 303, response.text
            yield client


def csrf_token(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: httpx.Client, secret: str, *, next_path: str = "/") -> httpx.Response:
    form = client.get("/login")
    assert form.status_code == 200
    return client.post("/login", data={"api_key": secret, "csrf": csrf_token(form.text), "next": next_path})


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        time.sleep(0.05)


def console_app(log: AuditLog) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(create_console(log))
    return app


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(app: FastAPI) -> Served:
    """Serve ``app`` on a free port in a background thread; return once it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    host, port = sock.getsockname()
    return Served(f"http://{host}:{port}", server, thread)


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    directory: Path = tmp_path_factory.mktemp("console")
    log = AuditLog.open(f"sqlite:///{directory}/audit.db", key_dir=directory / "keys")
    try:
        facts = write_demo(log, events=DEMO_EVENTS, seed=DEMO_SEED)
        served = serve(console_app(log))
        try:
            yield Console(served.url, log, facts)
        finally:
            served.stop()
    finally:
        log.close()


@pytest.fixture
def tenant() -> str:
    """A tenant of the test's own, empty until the test records into it."""
    return f"web{next(_tenants)}"


@pytest.fixture
def reader(console: Console) -> Iterator[httpx.Client]:
    """A client signed in to the demo tenant with a read key of its own."""
    _, secret = console.key()
    with console.signed_in(secret) as client:
        yield client
