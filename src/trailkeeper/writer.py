"""The one writer: every append of a process goes through one thread and one queue.

Callers validate their events in their own thread, then hand the batch over and wait. The
writer takes every batch that is waiting, appends them all in one transaction and wakes
their callers after the commit (group commit): under load, one fsync serves many callers.
The same thread signs checkpoints, at most once a second per tenant and within a second of
every commit, so signing never races with appending.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from trailkeeper.errors import Unavailable
from trailkeeper.store.base import Appended, AppendRequest, Store

log = logging.getLogger("trailkeeper.writer")

# How many events one transaction takes at most: enough to amortise the fsync, few enough
# that a waiting caller is not held behind a huge group.
GROUP_LIMIT = 20_000
CHECKPOINT_INTERVAL = 1.0


@dataclass
class _Job:
    request: AppendRequest
    done: Future[list[Appended]] = field(default_factory=Future)


@dataclass
class _SignRequest:
    tenant: str
    done: Future[None] = field(default_factory=Future)


class Writer:
    def __init__(self, store: Store, sign: Callable[[str], None]) -> None:
        """``sign(tenant)`` signs a checkpoint of the tenant's tree as committed."""
        self._store = store
        self._sign = sign
        self._queue: queue.Queue[_Job | _SignRequest | None] = queue.Queue()
        # Tenants written since their last checkpoint.
        self._pending: set[str] = set()
        self._last_signed: dict[str, float] = {}
        self._closed = False
        # Taken to check ``_closed`` and queue in one step: a job queued after the stop
        # sentinel would never be taken, and its caller would wait for ever (a request's
        # thread, which keeps the process from exiting).
        self._closing = threading.Lock()
        # Transactions committed: fewer than the batches appended when callers share commits.
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="trailkeeper-writer", daemon=True)
        self._thread.start()

    def append(self, request: AppendRequest) -> list[Appended]:
        """Append one batch; returns once it is committed."""
        return self.submit(request).result()

    def submit(self, request: AppendRequest) -> Future[list[Appended]]:
        """Queue one batch; the future resolves once it is committed."""
        job = _Job(request)
        if not self._enqueue(job):
            raise Unavailable("the audit log is closed")
        return job.done

    def sign_now(self, tenant: str) -> None:
        """Sign a checkpoint for the tenant's current tree, if it has grown since the last."""
        job = _SignRequest(tenant)
        if self._enqueue(job):
            job.done.result()

    def _enqueue(self, item: _Job | _SignRequest) -> bool:
        """Hand an item to the writer thread; False once the writer is closed."""
        with self._closing:
            if self._closed:
                return False
            self._queue.put(item)
            return True

    def close(self) -> None:
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        running = True
        while running:
            timeout = self._next_deadline()
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._sign_due()
                continue
            batch = [first]
            size = len(first.request.events) if isinstance(first, _Job) else 0
            while size < GROUP_LIMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                if isinstance(item, _Job):
                    size += len(item.request.events)
            jobs = [item for item in batch if isinstance(item, _Job)]
            if jobs:
                self._commit(jobs)
            for item in batch:
                if item is None:
                    running = False
                elif isinstance(item, _SignRequest):
                    self._sign_tenant(item.tenant, item.done)
            self._sign_due()
        self._sign_due(force=True)

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            results, heads = self._store.append([job.request for job in jobs])
        except Exception:  # noqa: BLE001 - isolate the failing batch, then report it to its caller
            if len(jobs) > 1:
                for job in jobs:
                    self._commit([job])
            else:
                jobs[0].done.set_exception(sys.exc_info()[1] or RuntimeError("append failed"))
            return
        self.commits += 1
        self._pending.update(head.tenant for head in heads)
        for job, result in zip(jobs, results, strict=True):
            job.done.set_result(result)

    def _next_deadline(self) -> float | None:
        if not self._pending:
            return None
        now = time.monotonic()
        due = min(self._last_signed.get(t, 0.0) + CHECKPOINT_INTERVAL for t in self._pending)
        return max(0.0, due - now)

    def _sign_due(self, *, force: bool = False) -> None:
        now = time.monotonic()
        for tenant in list(self._pending):
            if force or now - self._last_signed.get(tenant, 0.0) >= CHECKPOINT_INTERVAL:
                self._sign_tenant(tenant, None)

    def _sign_tenant(self, tenant: str, done: Future[None] | None) -> None:
        self._pending.discard(tenant)
        try:
            self._sign(tenant)
            self._last_signed[tenant] = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - a refusal to sign must reach whoever asked
            if done is not None:
                done.set_exception(exc)
            else:
                # The writer must outlive a refusal: the events are committed and the next
                # verification run will say what is wrong.
                log.error("cannot sign a checkpoint for %s: %s", tenant, exc)
            return
        if done is not None:
            done.set_result(None)
