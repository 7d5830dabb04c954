"""``POST /v1/events`` in memory, behind ``httpx.MockTransport``: the seam the client's
unit tests drive. It keeps the contract's promises that the client relies on: all or
nothing, 422 with ``{index, field, message}`` for each bad event, idempotent on ``id``."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# An event with this action is what the fake server calls invalid.
INVALID_ACTION = "Not A Valid Action"

Step = Callable[[httpx.Request, "FakeServer"], httpx.Response]


def event(number: int = 0, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "category": "workflow",
        "action": "alert.sent",
        "actor": {"type": "agent", "id": "a1"},
        "description": f"event {number}",
    }
    base.update(fields)
    return base


def status(code: int, headers: dict[str, str] | None = None, details: Any = None) -> Step:
    """A step that answers ``code`` with the API's error shape, storing nothing."""

    def answer(request: httpx.Request, server: FakeServer) -> httpx.Response:
        body = {"error": {"code": "test", "message": f"status {code} from the test", "details": details}}
        return httpx.Response(code, json=body, headers=headers)

    return answer


def fail_with(exception: type[httpx.TransportError]) -> Step:
    def answer(request: httpx.Request, server: FakeServer) -> httpx.Response:
        raise exception("from the test", request=request)

    return answer


def store_then_lose_answer(request: httpx.Request, server: FakeServer) -> httpx.Response:
    """The batch is stored, then the connection breaks before the 201 arrives."""
    server.accept(request)
    raise httpx.ReadTimeout("the answer was lost", request=request)


@dataclass
class FakeServer:
    script: deque[Step] = field(default_factory=deque)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)
    max_body: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def then(self, *steps: Step) -> FakeServer:
        self.script.extend(steps)
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.path == "/v1/events"
        with self.lock:
            self.batches.append(json.loads(request.content)["events"])
            self.times.append(time.monotonic())
            self.headers.append(request.headers)
            step = self.script.popleft() if self.script else None
        if step is not None:
            return step(request, self)
        if self.max_body is not None and len(request.content) > self.max_body:
            return status(413)(request, self)
        return self.accept(request)

    def accept(self, request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        bad = [
            {"index": i, "field": "action", "message": "must be dotted lowercase"}
            for i, sent in enumerate(events)
            if sent["action"] == INVALID_ACTION
        ]
        if bad:
            return status(422, details=bad)(request, self)
        with self.lock:
            for sent in events:
                if sent["id"] not in self.stored:
                    self.stored[sent["id"]] = sent
                    self.order.append(sent["id"])
            acknowledged = [{"id": sent["id"], "seq": self.order.index(sent["id"])} for sent in events]
        return httpx.Response(201, json={"accepted": len(events), "events": acknowledged})

    def sent_ids(self) -> list[str]:
        """Every id of every request, in the order sent (repeats included)."""
        with self.lock:
            return [sent["id"] for batch in self.batches for sent in batch]
