"""The client against the in-memory server: batching, retries, rejections, durability."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.client.conftest import API_KEY, MakeClient
from tests.client.fake_server import (
    INVALID_ACTION,
    FakeServer,
    Step,
    event,
    fail_with,
    status,
    store_then_lose_answer,
)

import trailkeeper.client
from trailkeeper.client import (
    DEAD_LETTER_FILE,
    ClientClosed,
    DeliveryError,
    EventsRejected,
    QueueFull,
    SendingStopped,
    ServerUnavailable,
    SpoolLocked,
)
from trailkeeper.client.spool import SEGMENT_SUFFIX
from trailkeeper.client.transport import encode_event


def hang_until(gate: threading.Event) -> Step:
    """A step that answers only once ``gate`` opens: a request in flight, for as long as needed."""

    def answer(request: httpx.Request, server: FakeServer) -> httpx.Response:
        gate.wait(10)
        return server.accept(request)

    return answer


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def dead_letter(spool: Path) -> list[dict[str, object]]:
    path = spool / DEAD_LETTER_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- recording -------------------------------------------------------------------------------------
def test_record_returns_a_client_made_uuid7_while_the_server_has_not_answered(
    make_client: MakeClient, spool: Path
) -> None:
    gate = threading.Event()
    server = FakeServer().then(hang_until(gate))
    client = make_client(server, spool_dir=spool)
    first = client.record(**event(0))
    wait_for(lambda: server.batches)

    started = time.monotonic()
    later = [client.record(**event(n)) for n in range(1, 20)]
    assert time.monotonic() - started < 2.0  # the request in flight waits up to 10 s

    gate.set()
    assert client.flush(timeout=5)
    assert all(uuid.UUID(made).version == 7 for made in [first, *later])
    assert server.order == [first, *later]


def test_an_event_that_brings_its_id_keeps_it(make_client: MakeClient) -> None:
    server = FakeServer()
    client = make_client(server)

    assert client.record(**event(0, id="evt-42")) == "evt-42"
    assert client.flush(timeout=5)
    assert server.order == ["evt-42"]


def test_the_api_key_is_sent_as_a_bearer_token(make_client: MakeClient) -> None:
    server = FakeServer()
    client = make_client(server)
    client.record(**event())

    assert client.flush(timeout=5)
    assert server.headers[0]["authorization"] == f"Bearer {API_KEY}"


def test_batches_hold_at_most_batch_size_events_in_the_recorded_order(
    make_client: MakeClient, spool: Path
) -> None:
    server = FakeServer()
    client = make_client(server, spool_dir=spool, batch_size=10)

    ids = client.record_many(event(n) for n in range(25))

    assert client.flush(timeout=5)
    assert [len(batch) for batch in server.batches] == [10, 10, 5]
    assert server.order == ids


def test_events_json_cannot_carry_are_refused_by_record_and_nothing_is_queued(
    make_client: MakeClient, spool: Path
) -> None:
    server = FakeServer()
    client = make_client(server, spool_dir=spool)

    with pytest.raises(TypeError):
        client.record_many([event(0), event(1, metadata={"tags": {"a", "b"}})])
    with pytest.raises(ValueError, match="JSON"):
        client.record(**event(2, metadata={"ratio": float("inf")}))

    assert client.flush(timeout=5)
    assert server.batches == []


def test_many_threads_recording_at_once_lose_nothing_and_keep_each_threads_order(
    make_client: MakeClient, spool: Path
) -> None:
    server = FakeServer()
    client = make_client(server, spool_dir=spool)
    recorded: dict[int, list[str]] = {}

    def producer(thread: int) -> None:
        recorded[thread] = [client.record(**event(n, description=f"{thread}")) for n in range(100)]

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert client.flush(timeout=10)
    assert len(server.order) == 800
    for ids in recorded.values():
        assert [i for i in server.order if i in set(ids)] == ids


def test_without_a_spool_the_memory_queue_refuses_events_past_max_pending(make_client: MakeClient) -> None:
    gate = threading.Event()
    server = FakeServer().then(hang_until(gate))
    client = make_client(server, max_pending=5)
    ids = client.record_many(event(n) for n in range(5))
    wait_for(lambda: server.batches)

    with pytest.raises(QueueFull):
        client.record(**event(5))

    gate.set()
    assert client.flush(timeout=5)
    assert server.order == ids
    client.record(**event(6))  # room again once delivered


# -- retries ---------------------------------------------------------------------------------------
def test_a_503_is_retried_with_the_same_ids_until_stored_once(make_client: MakeClient, spool: Path) -> None:
    server = FakeServer().then(status(503), status(503))
    client = make_client(server, spool_dir=spool)

    ids = client.record_many(event(n) for n in range(3))

    assert client.flush(timeout=5)
    assert [[e["id"] for e in batch] for batch in server.batches] == [ids, ids, ids]
    assert server.order == ids
    assert isinstance(client.last_error, ServerUnavailable)
    assert client.last_error.status == 503


def test_connection_errors_and_timeouts_are_retried(make_client: MakeClient) -> None:
    reports: list[DeliveryError] = []
    server = FakeServer().then(fail_with(httpx.ConnectError), fail_with(httpx.ConnectTimeout))
    client = make_client(server, on_error=reports.append)

    event_id = client.record(**event())

    assert client.flush(timeout=5)
    assert server.order == [event_id]
    assert [type(r) for r in reports] == [ServerUnavailable, ServerUnavailable]
    assert [r.status for r in reports] == [None, None]


def test_a_batch_stored_whose_answer_was_lost_is_resent_and_stored_once(make_client: MakeClient) -> None:
    server = FakeServer().then(store_then_lose_answer)
    client = make_client(server)

    ids = client.record_many(event(n) for n in range(3))

    assert client.flush(timeout=5)
    assert server.sent_ids() == ids + ids
    assert server.order == ids


def test_the_retry_after_of_a_429_is_waited_for_even_past_max_backoff(make_client: MakeClient) -> None:
    server = FakeServer().then(status(429, headers={"Retry-After": "1"}))
    client = make_client(server, max_backoff=0.01)

    client.record(**event())

    assert client.flush(timeout=5)
    first, second = server.times
    assert second - first >= 0.95
    assert isinstance(client.last_error, ServerUnavailable)
    assert client.last_error.retry_in >= 1.0


# -- rejections ------------------------------------------------------------------------------------
def test_a_422_sets_aside_exactly_the_invalid_events_and_the_rest_are_stored(
    make_client: MakeClient, spool: Path
) -> None:
    reports: list[DeliveryError] = []
    server = FakeServer()
    client = make_client(server, spool_dir=spool, on_error=reports.append)
    invalid = {1, 4}
    events = [event(n, action=INVALID_ACTION) if n in invalid else event(n) for n in range(6)]

    ids = client.record_many(events)

    assert client.flush(timeout=5)
    assert server.order == [i for n, i in enumerate(ids) if n not in invalid]
    assert [len(batch) for batch in server.batches] == [6, 4]
    (report,) = reports
    assert isinstance(report, EventsRejected)
    assert [r.event["id"] for r in report.rejected if r.event] == [ids[1], ids[4]]
    kept = dead_letter(spool)
    assert [entry["event"]["id"] for entry in kept] == [ids[1], ids[4]]  # type: ignore[index]
    assert kept[0]["status"] == 422
    assert kept[0]["errors"] == [{"field": "action", "message": "must be dotted lowercase"}]


def test_a_413_halves_the_batch_and_sets_aside_only_an_event_too_large_alone(
    make_client: MakeClient, spool: Path
) -> None:
    server = FakeServer(max_body=3000)
    client = make_client(server, spool_dir=spool)
    events = [event(n) for n in range(8)]
    events[5]["description"] = "x" * 4000

    ids = client.record_many(events)

    assert client.flush(timeout=5)
    assert server.order == ids[:5] + ids[6:]
    (kept,) = dead_letter(spool)
    assert kept["event"]["id"] == ids[5]  # type: ignore[index]
    assert kept["status"] == 413


@pytest.mark.parametrize("refusal", [401, 403])
def test_a_refused_key_stops_sending_and_the_spool_keeps_the_events_for_the_next_client(
    make_client: MakeClient, spool: Path, refusal: int
) -> None:
    refusing = FakeServer().then(status(refusal))
    client = make_client(refusing, spool_dir=spool)
    ids = client.record_many(event(n) for n in range(3))

    started = time.monotonic()
    assert not client.flush(timeout=5)
    assert time.monotonic() - started < 2.0
    assert isinstance(client.last_error, SendingStopped)
    assert client.last_error.status == refusal
    ids.append(client.record(**event(3)))  # still recorded, to the spool
    time.sleep(0.05)
    assert len(refusing.batches) == 1
    client.close(timeout=0)

    server = FakeServer()
    assert make_client(server, spool_dir=spool).flush(timeout=5)
    assert server.order == ids


# -- flush, close and the spool across processes ---------------------------------------------------
def test_flush_gives_up_at_its_timeout_while_the_server_is_away(make_client: MakeClient) -> None:
    server = FakeServer().then(*[fail_with(httpx.ConnectError)] * 10_000)
    client = make_client(server)
    event_id = client.record(**event())

    started = time.monotonic()
    assert not client.flush(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0

    server.script.clear()
    assert client.flush(timeout=5)
    assert server.order == [event_id]


def test_close_delivers_what_was_recorded_then_refuses_more(make_client: MakeClient, spool: Path) -> None:
    server = FakeServer()
    client = make_client(server, spool_dir=spool, flush_interval=60)
    ids = client.record_many(event(n) for n in range(3))

    assert client.close(timeout=5)
    assert server.order == ids
    with pytest.raises(ClientClosed):
        client.record(**event())


def test_events_unsent_at_close_are_sent_by_the_next_client_over_the_spool(
    make_client: MakeClient, spool: Path
) -> None:
    away = FakeServer().then(*[fail_with(httpx.ConnectError)] * 10_000)
    client = make_client(away, spool_dir=spool)
    ids = client.record_many(event(n) for n in range(3))
    assert not client.close(timeout=0.1)

    server = FakeServer()
    assert make_client(server, spool_dir=spool).flush(timeout=5)
    assert server.order == ids


def test_acknowledged_events_are_not_sent_again_by_the_next_client(
    make_client: MakeClient, spool: Path
) -> None:
    client = make_client(FakeServer(), spool_dir=spool)
    client.record_many(event(n) for n in range(5))
    assert client.close(timeout=5)

    server = FakeServer()
    again = make_client(server, spool_dir=spool)

    assert again.flush(timeout=5)
    time.sleep(0.05)
    assert server.batches == []
    assert len(list(spool.glob(f"*{SEGMENT_SUFFIX}"))) == 1  # only the new client's own segment


def test_a_second_client_over_the_same_spool_is_refused(make_client: MakeClient, spool: Path) -> None:
    make_client(FakeServer(), spool_dir=spool)

    with pytest.raises(SpoolLocked):
        make_client(FakeServer(), spool_dir=spool)


def test_a_line_torn_by_a_crash_is_set_aside_and_the_events_before_it_are_sent(
    make_client: MakeClient, spool: Path
) -> None:
    encoded = [encode_event(event(n)) for n in range(3)]
    spool.mkdir()
    torn = encoded[2][1][:20]
    (spool / f"{1:016d}{SEGMENT_SUFFIX}").write_bytes(encoded[0][1] + encoded[1][1] + torn)
    server = FakeServer()

    assert make_client(server, spool_dir=spool).flush(timeout=5)
    assert server.order == [encoded[0][0], encoded[1][0]]
    (kept,) = dead_letter(spool)
    assert kept["line"] == torn.decode()


CRASHING_PRODUCER = textwrap.dedent(
    """
    import sys, time
    import httpx
    from trailkeeper.client import Client

    def unreachable(request):
        raise httpx.ConnectError("the server is away", request=request)

    client = Client("http://trailkeeper.test", "key", spool_dir=sys.argv[1],
                    transport=httpx.MockTransport(unreachable), max_backoff=0.05)
    for n in range(int(sys.argv[2])):
        event_id = client.record(category="workflow", action="alert.sent",
                                 actor={"type": "agent", "id": "a1"}, description=str(n))
        print(event_id, flush=True)
    print("recorded", flush=True)
    time.sleep(60)
    """
)


def test_events_of_a_killed_process_are_sent_by_the_next_client(make_client: MakeClient, spool: Path) -> None:
    producer = subprocess.Popen(
        [sys.executable, "-c", CRASHING_PRODUCER, str(spool), "50"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert producer.stdout is not None
        lines = [line.strip() for line in iter(producer.stdout.readline, "recorded\n")]
    finally:
        producer.kill()  # SIGKILL: no close, no flush, no cleanup
        producer.wait()
        if producer.stdout is not None:
            producer.stdout.close()
    assert len(lines) == 50

    server = FakeServer()
    assert make_client(server, spool_dir=spool).flush(timeout=5)
    assert server.order == lines


FORGETFUL_PRODUCER = textwrap.dedent(
    """
    import json, sys
    import httpx
    from trailkeeper.client import Client

    def store(request):
        with open(sys.argv[1], "a") as received:
            for sent in json.loads(request.content)["events"]:
                print(sent["id"], file=received)
        return httpx.Response(201, json={"accepted": 0, "events": []})

    client = Client("http://trailkeeper.test", "key", transport=httpx.MockTransport(store), flush_interval=60)
    for n in range(3):
        print(client.record(category="workflow", action="alert.sent", actor={"type": "agent", "id": "a1"}))
    """
)


def test_a_client_left_open_delivers_its_memory_queue_when_the_interpreter_exits(tmp_path: Path) -> None:
    received = tmp_path / "received"

    run = subprocess.run(
        [sys.executable, "-c", FORGETFUL_PRODUCER, str(received)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert received.read_text().split() == run.stdout.split()
    assert len(run.stdout.split()) == 3


def test_a_failing_on_error_callback_does_not_stop_delivery(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(error: DeliveryError) -> None:
        raise RuntimeError("the callback is broken")

    server = FakeServer().then(status(503))
    client = make_client(server, on_error=broken)
    event_id = client.record(**event())

    assert client.flush(timeout=5)
    assert server.order == [event_id]
    assert "on_error callback failed" in caplog.text


@pytest.mark.parametrize(
    "options",
    [{"batch_size": 0}, {"batch_size": 1001}, {"flush_interval": 0}, {"max_backoff": -1}],
)
def test_settings_out_of_range_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        trailkeeper.client.Client("http://x.test", "key", **options)  # type: ignore[arg-type]


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        trailkeeper.client.Client("ftp://x.test", "key")


# -- the package -----------------------------------------------------------------------------------
def test_the_client_imports_nothing_from_the_server_side() -> None:
    package = Path(trailkeeper.client.__file__).parent
    imported: set[str] = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.split(".")[0] == "trailkeeper"}

    assert ours
    assert all(name.startswith("trailkeeper.client.") for name in ours), ours


def test_every_public_name_is_exported() -> None:
    exported = trailkeeper.client.__all__

    assert len(set(exported)) == len(exported)
    assert all(hasattr(trailkeeper.client, name) for name in exported)
    assert {"Client", "DeliveryError", "EventsRejected", "SendingStopped", "ServerUnavailable"} <= set(
        exported
    )
