"""The queues events wait in: in order, durable on disk, resolved by position."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trailkeeper.client import spool as spool_module
from trailkeeper.client.errors import ClientClosed, QueueFull, SpoolLocked
from trailkeeper.client.spool import DEAD_LETTER_FILE, SEGMENT_SUFFIX, DiskSpool, MemoryQueue
from trailkeeper.client.transport import encode_event


def lines(count: int, start: int = 0) -> list[bytes]:
    return [encode_event({"id": f"e{n}", "n": n})[1] for n in range(start, start + count)]


def ids(entries: list[spool_module.Entry]) -> list[str]:
    return [json.loads(entry.line)["id"] for entry in entries]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


OpenSpool = Callable[[Path], DiskSpool]


@pytest.fixture
def open_spool() -> Iterator[OpenSpool]:
    """Open spools, each closed after the test (closing twice is harmless)."""
    opened: list[DiskSpool] = []

    def open_one(directory: Path) -> DiskSpool:
        opened.append(DiskSpool(directory))
        return opened[-1]

    yield open_one
    for spool in opened:
        spool.close()


@pytest.fixture
def disk(open_spool: OpenSpool, tmp_path: Path) -> DiskSpool:
    return open_spool(tmp_path / "spool")


def test_events_come_out_in_the_order_they_went_in(disk: DiskSpool) -> None:
    disk.append(lines(3))
    disk.append(lines(2, start=3))

    assert ids(disk.peek(100, 1 << 20)) == ["e0", "e1", "e2", "e3", "e4"]


def test_peek_takes_at_most_limit_events_and_about_max_bytes(disk: DiskSpool) -> None:
    disk.append(lines(10))
    one = len(lines(1)[0])

    assert len(disk.peek(4, 1 << 20)) == 4
    assert len(disk.peek(100, 3 * one)) == 3


def test_an_event_over_max_bytes_still_goes_alone(disk: DiskSpool) -> None:
    disk.append(lines(2))

    assert ids(disk.peek(100, 1)) == ["e0"]


def test_committed_events_are_not_peeked_again(disk: DiskSpool) -> None:
    disk.append(lines(5))

    disk.commit(disk.peek(2, 1 << 20)[-1].end)

    assert ids(disk.peek(100, 1 << 20)) == ["e2", "e3", "e4"]


def test_flush_target_is_reached_once_everything_appended_is_committed(disk: DiskSpool) -> None:
    disk.append(lines(3))
    target = disk.end()
    entries = disk.peek(100, 1 << 20)

    assert disk.done() < target
    disk.commit(entries[-1].end)
    assert disk.done() >= target


def test_a_reopened_spool_holds_exactly_what_was_not_committed(open_spool: OpenSpool, tmp_path: Path) -> None:
    first = open_spool(tmp_path)
    first.append(lines(6))
    first.commit(first.peek(4, 1 << 20)[-1].end)
    first.close()

    again = open_spool(tmp_path)

    assert ids(again.peek(100, 1 << 20)) == ["e4", "e5"]


def test_a_line_cut_short_by_a_crash_is_read_as_unreadable(open_spool: OpenSpool, tmp_path: Path) -> None:
    whole = lines(2)
    (tmp_path / f"{1:016d}{SEGMENT_SUFFIX}").write_bytes(b"".join(whole) + whole[0][:9])

    entries = open_spool(tmp_path).peek(100, 1 << 20)

    assert [entry.readable for entry in entries] == [True, True, False]


def test_the_spool_rolls_into_new_segments_and_deletes_those_wholly_committed(
    open_spool: OpenSpool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 100)
    disk = open_spool(tmp_path)
    for n in range(30):
        disk.append(lines(1, start=n))
    assert len(segments(tmp_path)) > 3

    entries = disk.peek(100, 1 << 20)
    assert ids(entries) == [f"e{n}" for n in range(30)]
    disk.commit(entries[-1].end)

    assert disk.done() >= disk.end()
    assert len(segments(tmp_path)) == 1


def test_a_second_spool_over_the_same_directory_is_refused(disk: DiskSpool) -> None:
    with pytest.raises(SpoolLocked):
        DiskSpool(disk.directory)


def test_the_directory_is_free_again_once_the_spool_is_closed(disk: DiskSpool, open_spool: OpenSpool) -> None:
    disk.close()

    open_spool(disk.directory)


def test_append_after_close_is_refused(disk: DiskSpool) -> None:
    disk.close()

    with pytest.raises(ClientClosed):
        disk.append(lines(1))


def test_set_aside_lines_are_kept_in_the_dead_letter(disk: DiskSpool) -> None:
    disk.set_aside([b'{"a":1}\n'])
    disk.set_aside([b'{"a":2}\n'])

    assert (disk.directory / DEAD_LETTER_FILE).read_bytes() == b'{"a":1}\n{"a":2}\n'


def test_memory_queue_refuses_events_past_its_bound_and_keeps_what_it_has() -> None:
    queue = MemoryQueue(max_events=3)
    queue.append(lines(2))

    with pytest.raises(QueueFull):
        queue.append(lines(2, start=2))
    assert ids(queue.peek(100, 1 << 20)) == ["e0", "e1"]


def test_memory_queue_commits_by_position() -> None:
    queue = MemoryQueue(max_events=10)
    queue.append(lines(4))
    target = queue.end()

    queue.commit(queue.peek(3, 1 << 20)[-1].end)

    assert ids(queue.peek(100, 1 << 20)) == ["e3"]
    assert queue.done() < target


def test_a_partial_write_on_a_full_disk_is_taken_back_and_later_lines_stay_whole(
    disk: DiskSpool, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk.append(lines(1))
    write_all = spool_module._write_all

    def disk_full_halfway(fd: int, data: bytes) -> None:
        write_all(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module, "_write_all", disk_full_halfway)
    with pytest.raises(OSError, match="No space"):
        disk.append(lines(1, start=1))
    monkeypatch.setattr(spool_module, "_write_all", write_all)
    disk.append(lines(1, start=2))

    entries = disk.peek(100, 1 << 20)
    assert ids(entries) == ["e0", "e2"]
    assert all(entry.readable for entry in entries)
