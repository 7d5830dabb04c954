"""Where recorded events wait until the server has them: a FIFO of JSON lines.

Two queues share one shape. :class:`DiskSpool` survives the process: ``append`` returns only
once its lines are fsync'd, and the acknowledged position is itself written durably, so a
process killed at any instant loses nothing (an event may be sent twice; the server keeps
it once, by its id). :class:`MemoryQueue` is bounded and dies with the process.

A position is ``(segment, byte offset)`` on disk and ``(0, event number)`` in memory; both
compare in queue order, which is all :meth:`Client.flush` needs.

On disk, in the spool directory::

    0000000000000001.spool ...   segments of NDJSON, appended to and never rewritten
    ack                          "<segment> <offset>": everything before it is resolved
    dead_letter.ndjson           events the server refused as invalid, with its reasons
    lock                         held (flock) by the one client using the directory
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trailkeeper.client.errors import ClientClosed, QueueFull, SpoolLocked

Position = tuple[int, int]

# A segment is closed and a new one begun past this size, so that acknowledged events
# are freed by deleting whole files rather than by rewriting one.
SEGMENT_BYTES = 8 * 1024 * 1024
SEGMENT_SUFFIX = ".spool"
ACK_FILE = "ack"
DEAD_LETTER_FILE = "dead_letter.ndjson"
LOCK_FILE = "lock"

# fdatasync skips the inode times that fsync would also write; the file size it does flush.
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued event: its JSON line and the position just after it. ``readable`` is
    False for a line a crash cut short or that is otherwise not a JSON object."""

    line: bytes
    end: Position
    readable: bool = True


class EventQueue(Protocol):
    def append(self, lines: Sequence[bytes]) -> None: ...

    def peek(self, limit: int, max_bytes: int) -> list[Entry]: ...

    def commit(self, end: Position) -> None: ...

    def end(self) -> Position: ...

    def done(self) -> Position: ...

    def set_aside(self, lines: Sequence[bytes]) -> None: ...

    def close(self) -> None: ...


def _take(lines: Sequence[bytes], limit: int, max_bytes: int) -> int:
    """How many of ``lines`` fit a batch: at most ``limit``, at most ``max_bytes`` in all,
    but always the first, so that one large event still goes (and is judged) on its own."""
    count = total = 0
    for line in lines[:limit]:
        total += len(line)
        if count and total > max_bytes:
            break
        count += 1
    return count


class MemoryQueue:
    """Events waiting in memory, at most ``max_events``; beyond that ``append`` raises
    :class:`QueueFull` rather than drop an event or block the caller."""

    def __init__(self, max_events: int) -> None:
        self._max_events = max_events
        self._lock = threading.Lock()
        self._lines: deque[bytes] = deque()
        self._first = 0  # the number of the event at the front, counting from 0
        self._closed = False

    def append(self, lines: Sequence[bytes]) -> None:
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            if len(self._lines) + len(lines) > self._max_events:
                raise QueueFull(
                    f"{len(self._lines)} events already wait in memory (at most {self._max_events}); "
                    "give the client a spool_dir to queue on disk"
                )
            self._lines.extend(lines)

    def peek(self, limit: int, max_bytes: int) -> list[Entry]:
        with self._lock:
            front = [self._lines[i] for i in range(min(limit, len(self._lines)))]
            first = self._first
        count = _take(front, limit, max_bytes)
        return [Entry(line, (0, first + i + 1)) for i, line in enumerate(front[:count])]

    def commit(self, end: Position) -> None:
        with self._lock:
            for _ in range(min(end[1] - self._first, len(self._lines))):
                self._lines.popleft()
                self._first += 1

    def end(self) -> Position:
        with self._lock:
            return (0, self._first + len(self._lines))

    def done(self) -> Position:
        with self._lock:
            return (0, self._first)

    def set_aside(self, lines: Sequence[bytes]) -> None:
        """Nowhere to keep them: the ``on_error`` report is the only record."""

    def close(self) -> None:
        with self._lock:
            self._closed = True


def _segment_name(number: int) -> str:
    return f"{number:016d}{SEGMENT_SUFFIX}"


def _fsync_directory(directory: Path) -> None:
    # A new or renamed file is durable only once its directory entry is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _readable(line: bytes) -> bool:
    if not line.endswith(b"\n"):
        return False
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and isinstance(event.get("id"), str)


def _read_ack(path: Path) -> Position:
    try:
        segment, offset = path.read_text("ascii").split()
        return (int(segment), int(offset))
    except (OSError, ValueError):
        # No ack yet, or an unreadable one: start from the beginning. Resending what was
        # already acknowledged is harmless; the server keeps each id once.
        return (0, 0)


class DiskSpool:
    """An append-only, fsync'd queue in ``directory``, used by one client at a time."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.directory / LOCK_FILE, "ab")  # noqa: SIM115 (held until close)
        try:
            # Released by the kernel when the process dies, even by SIGKILL.
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise SpoolLocked(f"another client is using the spool directory {self.directory}") from None
        self._lock = threading.Lock()  # guards the state below; across an fsync only to roll over
        self._sync_lock = threading.Lock()  # one fsync at a time, covering every writer before it
        self._commit_lock = threading.Lock()  # one ack write at a time, and none after close
        self._closed = False
        # Durable size of each segment; a segment's number orders it in the queue.
        self._sizes = {
            int(path.name.removesuffix(SEGMENT_SUFFIX)): path.stat().st_size
            for path in self.directory.glob(f"*{SEGMENT_SUFFIX}")
            if path.name.removesuffix(SEGMENT_SUFFIX).isdigit()
        }
        ack = _read_ack(self.directory / ACK_FILE)
        # Never append to a segment of an earlier process: its last line may be torn.
        self._tail = max([*self._sizes, ack[0]]) + 1
        self._fd = self._create_segment(self._tail)
        self._sizes[self._tail] = 0
        self._written = 0  # bytes written by this process, over all its segments
        self._synced = 0  # of which this many are known durable
        self._tail_start = 0  # the value of _written when the tail segment was begun
        self._head = self._normal(ack)
        self._delete_before(self._head[0])

    # -- the producer side ---------------------------------------------------------------------
    def append(self, lines: Sequence[bytes]) -> None:
        """Append ``lines`` and return once they are durable. Callers that arrive during
        another's fsync share the next one (group commit)."""
        data = b"".join(lines)
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            try:
                _write_all(self._fd, data)
            except OSError:
                # Take back a partial write (a full disk), so that the next line does not
                # begin inside it and make both unreadable.
                os.ftruncate(self._fd, self._written - self._tail_start)
                raise
            self._written += len(data)
            target = self._written
        with self._sync_lock:
            if self._synced >= target:
                return
            with self._lock:
                fd, upto, tail = self._fd, self._written, self._tail
                tail_bytes = upto - self._tail_start
            _datasync(fd)
            with self._lock:
                self._synced = upto
                self._sizes[tail] = tail_bytes
                if tail_bytes >= SEGMENT_BYTES:
                    self._roll()

    def _create_segment(self, number: int) -> int:
        fd = os.open(self.directory / _segment_name(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_directory(self.directory)
        return fd

    def _roll(self) -> None:
        # Called with both locks held: every byte written so far is in the old segment.
        _datasync(self._fd)
        self._synced = self._written
        self._sizes[self._tail] = self._written - self._tail_start
        old = self._fd
        self._tail += 1
        self._fd = self._create_segment(self._tail)
        self._sizes[self._tail] = 0
        self._tail_start = self._written
        os.close(old)

    # -- the sender side (one thread) ----------------------------------------------------------
    def peek(self, limit: int, max_bytes: int) -> list[Entry]:
        """The oldest unresolved events, at most ``limit`` and about ``max_bytes``; only
        durable bytes are read, so nothing is sent that a crash could still take back."""
        with self._lock:
            head_segment, head_offset = self._head
            segments = [(n, size) for n, size in sorted(self._sizes.items()) if n >= head_segment]
        entries: list[Entry] = []
        budget = max_bytes
        for number, size in segments:
            offset = head_offset if number == head_segment else 0
            if offset >= size:
                continue
            with open(self.directory / _segment_name(number), "rb") as segment:
                segment.seek(offset)
                while offset < size and len(entries) < limit:
                    line = segment.readline(size - offset)
                    if not line or (entries and len(line) > budget):
                        return entries
                    offset += len(line)
                    budget -= len(line)
                    entries.append(Entry(line, (number, offset), _readable(line)))
            if len(entries) >= limit:
                break
        return entries

    def commit(self, end: Position) -> None:
        """Everything before ``end`` is resolved: write that durably, then free the segments
        wholly behind it. A crash between the two only leaves files that the next start
        deletes."""
        with self._commit_lock:
            with self._lock:
                if self._closed:
                    return
                head = self._normal(end)
                if head <= self._head:
                    return
            ack = self.directory / ACK_FILE
            staged = ack.with_suffix(".tmp")
            staged.write_text(f"{head[0]} {head[1]}\n", "ascii")
            with open(staged, "rb") as file:
                os.fsync(file.fileno())
            os.replace(staged, ack)
            _fsync_directory(self.directory)
            with self._lock:
                self._head = head
            self._delete_before(head[0])

    def _normal(self, position: Position) -> Position:
        """The same point in the queue, moved past segments it has reached the end of (the
        end of segment n is the start of the next)."""
        segment, offset = position
        while segment != self._tail and offset >= self._sizes.get(segment, 0):
            segment, offset = min(n for n in self._sizes if n > segment), 0
        return (segment, offset)

    def _delete_before(self, segment: int) -> None:
        with self._lock:
            finished = [n for n in self._sizes if n < segment]
            for number in finished:
                del self._sizes[number]
        for number in finished:
            (self.directory / _segment_name(number)).unlink(missing_ok=True)

    def end(self) -> Position:
        with self._lock:
            return (self._tail, self._sizes[self._tail])

    def done(self) -> Position:
        with self._lock:
            return self._head

    def set_aside(self, lines: Sequence[bytes]) -> None:
        """Append to the dead letter, durably, before the events leave the queue."""
        path = self.directory / DEAD_LETTER_FILE
        with open(path, "ab") as dead_letter:
            dead_letter.write(b"".join(lines))
            dead_letter.flush()
            os.fsync(dead_letter.fileno())

    def close(self) -> None:
        with self._commit_lock, self._sync_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            _datasync(self._fd)
            os.close(self._fd)
            self._lock_file.close()  # releases the flock
