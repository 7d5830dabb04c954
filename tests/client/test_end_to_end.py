"""The client against the real server: the HTTP API on a thread of this process for the
rules of the wire (422 details, Retry-After, refused keys, resent batches), and
``trailkeeper serve`` in a process of its own for the crash test of issue 4, point 7: the
server goes away, the producing process is killed with SIGKILL, both come back, and every
event is stored exactly once."""

from __future__ import annotations

import collections
import itertools
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from trailkeeper import AuditLog
from trailkeeper.api.server import running
from trailkeeper.client import Client, DeliveryError, EventsRejected, SendingStopped, ServerUnavailable

TENANT = "acme"
ACTION = "e2e.step"

# A producer driven over stdin: "record N" records N events and prints their ids (each only
# once record() has returned), then "recorded"; "flush" prints whether everything got through
# and "flush close" closes the client after.
PRODUCER = textwrap.dedent(
    f"""
    import sys
    from trailkeeper.client import Client

    client = Client(sys.argv[1], sys.argv[2], spool_dir=sys.argv[3], max_backoff=0.2)
    for command in sys.stdin:
        verb, _, argument = command.strip().partition(" ")
        if verb == "record":
            for n in range(int(argument)):
                event_id = client.record(category="workflow", action="{ACTION}",
                                         actor={{"type": "agent", "id": "e2e"}}, description=str(n))
                print(event_id, flush=True)
            print("recorded", flush=True)
        elif verb == "flush":
            print("flushed", client.flush(timeout=30), flush=True)
            if argument == "close":
                client.close(timeout=0)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(db_url: str, port: int, log_path: Path) -> Iterator[str]:
    """``trailkeeper serve`` as a process of its own, until SIGTERM."""
    command = [sys.executable, "-m", "trailkeeper.cli", "serve", "--db", db_url, "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as server_log:
        server = subprocess.Popen(command, stdout=server_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


class Producer:
    """A client in a process of its own."""

    def __init__(self, url: str, key: str, spool: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, url, key, str(spool)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @property
    def stdin(self) -> IO[str]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def record(self, count: int) -> list[str]:
        self.stdin.write(f"record {count}\n")
        self.stdin.flush()
        return [line.strip() for line in iter(self.stdout.readline, "recorded\n")]

    def flush(self, *, close: bool = True) -> bool:
        self.stdin.write("flush close\n" if close else "flush\n")
        self.stdin.flush()
        return self.stdout.readline().strip() == "flushed True"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.end()

    def end(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=30)
        self.stdout.close()


def stored(url: str, key: str) -> list[dict[str, Any]]:
    """Every event of the test's action, over all pages."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"action": ACTION, "limit": 1000, "order": "asc"}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as reader:
        while True:
            page = reader.get("/v1/events", params=params)
            assert page.status_code == 200, page.text
            found.extend(page.json()["events"])
            if page.json()["next_cursor"] is None:
                return found
            params["cursor"] = page.json()["next_cursor"]


@pytest.mark.slow
def test_events_recorded_while_the_server_is_away_by_a_killed_process_are_stored_once(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path}/audit.db"
    with AuditLog.open(db_url) as log:
        _, write_key = log.create_key(TENANT, ["events:write"])
        _, read_key = log.create_key(TENANT, ["events:read"])
    spool, port, server_log = tmp_path / "spool", free_port(), tmp_path / "server.log"

    with serving(db_url, port, server_log) as url:
        producer = Producer(url, write_key, spool)
        online = producer.record(20)
        assert producer.flush(close=False)
    # The server is stopped: these wait in the spool, and their process dies with them.
    offline = producer.record(30)
    producer.kill()
    assert producer.process.returncode == -signal.SIGKILL

    with serving(db_url, port, server_log) as url:
        drainer = Producer(url, write_key, spool)
        assert drainer.flush()
        drainer.end()
        records = stored(url, read_key)

    counts = collections.Counter(record["id"] for record in records)
    assert set(counts) == set(online + offline)
    assert all(count == 1 for count in counts.values()), counts.most_common(3)
    assert [r["id"] for r in records if r["id"] in set(offline)] == offline
    assert not (spool / "dead_letter.ndjson").exists()


# -- against the API on a thread of this process ----------------------------------------------------
@dataclass(frozen=True)
class Api:
    url: str
    log: AuditLog

    def keys(self, tenant: str) -> tuple[str, str]:
        """A key that may write and one that may read ``tenant``'s events."""
        return (
            self.log.create_key(tenant, ["events:write"])[1],
            self.log.create_key(tenant, ["events:read"])[1],
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("client-api")
    with (
        AuditLog.open(f"sqlite:///{directory}/audit.db", key_dir=directory / "keys") as log,
        running(log, rate_limit=None) as url,
    ):
        yield Api(url, log)


_tenant_numbers = itertools.count()


@pytest.fixture
def tenant() -> str:
    """A tenant of the test's own, so that tests sharing the server see only their events."""
    return f"client{next(_tenant_numbers)}"


def event(number: int, **fields: Any) -> dict[str, Any]:
    base = {"category": "workflow", "action": ACTION, "actor": {"type": "agent", "id": "e2e"}}
    return base | {"description": f"event {number}"} | fields


def test_the_servers_422_details_set_aside_exactly_the_invalid_events(
    api: Api, tenant: str, tmp_path: Path
) -> None:
    write_key, read_key = api.keys(tenant)
    reports: list[DeliveryError] = []
    events = [event(n) for n in range(5)]
    events[1]["outcome"] = "maybe"
    events[3]["actor"] = {"type": "robot", "id": "r1"}

    with Client(api.url, write_key, spool_dir=tmp_path / "spool", on_error=reports.append) as client:
        ids = client.record_many(events)
        assert client.flush(timeout=10)

    assert [r["id"] for r in stored(api.url, read_key)] == [ids[0], ids[2], ids[4]]
    (report,) = reports
    assert isinstance(report, EventsRejected)
    assert [(r.event or {}).get("id") for r in report.rejected] == [ids[1], ids[3]]
    assert [e["field"] for r in report.rejected for e in r.errors] == ["outcome", "actor.type"]


def test_a_batch_resent_after_a_crash_before_its_ack_was_written_is_stored_once(
    api: Api, tenant: str, tmp_path: Path
) -> None:
    write_key, read_key = api.keys(tenant)
    spool = tmp_path / "spool"
    with Client(api.url, write_key, spool_dir=spool) as client:
        ids = client.record_many(event(n) for n in range(10))
        assert client.flush(timeout=10)
    # As if the process had died between the server's 201 and the ack reaching the disk.
    (spool / "ack").unlink()

    with Client(api.url, write_key, spool_dir=spool) as again:
        assert again.flush(timeout=10)

    assert [r["id"] for r in stored(api.url, read_key)] == ids


def test_the_servers_retry_after_is_honoured_and_the_events_arrive(api: Api, tenant: str) -> None:
    write_key, read_key = api.keys(tenant)
    reports: list[DeliveryError] = []

    with (
        running(api.log, rate_limit=2.0, burst=1) as limited_url,
        Client(limited_url, write_key, batch_size=1, max_backoff=0.01, on_error=reports.append) as client,
    ):
        ids = client.record_many(event(n) for n in range(2))
        assert client.flush(timeout=10)

    assert [r["id"] for r in stored(api.url, read_key)] == ids
    waits = [r for r in reports if isinstance(r, ServerUnavailable)]
    assert waits
    assert all(r.status == 429 and r.retry_in >= 1.0 for r in waits)


@pytest.mark.parametrize(("scopes", "status"), [(None, 401), (["events:read"], 403)])
def test_a_key_the_server_refuses_stops_sending_and_keeps_the_events(
    api: Api, tenant: str, tmp_path: Path, scopes: list[str] | None, status: int
) -> None:
    key = "tk_unknown" if scopes is None else api.log.create_key(tenant, scopes)[1]
    spool = tmp_path / "spool"
    client = Client(api.url, key, spool_dir=spool)
    client.record(**event(0))

    assert not client.flush(timeout=10)
    assert isinstance(client.last_error, SendingStopped)
    assert client.last_error.status == status
    client.close(timeout=0)

    write_key, read_key = api.keys(tenant)
    with Client(api.url, write_key, spool_dir=spool) as fixed:
        assert fixed.flush(timeout=10)
    assert len(stored(api.url, read_key)) == 1
