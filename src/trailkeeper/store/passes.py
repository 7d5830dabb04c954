"""A thread of a store's own that keeps derived data up with the commits, pass by pass.

Both stores keep their search indexes off the acknowledged path and fill them after the
commits: this is the thread that does it, woken by each commit, running at most one round
of passes per interval, so that under load each pass takes a large batch (many small passes
cost far more than one large one, each writing the index pages it touches).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("trailkeeper")


class PacedPasses:
    """Runs ``work`` on a thread of its own once woken, at most once per ``interval``
    seconds. ``work`` returns whether it left a backlog, in which case the next round
    follows at once. A failure is logged as ``failure`` and the next commit tries again:
    what is not derived yet is still read from the records."""

    def __init__(self, work: Callable[[], bool], *, name: str, interval: float, failure: str) -> None:
        self._work = work
        self._interval = interval
        self._failure = failure
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._wake.set()  # whatever an earlier run left behind

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called: a long round ends early."""
        return self._stopping.is_set()

    def notify(self) -> None:
        """New records were committed."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread, once the round it runs (if any) is over."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        last = 0.0
        while not self._stopping.is_set():
            self._wake.wait()
            if self._stopping.is_set():
                return
            # Let a batch gather behind a busy writer: one round per interval at most.
            delay = last + self._interval - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return
            self._wake.clear()
            last = time.monotonic()
            try:
                if self._work():
                    last = 0.0
                    self._wake.set()
            except Exception:
                log.exception(self._failure)
