"""How values are held: text columns that keep U+0000, and the words of free-text search
as the stored ``tsvector`` and the query's ``tsquery`` both see them."""

from __future__ import annotations

import re
import struct
import unicodedata
from collections.abc import Sequence

# PostgreSQL text cannot hold U+0000, yet a producer's strings are stored exactly as sent
# (CONTRACT section 2). Searchable text columns therefore escape it: U+0001 becomes
# U+0001 U+0002 and U+0000 becomes U+0001 U+0001. The codes are prefix-free and keep the
# order of the characters they stand for, so byte order, equality and prefix ranges hold
# on the escaped text exactly as on the original.
_ESCAPED = re.compile("[\x00\x01]")
_ESCAPE = {"\x00": "\x01\x01", "\x01": "\x01\x02"}
_UNESCAPED = re.compile("\x01[\x01\x02]")
_UNESCAPE = {"\x01\x01": "\x00", "\x01\x02": "\x01"}


def column_text(value: str) -> str:
    """A string as a text column holds it (see above)."""
    if "\x00" in value or "\x01" in value:
        return _ESCAPED.sub(lambda m: _ESCAPE[m.group()], value)
    return value


def text_from_column(value: str) -> str:
    if "\x01" in value:
        return _UNESCAPED.sub(lambda m: _UNESCAPE[m.group()], value)
    return value


# Free text is matched word by word, the way SQLite's FTS5 ``unicode61 remove_diacritics 2``
# tokenizer does: words are runs of letters and digits, lowercased, without diacritics. The
# words are made here, for both the stored ``tsvector`` and the query, so the two agree by
# construction and PostgreSQL's own parser (which keeps e-mail addresses and host names
# whole) never sees user text.
_WORD = re.compile(r"[^\W_]+")
# tsvector and tsquery refuse a lexeme of 2048 bytes or more (a word of 512 characters may
# be that long in UTF-8), a position past 16383, and more than 256 positions of one lexeme.
_MAX_LEXEME_BYTES = 2047
_MAX_POSITION = 16383
_MAX_POSITIONS = 256
_SHORT_WORD = _MAX_LEXEME_BYTES // 4


def words(text: str) -> list[str]:
    """The words free-text search sees in ``text``."""
    text = text.lower()
    if not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _WORD.findall(text)


def _fits(word: str) -> bool:
    return len(word) <= _SHORT_WORD or len(word.encode()) <= _MAX_LEXEME_BYTES


# ASCII text, the usual case, is split into words by bytes.translate and bytes.split, both
# C loops: letters lowered, digits kept, every other byte a space. Under Unicode rules the
# same words as _WORD finds (its letters and digits in ASCII are these).
_ASCII_WORDS = bytes(
    c | 0x20 if 0x41 <= c <= 0x5A else c if 0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A else 0x20
    for c in range(256)
)
# A word's entry when it occurs once, by position: its NUL, a count of 1, the position.
_ONCE = tuple(b"\0\0\1" + position.to_bytes(2, "big") for position in range(1, _MAX_POSITION + 1))


def _lexemes(text: str) -> list[bytes]:
    """words(text), UTF-8 encoded."""
    if text.isascii():
        return text.encode().translate(_ASCII_WORDS).split()
    return [word.encode() for word in words(text)]


def tsvector_binary(text: str) -> bytes | None:
    """A record's search text as a ``tsvector`` in PostgreSQL's binary form (what COPY
    BINARY takes; quicker for the server to read than the text form): the count of
    lexemes, then each lexeme, NUL-terminated, with its count of positions and the
    positions, ascending, as 16-bit integers. Positions let a phrase match only its words
    in order. None when there are no words.

    The writer makes one per record it appends, so the common shapes are taken apart by C
    loops (map, join) rather than a Python statement per word."""
    found = _lexemes(text)
    count = len(found)
    if not count:
        return None
    if count <= _MAX_POSITION and len(set(found)) == count and max(map(len, found)) <= _MAX_LEXEME_BYTES:
        return struct.pack("!i", count) + b"".join(map(bytes.__add__, found, _ONCE))
    positions: dict[bytes, list[int]] = {}
    for position, lexeme in enumerate(found, start=1):
        at = positions.get(lexeme)
        if at is None:
            positions[lexeme] = [min(position, _MAX_POSITION)]
        # Positions stop at 16383 and each must be larger than the one before.
        elif len(at) < _MAX_POSITIONS and at[-1] < _MAX_POSITION:
            at.append(min(position, _MAX_POSITION))
    entries = [
        lexeme + (_ONCE[at[0] - 1] if len(at) == 1 else b"\0" + struct.pack(f"!H{len(at)}H", len(at), *at))
        for lexeme, at in positions.items()
        if len(lexeme) <= _MAX_LEXEME_BYTES
    ]
    return struct.pack("!i", len(entries)) + b"".join(entries) if entries else None


def tsquery_text(terms: Sequence[str]) -> str | None:
    """The ``tsquery`` literal that holds when every term matches as a phrase; None (which
    matches nothing, as an empty FTS5 phrase does) when a term has no word to match."""
    phrases: list[str] = []
    for term in terms:
        found = words(term)
        if not found or not all(_fits(w) for w in found):
            return None
        phrases.append("(" + " <-> ".join(f"'{w}'" for w in found) + ")")
    return " & ".join(phrases) if phrases else None
