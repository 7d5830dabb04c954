"""Escaping of field values for the line-oriented export formats.

Strings are stored exactly as sent, control characters included (CONTRACT section 2). An
export must neither let one break its line nor pass a terminal escape sequence through, so
every format escapes them. Each format adds the escapes of its own syntax on top of
:func:`escape_text`.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

# Unicode's control characters (Cc: C0, DEL and C1, which holds NEL), plus the line and
# paragraph separators: everything str.splitlines() or a terminal would act on.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# JSON escapes C0 itself (RFC 8259 section 7) but lets the rest through.
_JSON_UNESCAPED_CONTROL: Final = re.compile("[\x7f-\x9f\u2028\u2029]")
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_encode: Final = msgspec.json.Encoder().encode
_encode_sorted: Final = msgspec.json.Encoder(order="sorted").encode


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_text(text: str) -> str:
    """``text`` on one line, with control characters as backslash escapes (``\\n``,
    ``\\x1b``, ``\\u2028``) and a backslash doubled, so that the escaping can be undone.

    These are the escapes of Python's ``unicode_escape`` codec, and ``\\n`` and ``\\r`` are
    also those of CEF.
    """
    return _CONTROL.sub(_escape_control, text.replace("\\", "\\\\"))


def json_text(value: Any) -> str:
    """Compact JSON on one line, keys in their given order; non-ASCII text stays readable,
    control characters of every kind are ``\\uXXXX`` escapes (valid JSON: they only occur
    inside strings)."""
    return _escape_json_controls(_encode(value))


def sorted_json(value: Any) -> msgspec.Raw:
    """A JSON value with the keys of its objects sorted at every depth, encoded, to embed in
    :func:`json_text`: a stable form of ``metadata``, whatever order the store kept."""
    return msgspec.Raw(_encode_sorted(value))


def _escape_json_controls(encoded: bytes) -> str:
    return _JSON_UNESCAPED_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded.decode())
