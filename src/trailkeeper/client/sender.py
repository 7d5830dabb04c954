"""The sending thread: takes the oldest events from the queue, posts them as one batch, and
marks them resolved once the server has them (or has refused them as invalid).

Events leave the queue in order and only as a whole batch, so the queue needs no more than
one position to know what is done. A batch is retried until it gets through; the only
events ever taken out without a 201 are those the server refuses on their own account (422,
or 413 for one event alone) and spool lines a crash cut short, and they go to the dead
letter first.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from trailkeeper.client.errors import (
    DeliveryError,
    EventsRejected,
    RejectedEvent,
    SendingStopped,
    ServerUnavailable,
)
from trailkeeper.client.spool import Entry, EventQueue, Position
from trailkeeper.client.transport import (
    MAX_BATCH_BYTES,
    Accepted,
    Invalid,
    Outcome,
    Retry,
    Split,
    batch_body,
    classify,
    retry_delay,
)

logger = logging.getLogger("trailkeeper.client")

UNREADABLE = {"field": None, "message": "the spool line is not a whole JSON event (cut short by a crash?)"}


def dead_letter_line(rejected: RejectedEvent, status: int | None) -> bytes:
    """One line of the dead letter: when, why, and the event (or the raw line)."""
    entry: dict[str, Any] = {
        "set_aside_at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "status": status,
        "errors": list(rejected.errors),
    }
    if rejected.event is not None:
        entry["event"] = rejected.event
    else:
        entry["line"] = rejected.raw.decode("utf-8", "backslashreplace")
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _rejected(entry: Entry, errors: Sequence[dict[str, Any]]) -> RejectedEvent:
    try:
        event = json.loads(entry.line)
    except ValueError:
        event = None
    return RejectedEvent(event if isinstance(event, dict) else None, tuple(errors), entry.line)


class Sender:
    """One daemon thread delivering ``queue`` through the HTTP client ``connect`` makes;
    ``report`` hears of every failure. Only this thread reads and resolves the queue."""

    def __init__(
        self,
        queue: EventQueue,
        connect: Callable[[], httpx.Client],
        *,
        batch_size: int,
        flush_interval: float,
        max_backoff: float,
        report: Callable[[DeliveryError], None],
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._connect = connect
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self._report = report
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self.stopped_by: SendingStopped | None = None
        self._thread = threading.Thread(target=self._run, name="trailkeeper-client-sender", daemon=True)

    def start(self) -> None:
        self._wake.set()  # whatever an earlier process left in the spool goes at once
        self._thread.start()

    def nudge(self) -> None:
        """Send now rather than at the end of the flush interval."""
        self._wake.set()

    def wait_until(self, target: Position, timeout: float | None) -> bool:
        """Wait until everything before ``target`` is resolved; False on timeout, or at once
        when sending has stopped for good."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self._queue.done() < target:
                if self.stopped_by is not None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining)
        return True

    def stop(self, timeout: float) -> None:
        """Stop after the request in flight, if any; unsent events stay queued."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            # Made here rather than by the caller: setting up TLS (loading the CA bundle)
            # takes a noticeable moment that the caller need not wait for.
            http = self._connect()
        except Exception as exc:
            logger.exception("trailkeeper client: cannot set up the HTTP client")
            self.stopped_by = SendingStopped(f"cannot set up the HTTP client: {exc}")
            self._report(self.stopped_by)
            self._notify()
            return
        try:
            with http:
                self._serve(http)
        finally:
            self._notify()

    def _serve(self, http: httpx.Client) -> None:
        while not self._stopping.is_set() and self.stopped_by is None:
            # The flush interval is the linger: events recorded meanwhile share a batch.
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self._drain(http)
            except Exception as exc:
                # A disk or programming fault must not end delivery for good: say so, wait,
                # and try again from the last resolved position.
                logger.exception("trailkeeper client: sending failed")
                self._report(ServerUnavailable(f"{type(exc).__name__}: {exc}", None, self._max_backoff))
                self._stopping.wait(self._max_backoff)

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _drain(self, http: httpx.Client) -> None:
        while not self._stopping.is_set():
            batch = self._queue.peek(self._batch_size, MAX_BATCH_BYTES)
            if not batch or not self._resolve(http, batch):
                return
            self._queue.commit(batch[-1].end)
            self._notify()

    def _resolve(self, http: httpx.Client, batch: list[Entry]) -> bool:
        """Deliver ``batch``; True once each event is stored or set aside."""
        unreadable = [entry for entry in batch if not entry.readable]
        if unreadable:
            self._set_aside([_rejected(entry, [UNREADABLE]) for entry in unreadable], None)
        return self._deliver(http, [entry for entry in batch if entry.readable])

    def _deliver(self, http: httpx.Client, entries: list[Entry]) -> bool:
        attempt = 0
        while entries:
            if self._stopping.is_set():
                return False
            outcome = self._post(http, entries)
            if isinstance(outcome, Accepted):
                return True
            if isinstance(outcome, Invalid):
                # All or nothing on the server: the invalid events go, the others are sent again.
                bad = [_rejected(entries[i], errors) for i, errors in sorted(outcome.errors.items())]
                self._set_aside(bad, 422)
                entries = [entry for i, entry in enumerate(entries) if i not in outcome.errors]
                attempt = 0
            elif isinstance(outcome, Split):
                if len(entries) == 1:
                    error = {"field": None, "message": outcome.message}
                    self._set_aside([_rejected(entries[0], [error])], outcome.status)
                    return True
                half = len(entries) // 2
                return self._deliver(http, entries[:half]) and self._deliver(http, entries[half:])
            elif isinstance(outcome, Retry):
                delay = retry_delay(outcome, attempt, self._max_backoff, self._rng)
                self._report(ServerUnavailable(f"{outcome.message}; retrying", outcome.status, delay))
                if self._stopping.wait(delay):
                    return False
                attempt += 1
            else:
                self.stopped_by = SendingStopped(
                    f"{outcome.message}; sending stopped, events stay queued", outcome.status
                )
                self._report(self.stopped_by)
                return False
        return True

    def _post(self, http: httpx.Client, entries: list[Entry]) -> Outcome:
        body = batch_body([entry.line for entry in entries])
        try:
            response = http.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            # The request may have been stored before the connection broke: resending is
            # safe, since every event carries its id.
            return Retry(None, f"{type(exc).__name__}: {exc or 'no response'}")
        return classify(response, len(entries), time.time())

    def _set_aside(self, rejected: list[RejectedEvent], status: int | None) -> None:
        self._queue.set_aside([dead_letter_line(event, status) for event in rejected])
        self._report(EventsRejected(rejected, status))
