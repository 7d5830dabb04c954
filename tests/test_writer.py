"""The one writer of a process, as its callers see it around a close."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from trailkeeper import AuditLog
from trailkeeper.errors import Unavailable

LOGIN = {"category": "authentication", "action": "auth.login.succeeded", "actor": {"type": "user", "id": "u"}}


def test_a_batch_handed_over_as_the_log_closes_is_answered(tmp_path: Path) -> None:
    # A batch handed over as the log closes is committed or refused, never left waiting:
    # a waiting caller is a server's request thread, which keeps the process from exiting.
    # The hand-over is slowed so that the close comes in the middle of it.
    log = AuditLog.open(f"sqlite:///{tmp_path}/audit.db")
    queue = log._writer._queue
    hand_over = queue.put
    handing = threading.Event()

    def slow_put(item: Any, *args: Any, **kwargs: Any) -> None:
        if item is not None:
            handing.set()
            time.sleep(0.3)
        hand_over(item, *args, **kwargs)

    queue.put = slow_put  # type: ignore[method-assign]
    outcome: list[str] = []

    def append() -> None:
        try:
            log.record("acme", **LOGIN)
            outcome.append("committed")
        except Unavailable:
            outcome.append("refused")

    caller = threading.Thread(target=append, daemon=True)
    caller.start()
    assert handing.wait(5)
    log.close()
    caller.join(timeout=10)
    assert not caller.is_alive(), "the caller still waits for an answer"
    assert outcome in (["committed"], ["refused"])
