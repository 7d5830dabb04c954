"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) for leaf bytes.

msgspec's encoder, with sorted keys, already produces the JCS form for the values audit
records hold: no whitespace, strings escaped exactly as ECMAScript's ``JSON.stringify``
does (RFC 8785 section 3.2.2.2) and integers printed alike. It departs from JCS in two places
only, and both send us to the reference implementation, the ``rfc8785`` package:

* key order: JCS sorts by UTF-16 code units (section 3.2.3), msgspec by code points. The two
  agree unless a key holds a character at or above U+E000;
* numbers that are not integers: JCS prints them as ECMAScript does (section 3.2.2.3).

Integers outside the I-JSON range (RFC 7493 section 2.2) cannot be canonicalized at all;
validation refuses them before they get here. The property tests hold this module
byte-identical to ``rfc8785``.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import rfc8785

_encode = msgspec.json.Encoder(order="sorted").encode

# UTF-8 lead bytes of the code points at or above U+E000, where the two key orders can part.
_ORDER_SENSITIVE = re.compile(rb"[\xee-\xf4]")

MAX_SAFE_INTEGER = 2**53 - 1


def has_float(value: Any) -> bool:
    """Whether a JSON value holds a non-integer number anywhere."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return False


def _has_sensitive_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            max(key, default="") >= "\ue000" or _has_sensitive_key(item) for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_has_sensitive_key(item) for item in value)
    return False


def canonical_json(value: Any, *, floats: bool | None = None) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value.

    ``floats`` may say whether the value holds non-integer numbers, when the caller already
    knows, to spare a walk over it. Raises ``UnicodeEncodeError`` on a lone surrogate.
    """
    if floats is None:
        floats = has_float(value)
    if not floats:
        encoded = _encode(value)
        # Pure ASCII, the usual case, is checked in C at memory speed; only other bytes need
        # the search for lead bytes of U+E000 and above.
        if encoded.isascii() or _ORDER_SENSITIVE.search(encoded) is None or not _has_sensitive_key(value):
            return encoded
    return rfc8785.dumps(value)
