"""AuditContextMiddleware: the request's id, address, user agent and trace id on every event
recorded while it is served, through a FastAPI app served by uvicorn, and through ASGI
directly for the proxy settings."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from tests.instrument.helpers import AGENT, STALLED, TENANT

from trailkeeper import AuditLog
from trailkeeper.api.server import base_url, listen
from trailkeeper.instrument import AuditContextMiddleware, Auditor, parse_traceparent, workflow_run
from trailkeeper.instrument.asgi import Scope, request_context
from trailkeeper.testing import memory_log, recorded

Audit = Auditor[dict[str, Any]]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15"
GENERATED_ID = re.compile(r"req_[0-9a-f]{32}")


def probe_event(probe: str) -> dict[str, Any]:
    return {
        "category": "user_activity",
        "action": "report.exported",
        "actor": {"type": "user", "id": "usr_1"},
        "targets": [{"type": "probe", "id": probe}],
    }


def make_app(audit: Audit, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/async")
    async def record_async(probe: str) -> dict[str, Any]:
        stored = await audit.arecord(**probe_event(probe))
        return dict(stored["context"])

    @app.get("/sync")
    def record_sync(probe: str) -> dict[str, Any]:  # FastAPI runs it on a worker thread
        return dict(audit.record(**probe_event(probe))["context"])

    @app.get("/stream")
    async def stream(probe: str) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first\n"
            await audit.arecord(**probe_event(probe))
            yield b"second\n"

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/later")
    async def later(probe: str, tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(audit.record, **probe_event(probe))
        return {}

    @app.get("/run")
    async def run(probe: str) -> dict[str, str]:
        async with workflow_run(audit, **STALLED) as started:
            await audit.arecord(**probe_event(probe))
        return {"run_id": started.run_id}

    app.add_middleware(AuditContextMiddleware, **options)
    return app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1, on a thread of this process.
    uvicorn's own reading of X-Forwarded-For is off, so that what is seen is the middleware's."""
    sock = listen("127.0.0.1", 0)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@pytest.fixture(scope="module")
def module_log() -> Iterator[AuditLog]:
    with memory_log() as log:
        yield log


@pytest.fixture(scope="module")
def http(module_log: AuditLog) -> Iterator[httpx.Client]:
    with serving(make_app(Auditor(module_log, tenant=TENANT))) as url, httpx.Client(base_url=url) as client:
        yield client


_probes = iter(range(1_000_000))


@pytest.fixture
def probe() -> str:
    return f"probe-{next(_probes)}"


def probed(log: AuditLog, probe: str, wait: float = 0.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait
    while True:
        events = recorded(log, TENANT, f"target:{probe}")
        if events or time.monotonic() >= deadline:
            return events
        time.sleep(0.01)


# --- through uvicorn ------------------------------------------------------------------------


def test_request_identity_is_stamped_on_the_event(
    http: httpx.Client, module_log: AuditLog, probe: str
) -> None:
    headers = {"X-Request-ID": "req-from-gateway-7", "User-Agent": BROWSER, "traceparent": TRACEPARENT}
    response = http.get("/async", params={"probe": probe}, headers=headers)
    expected = {
        "request_id": "req-from-gateway-7",
        "ip": "127.0.0.1",
        "user_agent": BROWSER,
        "trace_id": TRACE_ID,
    }
    assert response.json() == expected
    [event] = probed(module_log, probe)
    assert event["context"] == expected
    assert response.headers["x-request-id"] == "req-from-gateway-7"


def test_request_without_an_id_gets_one_and_is_told_it(
    http: httpx.Client, module_log: AuditLog, probe: str
) -> None:
    response = http.get("/async", params={"probe": probe})
    [event] = probed(module_log, probe)
    assert GENERATED_ID.fullmatch(event["context"]["request_id"])
    assert response.headers["x-request-id"] == event["context"]["request_id"]
    assert "trace_id" not in event["context"]


def test_each_request_gets_a_new_id(http: httpx.Client) -> None:
    ids = {http.get("/async", params={"probe": f"fresh-{n}"}).headers["x-request-id"] for n in range(3)}
    assert len(ids) == 3


def test_sync_endpoint_on_a_worker_thread_is_stamped(http: httpx.Client, probe: str) -> None:
    context = http.get("/sync", params={"probe": probe}, headers={"X-Request-ID": "req-sync"}).json()
    assert context["request_id"] == "req-sync"
    assert context["ip"] == "127.0.0.1"


def test_event_recorded_while_streaming_is_stamped(
    http: httpx.Client, module_log: AuditLog, probe: str
) -> None:
    response = http.get("/stream", params={"probe": probe}, headers={"X-Request-ID": "req-stream"})
    assert response.text == "first\nsecond\n"
    [event] = probed(module_log, probe)
    assert event["context"]["request_id"] == "req-stream"


def test_background_task_after_the_response_is_stamped(
    http: httpx.Client, module_log: AuditLog, probe: str
) -> None:
    http.get("/later", params={"probe": probe}, headers={"X-Request-ID": "req-later"})
    [event] = probed(module_log, probe, wait=5)
    assert event["context"]["request_id"] == "req-later"


def test_workflow_run_inside_a_request_carries_both(
    http: httpx.Client, module_log: AuditLog, probe: str
) -> None:
    run_id = http.get("/run", params={"probe": probe}, headers={"X-Request-ID": "req-run"}).json()["run_id"]
    events = recorded(module_log, TENANT, f"workflow_run:{run_id}")
    assert [e["action"] for e in events] == ["workflow.started", "report.exported", "workflow.completed"]
    assert {e["context"]["request_id"] for e in events} == {"req-run"}
    assert events[0]["actor"] == AGENT


def test_concurrent_requests_keep_their_own_identity(http: httpx.Client, module_log: AuditLog) -> None:
    def call(n: int) -> None:
        http.get("/async", params={"probe": f"many-{n}"}, headers={"X-Request-ID": f"req-many-{n}"})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(24)))
    for n in range(24):
        [event] = probed(module_log, f"many-{n}")
        assert event["context"]["request_id"] == f"req-many-{n}"


def test_forwarded_for_is_ignored_unless_trusted(http: httpx.Client, probe: str) -> None:
    context = http.get("/async", params={"probe": probe}, headers={"X-Forwarded-For": "203.0.113.9"}).json()
    assert context["ip"] == "127.0.0.1"


def test_invalid_traceparent_is_not_stamped(http: httpx.Client, probe: str) -> None:
    context = http.get("/async", params={"probe": probe}, headers={"traceparent": TRACEPARENT.upper()}).json()
    assert "trace_id" not in context


# --- through ASGI directly ------------------------------------------------------------------


def context_via_asgi(log: AuditLog, headers: dict[str, str], **options: Any) -> dict[str, Any]:
    app = make_app(Auditor(log, tenant=TENANT), **options)

    async def call() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 51000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            response = await client.get("/async", params={"probe": "asgi"}, headers=headers)
            result: dict[str, Any] = response.json()
            return result

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("trust_forwarded", "forwarded_for", "ip"),
    [
        (0, "203.0.113.9, 198.51.100.2", "192.0.2.50"),
        (1, "203.0.113.9, 198.51.100.2", "198.51.100.2"),
        (True, "203.0.113.9, 198.51.100.2", "198.51.100.2"),
        (2, "203.0.113.9, 198.51.100.2", "203.0.113.9"),
        (2, "198.51.100.2", "192.0.2.50"),
        (1, "not-an-address", "192.0.2.50"),
        (1, "[2001:db8::7]:443", "2001:db8::7"),
        (1, "198.51.100.3:8080", "198.51.100.3"),
    ],
)
def test_trusted_proxies_decide_which_forwarded_address_is_the_clients(
    log: AuditLog, trust_forwarded: int, forwarded_for: str, ip: str
) -> None:
    context = context_via_asgi(log, {"X-Forwarded-For": forwarded_for}, trust_forwarded=trust_forwarded)
    assert context["ip"] == ip


def test_response_keeps_a_request_id_the_app_set_itself(log: AuditLog) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": [(b"x-request-id", b"app-own")]})
        await send({"type": "http.response.body", "body": b""})

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=AuditContextMiddleware(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as client:
            return await client.get("/", headers={"X-Request-ID": "caller"})

    assert asyncio.run(call()).headers.get_list("x-request-id") == ["app-own"]


def test_lifespan_passes_through_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def noop_receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def noop_send(message: Any) -> None:
        return None

    asyncio.run(AuditContextMiddleware(app)({"type": "lifespan"}, noop_receive, noop_send))
    assert seen == ["lifespan"]


def test_negative_proxy_count_is_refused() -> None:
    with pytest.raises(ValueError, match="number of proxies"):
        AuditContextMiddleware(make_app(Auditor(memory_log(), tenant=TENANT)), trust_forwarded=-1)


# --- the pure parts -------------------------------------------------------------------------


def scope_with(*headers: tuple[str, str], client: tuple[str, int] | None = ("192.0.2.1", 4000)) -> Scope:
    return {
        "type": "http",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": client,
    }


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (TRACEPARENT, TRACE_ID),
        (f"00-{TRACE_ID}-00f067aa0ba902b7-00", TRACE_ID),  # not sampled: still a trace
        (f"cc-{TRACE_ID}-00f067aa0ba902b7-01-future-field", TRACE_ID),  # a later version
        (f"cc-{TRACE_ID}-00f067aa0ba902b7-01", TRACE_ID),
        (f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra", None),  # version 00 has four fields
        (f"ff-{TRACE_ID}-00f067aa0ba902b7-01", None),  # version ff is forbidden
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),  # all-zero trace id
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),  # all-zero parent id
        (TRACEPARENT.upper(), None),  # hex is lowercase
        (f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01", None),
        (f"00-{TRACE_ID}-00f067aa0ba902b-01", None),
        (f"0-{TRACE_ID}-00f067aa0ba902b7-01", None),
        (f"cc-{TRACE_ID}-00f067aa0ba902b7-01x", None),  # a later version still needs the dash
        ("", None),
    ],
)
def test_traceparent_yields_the_trace_id_only_when_valid(header: str, trace_id: str | None) -> None:
    assert parse_traceparent(header) == trace_id


def test_two_traceparent_headers_give_no_trace_id() -> None:
    scope = scope_with(("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT))
    assert "trace_id" not in request_context(scope)


@pytest.mark.parametrize(
    "given",
    ["", "with space", "x" * 129, "bell\x07", "caf\xe9"],
)
def test_unusable_request_id_is_replaced(given: str) -> None:
    context = request_context(scope_with(("X-Request-ID", given)))
    assert GENERATED_ID.fullmatch(context["request_id"])


def test_peer_without_an_ip_address_gives_no_ip() -> None:
    assert "ip" not in request_context(scope_with(client=None))
    assert "ip" not in request_context(scope_with(client=("testclient", 50000)))


def test_long_user_agent_is_cut_to_what_an_event_holds() -> None:
    context = request_context(scope_with(("User-Agent", "a" * 5000)))
    assert context["user_agent"] == "a" * 2048
