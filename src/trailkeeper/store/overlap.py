"""Write statements run in a thread of their own while the writer makes the next ones.

SQLite runs a statement without Python's GIL, so the writer can build the next rows (Python,
holding the GIL) while the last ones are inserted. The hand-over is a rendezvous: the writer
waits until the statement thread has *taken* each statement. Handed over without it, the
statement thread would be woken while the writer runs Python, and wait for the GIL until the
interpreter's switch interval (5 ms) forced the writer to let go; taken while the writer
blocks, it binds the statement's values and lets the GIL go as soon as SQLite starts.

Statements run one at a time, in the order handed over, on the one connection; the writer
uses the connection itself only after :meth:`Overlapped.drain`. After a statement fails, the
ones still to come are skipped, and ``drain`` raises the failure: the writer then rolls back.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

_Statement = tuple[str, Sequence[Any], bool]


class Overlapped:
    """A thread that runs one connection's statements, handed over by one writer."""

    def __init__(self, conn: sqlite3.Connection, name: str) -> None:
        self._conn = conn
        self._changed = threading.Condition(threading.Lock())
        self._waiting: deque[_Statement] = deque()
        self._running = False
        self._failure: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def execute(self, sql: str, params: Sequence[Any], *, many: bool = False) -> None:
        """Have the statement run (``executemany`` with ``many``); returns once it has started."""
        with self._changed:
            if self._closed:
                raise RuntimeError("the statement thread is closed")
            self._waiting.append((sql, params, many))
            self._changed.notify_all()
            while self._waiting:
                self._changed.wait()

    def drain(self) -> None:
        """Wait until every statement handed over has run; raise the first that failed."""
        with self._changed:
            while self._waiting or self._running:
                self._changed.wait()
            failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()

    def _run(self) -> None:
        conn = self._conn
        while True:
            with self._changed:
                while not self._waiting and not self._closed:
                    self._changed.wait()
                if not self._waiting:
                    return
                sql, params, many = self._waiting.popleft()
                self._running = True
                skip = self._failure is not None
                self._changed.notify_all()
            failure = None
            try:
                if skip:
                    pass  # a statement before it failed: the transaction is rolled back
                elif many:
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql, params)
            except BaseException as exc:  # noqa: BLE001 - raised in the writer by drain()
                failure = exc
            with self._changed:
                if failure is not None:
                    self._failure = failure
                self._running = False
                self._changed.notify_all()
