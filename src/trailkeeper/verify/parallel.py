"""The chunks of a large log shared out between this process and helper processes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import suppress

from trailkeeper.store.base import Store
from trailkeeper.verify.chunks import Chunk, ChunkCheck, check_chunk

# --- sharing the chunks out -------------------------------------------------------------------

# A helper is a plain interpreter started on this module, fed chunks as pickles on its stdin
# and answering on its stdout. Unlike multiprocessing's spawn, it never imports the caller's
# __main__ (which a script without a main guard would run again), and unlike fork it inherits
# no threads or locks. Pickles only ever pass between this process and the helpers it started.
HELPER_COMMAND = "from trailkeeper.verify.parallel import serve_chunks; serve_chunks()"


def serve_chunks() -> None:
    """A helper process: read the store's URL and the tenant, then check each chunk it is
    given, until its input ends."""
    from trailkeeper.store import open_store

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    url, tenant = pickle.load(requests)  # noqa: S301 - written by the process that started this one
    store = open_store(url)
    try:
        while True:
            try:
                chunk = pickle.load(requests)  # noqa: S301 - as above
            except EOFError:
                return
            pickle.dump(check_chunk(store, tenant, chunk), answers)
            answers.flush()
    finally:
        store.close()


class _Work:
    """The chunks, handed out in order to whoever is free (this process or a helper), and the
    checks of those done, kept until they are taken in order."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        self._next = 0
        self._returned: list[int] = []  # chunks a failed helper gave back
        self._done: dict[int, ChunkCheck] = {}
        self._changed = threading.Condition()
        self._stopped = False

    def take(self) -> int | None:
        """The next chunk to check, or None when none is left (or the work stopped)."""
        with self._changed:
            if self._stopped:
                return None
            if self._returned:
                return self._returned.pop()
            if self._next == len(self.chunks):
                return None
            self._next += 1
            return self._next - 1

    def done(self, index: int, check: ChunkCheck) -> None:
        with self._changed:
            self._done[index] = check
            self._changed.notify_all()

    def give_back(self, index: int) -> None:
        with self._changed:
            self._returned.append(index)
            self._changed.notify_all()

    def result(self, index: int, *, wait: bool) -> ChunkCheck | None:
        """The check of a chunk once it is done; with ``wait``, wait until it is, or until a
        chunk is given back, for the caller to take."""
        with self._changed:
            if wait:
                self._changed.wait_for(lambda: index in self._done or bool(self._returned))
            return self._done.pop(index, None)

    def stop(self) -> None:
        with self._changed:
            self._stopped = True


def _helper(url: str, tenant: str, work: _Work) -> None:
    """A helper's thread: start the helper process and keep it fed. A helper that fails only
    means less help: its chunk goes back for another to take."""
    try:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, on a fixed command
            [sys.executable, "-c", HELPER_COMMAND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # The helper imports what this process imports, from where this process does.
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)},
        )
    except OSError:
        return
    requests, answers = process.stdin, process.stdout
    assert requests is not None
    assert answers is not None
    index: int | None = None
    try:
        pickle.dump((url, tenant), requests)
        while (index := work.take()) is not None:
            pickle.dump(work.chunks[index], requests)
            requests.flush()
            work.done(index, pickle.load(answers))  # noqa: S301 - from the helper this thread started
    except Exception:  # noqa: BLE001 - any failure of a helper is met the same way
        if index is not None:
            work.give_back(index)
    finally:
        process.kill()  # idle once its last chunk is done, or failed
        process.wait()
        with suppress(OSError):
            requests.close()
        answers.close()


def chunk_checks(store: Store, tenant: str, chunks: list[Chunk], helpers: int) -> Iterator[ChunkCheck]:
    """The check of every chunk, in order. With helpers, this process checks chunks too, so
    that none waits for a helper to start: whenever the chunk it needs next is not done, it
    takes the next one free, and waits only when none is."""
    url = store.shared_url() if helpers > 0 and len(chunks) > 1 else None
    if url is None:
        for chunk in chunks:
            yield check_chunk(store, tenant, chunk)
        return
    work = _Work(chunks)
    threads = [
        threading.Thread(target=_helper, args=(url, tenant, work), name="verify-helper", daemon=True)
        for _ in range(min(helpers, len(chunks) - 1))
    ]
    for thread in threads:
        thread.start()
    try:
        for index in range(len(chunks)):
            check = work.result(index, wait=False)
            while check is None:
                mine = work.take()
                if mine is not None:
                    work.done(mine, check_chunk(store, tenant, chunks[mine]))
                check = work.result(index, wait=mine is None)
            yield check
    finally:
        work.stop()
        for thread in threads:
            thread.join()


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1
