"""How values are held: text columns that keep U+0000, and the words of free-text search
as the stored ``tsvector`` and the query's ``tsquery`` both see them."""

from __future__ import annotations

import re
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
# be that long in UTF-8); a tsvector keeps no position past 16383 and at most 256 positions
# of one lexeme.
_MAX_LEXEME_BYTES = 2047
_MAX_POSITION = 16383
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
# A word's place, as the text form of a tsvector writes it after the word, by position.
_PLACE = tuple(b":%d" % position for position in range(1, _MAX_POSITION + 1))


def _lexemes(text: str) -> list[bytes]:
    """words(text), UTF-8 encoded."""
    if text.isascii():
        return text.encode().translate(_ASCII_WORDS).split()
    return [word.encode() for word in words(text)]


def tsvector_text(text: str) -> bytes | None:
    """A record's search text as the text form of a ``tsvector``: each word with its place
    (``deal:1 renewal:2 deal:3``), which PostgreSQL reads into one entry per word with its
    places in order, keeping at most 256 places of a word and none past 16383, as a tsvector
    does. Places let a phrase match only its words in order. None when there are no words.

    The writer makes one per record it appends and the server reads it when it copies the
    record's search row, so the common shape is made by C loops (map, join); the words are
    letters and digits, which that form takes as they are."""
    found = _lexemes(text)
    count = len(found)
    if not count:
        return None
    # A text of at most _SHORT_WORD characters has neither a word too long nor too many.
    if len(text) <= _SHORT_WORD or (count <= _MAX_POSITION and max(map(len, found)) <= _MAX_LEXEME_BYTES):
        return b" ".join(map(bytes.__add__, found, _PLACE))
    # A word too long for a tsvector is left out; the places of the others stay.
    kept = [
        b"%s:%d" % (lexeme, min(position, _MAX_POSITION))
        for position, lexeme in enumerate(found, start=1)
        if len(lexeme) <= _MAX_LEXEME_BYTES
    ]
    return b" ".join(kept) if kept else None


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
