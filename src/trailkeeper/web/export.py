"""Exports from the console: the current search as CSV or NDJSON, streamed.

One page of records is held at a time, however many match; the formats are the exporters'
(:mod:`trailkeeper.exporters`), the same bytes as ``GET /v1/export``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final

from trailkeeper.exporters import Counted, encode_chunks, export_lines
from trailkeeper.store.base import Record

FORMATS: Final = ("csv", "ndjson")


def export_body(
    format: str, records: Iterable[Record], finished: Callable[[int, bool], None]
) -> Iterator[bytes]:
    """The bytes of an export, in chunks. ``finished(count, complete)`` is called at the end,
    also when the download is cut short, with how many records went out."""
    counted = Counted(records)
    complete = False
    try:
        yield from encode_chunks(export_lines(format, counted))
        complete = True
    finally:
        finished(counted.count, complete)
