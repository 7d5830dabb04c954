"""JSON in and out of the HTTP API, with msgspec: ingest and search move many records, and
the standard library's encoder is several times slower on them."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode(data: bytes) -> Any:
    """One JSON text (RFC 8259) to Python values; ValueError with the reason when it is not.

    Non-finite numbers are not JSON and are refused; so are unpaired surrogates, which no
    event may hold (CONTRACT section 2 stores strings exactly, and they cannot be stored).
    """
    try:
        return _decoder.decode(data)
    except (msgspec.MsgspecError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(reason) from None
