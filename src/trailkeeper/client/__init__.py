"""The remote client of trailkeeper (CONTRACT section 7).

```python
from trailkeeper.client import Client

with Client("http://127.0.0.1:8600", api_key=KEY, spool_dir=".spool") as client:
    client.record(category="workflow", action="alert.sent", actor={"type": "agent", "id": "a1"})
```

``record`` never waits on the network: a daemon thread sends the events in batches and
retries until the server has them. Each event gets its id here (a UUIDv7, unless it brings
its own), so a batch sent twice is stored once.

Where events wait, and what ``record`` costs:

- With ``spool_dir`` (recommended), ``record`` returns once the event is fsync'd to a file in
  that directory: a local disk write, shared by every thread recording at the same moment.
  That is the price of "never drops an event": a process killed right after ``record``
  returned still sends the event, from its next start over the same directory. Nothing
  bounds the spool but the disk.
- Without it, events wait in memory, at most ``max_pending``; past that ``record`` raises
  :class:`QueueFull` instead of blocking or dropping silently. A client not closed by the
  time the interpreter exits gets up to ``timeout`` seconds to deliver them; events still
  unsent then, or when the process is killed, are lost.

The client speaks only HTTP and imports nothing of the server side.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from trailkeeper.client.errors import (
    ClientClosed,
    ClientError,
    DeliveryError,
    EventsRejected,
    QueueFull,
    RejectedEvent,
    SendingStopped,
    ServerUnavailable,
    SpoolLocked,
)
from trailkeeper.client.sender import Sender
from trailkeeper.client.spool import DEAD_LETTER_FILE, DiskSpool, EventQueue, MemoryQueue
from trailkeeper.client.transport import MAX_BATCH_EVENTS, encode_event

__all__ = [
    "DEAD_LETTER_FILE",
    "Client",
    "ClientClosed",
    "ClientError",
    "DeliveryError",
    "EventsRejected",
    "QueueFull",
    "RejectedEvent",
    "SendingStopped",
    "ServerUnavailable",
    "SpoolLocked",
]

logger = logging.getLogger("trailkeeper.client")

USER_AGENT = "trailkeeper-client/0.1"


class Client:
    """Records events on a trailkeeper server, from any number of threads.

    ``batch_size`` events at most go in one request (the server takes up to 1,000);
    ``flush_interval`` is how long the first event of a batch waits for others;
    ``timeout`` bounds each request; retries back off exponentially, with full jitter, up to
    ``max_backoff`` seconds, or as long as a 429 or 503 ``Retry-After`` asks.

    Failures of delivery happen on the sending thread. Each one is passed to ``on_error``
    (called on that thread; it should return quickly) and kept as :attr:`last_error`:

    - :class:`ServerUnavailable`: no connection, a timeout, 429 or 5xx; retried.
    - :class:`EventsRejected`: the server refused these events on their own account (422, or
      413 for one event alone), or a crash cut their spool line short; they are written to
      ``dead_letter.ndjson`` in the spool directory, and the rest of the batch is sent.
    - :class:`SendingStopped`: 401, 403 or another refusal a retry cannot change; nothing
      more is sent, and the events stay in the spool for a client with a working key.

    ``transport`` replaces the network, e.g. with ``httpx.MockTransport`` in tests.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        max_pending: int = 100_000,
        on_error: Callable[[DeliveryError], object] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_EVENTS}, not {batch_size}")
        if flush_interval <= 0 or timeout <= 0 or max_backoff <= 0 or max_pending < 1:
            raise ValueError("flush_interval, timeout, max_backoff and max_pending must be positive")
        if httpx.URL(base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        if not api_key:
            raise ValueError("api_key is empty")
        self._timeout = timeout
        self._on_error = on_error
        self._last_error: DeliveryError | None = None
        self._close_lock = threading.Lock()
        self._closed = False
        self._queue: EventQueue = MemoryQueue(max_pending) if spool_dir is None else DiskSpool(spool_dir)

        def connect() -> httpx.Client:
            return httpx.Client(
                base_url=base_url,
                headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
                timeout=timeout,
                transport=transport,
            )

        self._sender = Sender(
            self._queue,
            connect,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_backoff=max_backoff,
            report=self._report,
        )
        self._sender.start()
        atexit.register(self._close_at_exit)

    @property
    def last_error(self) -> DeliveryError | None:
        """The latest failure of delivery, if there was one (it stays after a later success)."""
        return self._last_error

    def record(self, **event: Any) -> str:
        """Queue one event (the fields of CONTRACT section 2) and return its id at once."""
        return self.record_many([event])[0]

    def record_many(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Queue events, in order, all or none, and return their ids. Raises TypeError or
        ValueError when one cannot be written as JSON, :class:`QueueFull` when the memory
        queue has no room, :class:`ClientClosed` after :meth:`close`."""
        if self._closed:
            raise ClientClosed("the client is closed")
        encoded = [encode_event(event) for event in events]
        if encoded:
            self._queue.append([line for _, line in encoded])
        return [event_id for event_id, _ in encoded]

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event recorded before this call has been stored by the server
        (or, invalid, set aside in the dead letter). False when ``timeout`` seconds pass
        first, or at once if sending has stopped (see :class:`SendingStopped`)."""
        target = self._queue.end()
        self._sender.nudge()
        return self._sender.wait_until(target, timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush for up to ``timeout`` seconds, then stop sending. True when everything was
        delivered; what was not stays in the spool for the next client over it."""
        with self._close_lock:
            if self._closed:
                return False
            self._closed = True
        atexit.unregister(self._close_at_exit)
        try:
            return self.flush(timeout)
        finally:
            # A request in flight ends within the request timeout; it is not cut short.
            self._sender.stop(self._timeout + 1.0)
            self._queue.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _close_at_exit(self) -> None:
        # The sending thread is a daemon, so that a forgotten client never keeps a process
        # alive; this gives its events their chance first. Spooled events need none.
        self.close(timeout=self._timeout if isinstance(self._queue, MemoryQueue) else 0)

    def _report(self, error: DeliveryError) -> None:
        self._last_error = error
        level = logging.INFO if isinstance(error, ServerUnavailable) else logging.WARNING
        logger.log(level, "trailkeeper client: %s", error)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                logger.exception("trailkeeper client: the on_error callback failed")
