"""POST /v1/events: one event, a batch, NDJSON; all or nothing; idempotent; bounded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
from tests.api.helpers import Api, event, record, search

from trailkeeper.events import MAX_BATCH


def test_one_event_is_stored_and_acknowledged_with_its_seq(client: httpx.Client, tenant: str) -> None:
    response = client.post("/v1/events", json=event(id="evt-1", description="hello"))

    assert response.status_code == 201
    body = response.json()
    assert body["accepted"] == 1
    (ack,) = body["events"]
    assert ack["id"] == "evt-1"
    stored = client.get("/v1/events/evt-1").json()
    assert stored["seq"] == ack["seq"]
    assert stored["tenant"] == tenant
    assert stored["description"] == "hello"


def test_batch_is_stored_in_order_with_consecutive_seqs(client: httpx.Client) -> None:
    acks = record(client, *(event(id=f"b-{i}") for i in range(5)))

    assert [a["id"] for a in acks] == [f"b-{i}" for i in range(5)]
    seqs = [a["seq"] for a in acks]
    assert seqs == list(range(seqs[0], seqs[0] + 5))


def test_ndjson_body_is_one_event_per_line(client: httpx.Client) -> None:
    lines = [json.dumps(event(id=f"n-{i}")) for i in range(3)]
    body = "\r\n".join(lines[:2]) + "\n\n" + lines[2] + "\n"

    response = client.post("/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"})

    assert response.status_code == 201, response.text
    assert [a["id"] for a in response.json()["events"]] == ["n-0", "n-1", "n-2"]


def test_server_assigns_an_id_when_none_is_sent(client: httpx.Client) -> None:
    (ack,) = record(client, event())

    assert len(ack["id"]) == 36
    assert client.get(f"/v1/events/{ack['id']}").status_code == 200


def test_batch_with_one_bad_event_is_refused_whole_and_nothing_is_stored(client: httpx.Client) -> None:
    bad = event(id="bad-1", outcome="maybe", actor={"type": "robot", "id": "r"})
    response = client.post("/v1/events", json={"events": [event(id="good-1"), bad, event(id="good-2")]})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_event"
    fields = {(d["index"], d["field"]) for d in error["details"]}
    assert fields == {(1, "outcome"), (1, "actor.type")}
    assert all(set(d) == {"index", "field", "message"} for d in error["details"])
    assert search(client) == []


def test_unknown_top_level_field_is_named_in_the_422(client: httpx.Client) -> None:
    response = client.post("/v1/events", json=event(categroy="system"))

    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"index": 0, "field": "categroy", "message": "unknown field"}
    ]


def test_repeated_id_is_stored_once_and_returns_its_first_seq(client: httpx.Client) -> None:
    (first,) = record(client, event(id="once", description="first"))
    (again,) = record(client, event(id="once", description="second"))

    assert again == first
    (stored,) = search(client)
    assert stored["description"] == "first"


def test_body_over_five_mebibytes_is_413(client: httpx.Client) -> None:
    padding = "x" * 1000
    events = [event(description=padding) for _ in range(5300)]
    body = json.dumps({"events": events}).encode()
    assert len(body) > 5 * 1024 * 1024

    response = client.post("/v1/events", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert search(client) == []


def test_chunked_body_over_the_limit_is_413_while_it_arrives(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        # No Content-Length: the server can only count.
        yield b'{"events": ['
        for _ in range(6 * 1024):
            yield b" " * 1024

    response = client.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413


def test_malformed_json_is_400_not_422(client: httpx.Client) -> None:
    response = client.post(
        "/v1/events", content=b'{"category": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_bad_ndjson_line_is_400_naming_the_line(client: httpx.Client) -> None:
    body = json.dumps(event()) + "\n{oops\n"

    response = client.post("/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"line": 2}
    assert search(client) == []


def test_empty_body_is_400(client: httpx.Client) -> None:
    response = client.post("/v1/events", content=b"", headers={"Content-Type": "application/json"})

    assert response.status_code == 400


def test_events_that_is_not_a_list_is_422(client: httpx.Client) -> None:
    response = client.post("/v1/events", json={"events": {"category": "system"}})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "events"


def test_batch_over_the_limit_is_422(client: httpx.Client) -> None:
    response = client.post("/v1/events", json={"events": [event()] * (MAX_BATCH + 1)})

    assert response.status_code == 422
    assert search(client) == []


def test_form_encoded_body_from_plain_curl_is_read_as_json(client: httpx.Client) -> None:
    response = client.post(
        "/v1/events",
        content=json.dumps(event(id="curl-1")),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 201


def test_concurrent_posts_are_each_acknowledged_with_distinct_seqs(api: Api, tenant: str) -> None:
    clients = [api.client(tenant) for _ in range(6)]
    acks: list[int] = []
    lock = threading.Lock()

    def post(client: httpx.Client, n: int) -> None:
        for i in range(5):
            (ack,) = record(client, event(id=f"c-{n}-{i}"))
            with lock:
                acks.append(ack["seq"])

    threads = [threading.Thread(target=post, args=(c, n)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(acks)) == 30
    assert len(search(clients[0])) == 30
