"""The export formats of ``GET /v1/export`` and ``trailkeeper export`` (CONTRACT section 4).

:func:`export_lines` turns stored records into the text of one format, a line at a time, so
that an export of any size streams: it holds one record at a time, never the whole result.
Every line ends with a newline and no field value can add another (control characters are
escaped in every format).

- ``ndjson``: the stored records, as they are;
- ``csv``: a header and fixed columns (RFC 4180), safe to open in a spreadsheet;
- ``ocsf``: NDJSON of OCSF 1.3.0 events;
- ``cef``: ArcSight Common Event Format;
- ``syslog``: RFC 5424 messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from trailkeeper.errors import InvalidArgument
from trailkeeper.exporters import cef, csv, ndjson, ocsf, syslog

FORMATS: Final = ("ndjson", "csv", "ocsf", "cef", "syslog")

MEDIA_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ndjson": "application/x-ndjson",
        "csv": "text/csv; charset=utf-8; header=present",
        "ocsf": "application/x-ndjson",
        "cef": "text/plain; charset=utf-8",
        "syslog": "text/plain; charset=utf-8",
    }
)

FILE_EXTENSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ndjson": ".ndjson",
        "csv": ".csv",
        "ocsf": ".ocsf.ndjson",
        "cef": ".cef",
        "syslog": ".log",
    }
)

_WRITERS: Final[Mapping[str, Callable[[Iterable[Mapping[str, Any]]], Iterator[str]]]] = {
    "ndjson": ndjson.lines,
    "csv": csv.lines,
    "ocsf": ocsf.lines,
    "cef": cef.lines,
    "syslog": syslog.lines,
}


def export_lines(format: str, records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The export of ``records`` in ``format``, one newline-terminated line at a time.

    An unknown format raises :class:`InvalidArgument` here, at the call, before a byte is
    produced, so that the HTTP API can still answer 400 instead of a broken stream.
    """
    writer = _WRITERS.get(format)
    if writer is None:
        raise InvalidArgument("format", f"must be one of {', '.join(FORMATS)}, not {format!r}")
    return writer(records)


def attachment_name(tenant: str, format: str, now: datetime | None = None) -> str:
    """The file name a download of an export is offered under, the same from the API and the
    console: the tenant, the time of the export and the format's extension."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"trailkeeper-{tenant}-{stamp}{FILE_EXTENSIONS[format]}"


class Counted:
    """Records of an export, counted as they pass, so that the record of the export (a read
    of the log, logged) can say how many went out, also when the download was cut short."""

    def __init__(self, records: Iterable[Mapping[str, Any]]) -> None:
        self.records = iter(records)
        self.count = 0

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for record in self.records:
            self.count += 1
            yield record


__all__ = [
    "CHUNK_BYTES",
    "FILE_EXTENSIONS",
    "FORMATS",
    "MEDIA_TYPES",
    "Counted",
    "attachment_name",
    "encode_chunks",
    "export_lines",
]


# A chunk is sent once it holds this much: large enough that the thread hop per chunk costs
# nothing next to the work, small enough that the first bytes leave at once.
CHUNK_BYTES = 64 * 1024


def encode_chunks(lines: Iterable[str], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Exported lines as UTF-8, gathered into chunks of about ``size`` bytes for streaming."""
    buffer: list[bytes] = []
    held = 0
    for line in lines:
        data = line.encode("utf-8")
        buffer.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)
