"""``serve()``: a process that prints where it listens, records its start and stop, and on
SIGTERM or Ctrl-C finishes what it acknowledged before it exits."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.helpers import event

from trailkeeper import AuditLog
from trailkeeper.api.server import listen, load_demo, running
from trailkeeper.errors import Unavailable

SERVE = "import sys; from trailkeeper.api.server import serve; serve(sys.argv[1], port=0)"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/audit.db"


def start(db: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", SERVE, db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if match is None:
        process.kill()
        raise AssertionError(f"no address in {line!r}: {process.communicate()}")
    return process, match.group(1)


def system_actions(db: str, tenant: str) -> list[str]:
    with AuditLog.open(db) as log:
        page = log.search(tenant, "category:system actor_type:system", order="asc", limit=1000)
    return [e["action"] for e in page.events]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_ends_the_process_cleanly_and_keeps_every_acknowledged_event(
    db: str, stop: signal.Signals
) -> None:
    with AuditLog.open(db) as log:
        _, secret = log.create_key("acme", ["events:write"])
        log.create_key("quiet", ["events:read"])
    process, url = start(db)
    console = httpx.get(f"{url}/login")
    assert console.status_code == 200
    assert console.headers["content-type"].startswith("text/html")
    acknowledged: list[str] = []
    some_acknowledged = threading.Event()

    def produce(worker: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
            for i in range(10_000):
                try:
                    response = client.post("/v1/events", json=event(id=f"w{worker}-{i}"))
                except httpx.TransportError:
                    return
                if response.status_code != 201:
                    return
                acknowledged.append(f"w{worker}-{i}")
                some_acknowledged.set()

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for producer in producers:
        producer.start()
    assert some_acknowledged.wait(timeout=20)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    for producer in producers:
        producer.join(timeout=20)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    with AuditLog.open(db) as log:
        assert all(log.get("acme", event_id) is not None for event_id in acknowledged)
    # Start and stop are recorded in every tenant, the stop after every acknowledged event.
    assert system_actions(db, "acme")[-2:] == ["audit.service.started", "audit.service.stopped"]
    assert system_actions(db, "quiet") == [
        "audit.key.created",
        "audit.service.started",
        "audit.service.stopped",
    ]
    with AuditLog.open(db) as log:
        (stopped,) = log.search("acme", "action:audit.service.stopped").events
        assert stopped["seq"] == log.tree_size("acme") - 1


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(Unavailable, match=f"cannot listen on 127.0.0.1:{port}"):
            listen("127.0.0.1", port)


@pytest.fixture
def demo_log(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog.open(f"sqlite:///{tmp_path}/demo.db", key_dir=tmp_path / "keys") as log:
        yield log


def test_demo_mode_prints_a_read_key_of_the_demo_tenant(demo_log: AuditLog) -> None:
    printed: list[str] = []

    secret = load_demo(demo_log, printed.append, events=500)

    assert any(secret in line for line in printed)
    with (
        running(demo_log) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client,
    ):
        page = client.get("/v1/events", params={"q": "-category:system"}).json()
        assert page["events"]
        assert all(e["tenant"] == "demo" for e in page["events"])
        assert client.post("/v1/events", json=event()).status_code == 403
