"""Pages out: the Jinja2 templates, the filters that show stored values safely, the static
files, and the headers every console response carries.

Stored strings are shown exactly as they were sent (CONTRACT section 2), which makes them
untrusted input to HTML: autoescaping is on for every template, and the ``visible`` filter
also turns control characters and the invisible Unicode formatting characters (bidirectional
overrides, zero-width characters) into visible escapes, so that a value cannot hide part of
itself or reorder what is around it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse, Response

from trailkeeper.web.chart import span_label
from trailkeeper.web.timeline import duration_text

HERE: Final = Path(__file__).parent

# Issue 6: no script or style from anywhere but the console itself, no framing by others,
# forms posting only back to it.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
# The activity chart is a page of its own, framed by the console's pages and by nothing else.
FRAMED_CONTENT_SECURITY_POLICY: Final = CONTENT_SECURITY_POLICY.replace(
    "frame-ancestors 'none'", "frame-ancestors 'self'"
)


def security_headers(*, framed: bool = False) -> dict[str, str]:
    return {
        "Content-Security-Policy": FRAMED_CONTENT_SECURITY_POLICY if framed else CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN" if framed else "DENY",
        "Referrer-Policy": "same-origin",
        # Pages show audit data: never kept by the browser or anything between.
        "Cache-Control": "no-store",
    }


# C0 and C1 controls and DEL; the bidirectional embeddings, overrides and isolates; the
# zero-width and other invisible formatting characters; the byte order mark.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_INVISIBLE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_of(char: str) -> str:
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    return f'<span class="ctl" title="U+{ord(char):04X}">{_escape_of(char)}</span>'


def visible(value: object, lines: bool = False) -> Markup:
    """``value`` as HTML text: escaped, with every invisible character shown as an escape.

    With ``lines``, a newline stays a line break: for text whose lines are its structure (a
    signed note, indented JSON, in which json has already escaped the newlines of values).
    """
    if value is None:
        return Markup("")
    escaped = str(escape(str(value)))
    pattern = _INVISIBLE_BUT_NEWLINE if lines else _INVISIBLE
    return Markup(pattern.sub(_shown, escaped))  # noqa: S704 (escaped just above; the spans are ours)


def visible_width(value: object) -> int:
    """How many characters ``visible`` shows for ``value``: where a caret under it must go."""
    text = "" if value is None else str(value)
    return len(text) + sum(len(_escape_of(m.group())) - 1 for m in _INVISIBLE.finditer(text))


def pretty_json(value: object) -> str:
    """JSON indented for reading; json already writes C0 controls as escapes."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def when(stored: object) -> str:
    """``2026-11-02T14:26:19.248573Z`` as ``2026-11-02 14:26:19.248``: the table's time."""
    text = str(stored or "")
    if len(text) == 27 and text.endswith("Z"):
        return f"{text[:10]} {text[11:23]}"
    return text


def clock(stored: object) -> str:
    text = str(stored or "")
    return text[11:23] if len(text) == 27 else text


def number(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


_CLASS_SAFE = re.compile(r"[^a-z0-9_-]")


def token(value: object) -> str:
    """A value as part of a class name (categories and outcomes, defensively)."""
    return _CLASS_SAFE.sub("-", str(value).lower())[:40]


def entity_url(prefix: str, value: str) -> str:
    """The console's page of one thing. A value of dots only would be read as a relative path
    segment by the browser, so it goes in the query instead."""
    if value.strip(".") == "":
        return f"{prefix}?id={quote(value, safe='')}"
    return f"{prefix}/{quote(value, safe='')}"


def event_url(event_id: str) -> str:
    return entity_url("/events", event_id)


def actor_url(actor_id: str) -> str:
    return entity_url("/actors", actor_id)


def run_url(run_id: str) -> str:
    return entity_url("/runs", run_id)


def integration_url(provider: str) -> str:
    return entity_url("/integrations", provider)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    version: str


_MEDIA_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def load_static() -> dict[str, StaticFile]:
    """Every file of ``static/``, read once: the console serves nothing else from disk."""
    files: dict[str, StaticFile] = {}
    for path in sorted((HERE / "static").iterdir()):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            body = path.read_bytes()
            files[path.name] = StaticFile(body, media_type, hashlib.sha256(body).hexdigest()[:12])
    return files


class Templates:
    """The console's templates, with its filters and link helpers."""

    def __init__(self, static: Mapping[str, StaticFile]) -> None:
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            # Stored events leave optional fields out (CONTRACT section 2): a missing one shows
            # as nothing, never as an error page.
            undefined=jinja2.Undefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters.update(
            visible=visible,
            visible_width=visible_width,
            pretty_json=pretty_json,
            when=when,
            clock=clock,
            number=number,
            token=token,
            duration=duration_text,
        )
        self.environment.globals.update(
            event_url=event_url,
            actor_url=actor_url,
            run_url=run_url,
            integration_url=integration_url,
            span_label=span_label,
            static_url=lambda name: f"/static/{name}?v={static[name].version}",
        )

    def response(
        self, template: str, context: Mapping[str, Any], *, status: int = 200, framed: bool = False
    ) -> Response:
        body = self.environment.get_template(template).render(context)
        return HTMLResponse(body, status_code=status, headers=security_headers(framed=framed))
