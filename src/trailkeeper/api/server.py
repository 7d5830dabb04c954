"""Running the API: ``trailkeeper serve``, and a server in a thread for tests and benchmarks.

Shutdown order matters for "acknowledged means durable": on SIGTERM or Ctrl-C uvicorn stops
accepting, lets every request in flight finish (each 201 has been committed before it was
sent), and only then is ``audit.service.stopped`` recorded and the log closed, which drains
the writer and signs the last checkpoints.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from trailkeeper import __version__
from trailkeeper.api.app import create_app
from trailkeeper.auditlog import SYSTEM_ACTOR, AuditLog, tenants_of
from trailkeeper.errors import Unavailable

DEMO_TENANT = "demo"
DEMO_EVENTS = 5000
DEMO_SEED = 7
# A request still running this long after shutdown began is cut off.
GRACEFUL_SECONDS = 30


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_server(app: FastAPI) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        http="httptools",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        # The client address is the peer's: X-Forwarded-For is a header anyone can send, and
        # an audit log must not record an IP a caller chose.
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    return uvicorn.Server(config)


def record_everywhere(log: AuditLog, action: str, metadata: dict[str, Any]) -> None:
    """Record a system event in every tenant's log, in one group commit, and wait for it."""
    event = {"category": "system", "action": action, "actor": dict(SYSTEM_ACTOR), "metadata": metadata}
    pending = [log.record_later(tenant, [event]) for tenant in tenants_of(log)]
    for future in pending:
        future.result()


def load_demo(log: AuditLog, print_fn: Callable[[str], object], *, events: int = DEMO_EVENTS) -> str:
    """Write the demo tenant, then make and print a read key for it (returned too)."""
    from trailkeeper.demo import write_demo

    print_fn(f"loading the demo tenant {DEMO_TENANT!r}...")
    facts = write_demo(log, events=events, seed=DEMO_SEED, tenant=DEMO_TENANT)
    _, secret = log.create_key(DEMO_TENANT, ["events:read"], name="demo read key")
    print_fn(f"demo tenant {facts.tenant!r}: {facts.events} events")
    print_fn(f"demo read key (shown once): {secret}")
    return secret


def with_console(app: FastAPI, log: AuditLog) -> FastAPI:
    """The app with the web console's pages beside the API (they share no path: the API is
    under /v1, the console's pages are outside the OpenAPI document)."""
    from trailkeeper.web import create_console

    app.include_router(create_console(log))
    return app


class _Stopped(Exception):
    """SIGTERM, as KeyboardInterrupt is Ctrl-C."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    # While the server runs, uvicorn handles SIGINT and SIGTERM itself (stop accepting,
    # finish what is in flight), then raises the signal again with the handlers it found:
    # with this one, that second delivery, like a SIGTERM while the log is being opened,
    # becomes an exception that lets the log be closed properly, not the end of the process.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def serve(
    db_url: str,
    host: str = "127.0.0.1",
    port: int = 8600,
    *,
    demo: bool = False,
    print_fn: Callable[[str], object] = print,
) -> None:
    """Serve the API and the console on ``host:port`` until SIGTERM or Ctrl-C
    (``trailkeeper serve``)."""
    with _sigterm_stops(), suppress(KeyboardInterrupt, _Stopped):
        _serve(db_url, host, port, demo=demo, print_fn=print_fn)
    print_fn("trailkeeper stopped")


def _serve(db_url: str, host: str, port: int, *, demo: bool, print_fn: Callable[[str], object]) -> None:
    sock = listen(host, port)
    log = AuditLog.open(db_url)
    about: dict[str, Any] | None = None
    try:
        if demo:
            load_demo(log, print_fn)
        url = base_url(sock)
        about = {"version": __version__, "url": url, "pid": os.getpid()}
        record_everywhere(log, "audit.service.started", about)
        server = uvicorn_server(with_console(create_app(log), log))
        print_fn(f"trailkeeper {__version__} listening on {url} (store: {db_url}); Ctrl-C stops it")
        server.run(sockets=[sock])
    finally:
        try:
            if about is not None:
                record_everywhere(log, "audit.service.stopped", about)
        finally:
            log.close()
            sock.close()


@contextmanager
def running(log: AuditLog, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> Iterator[str]:
    """The API over ``log`` on a background thread, for tests and benchmarks: yields its base
    URL, and on exit stops it as SIGTERM would (in-flight requests finish). The caller keeps
    the log open and closes it. ``app_options`` go to :func:`create_app`."""
    sock = listen(host, port)
    server = uvicorn_server(create_app(log, **app_options))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="trailkeeper-http", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise Unavailable("the HTTP server did not start")
            threading.Event().wait(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
