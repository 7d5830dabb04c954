"""ASGI middleware: stamp each request's identity on every event recorded while it is served.

    app = FastAPI()
    app.add_middleware(AuditContextMiddleware)            # or AuditContextMiddleware(app)

For the time an HTTP request (or a WebSocket) is handled, including a streamed body and the
background tasks that run after it, events get in ``context``:

- ``request_id``: the request's ``X-Request-ID`` when it is a sensible token, else a new one;
  it is sent back in the response's ``X-Request-ID`` so that the caller can quote it;
- ``ip``: the peer's address, or with ``trust_forwarded=N`` the one that the N proxies of your
  own in front of the app appended to ``X-Forwarded-For`` (a server that already rewrites
  the peer from that header, as uvicorn does for proxies it trusts, needs no more: leave 0);
- ``user_agent``;
- ``trace_id``: the trace id of a valid W3C ``traceparent`` header.

Pure ASGI (no ``BaseHTTPMiddleware``): one context variable set around the call, nothing
buffered, so it costs next to nothing and leaves streaming alone. It imports no framework.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from trailkeeper.instrument.context import reset_stamps, set_stamps

__all__ = ["AuditContextMiddleware", "client_ip", "parse_traceparent", "request_context"]

# The ASGI interface (asgiref's specification), spelled out so that no framework is needed.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
# A caller's request id is kept when it is a short token of visible ASCII: it ends up in
# logs and terminals, where anything else could forge lines.
_ACCEPTED_REQUEST_ID = re.compile(r"[!-~]{1,128}")
MAX_USER_AGENT = 2048  # the event schema's bound for context.user_agent

# W3C Trace Context (Level 1), section 3.2, the traceparent header: version "-" trace-id "-"
# parent-id "-" trace-flags, in lowercase hex; a later version may append "-" and more fields,
# which a parser of version 00 skips ("Versioning of traceparent").
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE_ID = "0" * 32
_ZERO_PARENT_ID = "0" * 16


def parse_traceparent(value: str) -> str | None:
    """The trace id of a ``traceparent`` header value, or None when it is not valid."""
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff":  # the version field: ff is forbidden
        return None
    if version == "00" and rest is not None:  # version 00 has exactly four fields
        return None
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_PARENT_ID:  # all zeros: invalid ids
        return None
    return trace_id


def _header_values(scope: Scope, name: bytes) -> list[str]:
    # ASGI header names are lowercase bytes; values are bytes, decoded as latin-1 per
    # RFC 9110 section 5.5 (field values are octets; anything non-ASCII is opaque).
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers") or ()
    return [value.decode("latin-1") for key, value in headers if key == name]


def _address(text: str) -> str | None:
    """An IP address from a peer or an X-Forwarded-For entry (port and brackets dropped)."""
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "192.0.2.1:8080"
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_ip(scope: Scope, trust_forwarded: int = 0) -> str | None:
    """The client's address. The peer's, unless ``trust_forwarded`` proxies of your own are in
    front: then X-Forwarded-For's entry that many places from the right, the one the
    outermost of them appended (entries further left are whatever the client claimed).
    None when there is no IP address to tell (a Unix socket, a test client's made-up host)."""
    if trust_forwarded:
        # Repeated header lines are one comma-separated list (RFC 9110 section 5.3).
        entries = [e for line in _header_values(scope, b"x-forwarded-for") for e in line.split(",")]
        entries = [e.strip() for e in entries if e.strip()]
        if len(entries) >= trust_forwarded:
            forwarded = _address(entries[-trust_forwarded])
            if forwarded is not None:
                return forwarded
        # Fewer entries than proxies: the request did not come through them; use the peer.
    client = scope.get("client")
    return _address(str(client[0])) if client else None


def request_context(scope: Scope, trust_forwarded: int = 0) -> dict[str, str]:
    """The ``context`` fields of one HTTP or WebSocket request."""
    context: dict[str, str] = {}
    given = _header_values(scope, REQUEST_ID_HEADER)
    if len(given) == 1 and _ACCEPTED_REQUEST_ID.fullmatch(given[0].strip()):
        context["request_id"] = given[0].strip()
    else:
        context["request_id"] = f"req_{uuid.uuid4().hex}"
    ip = client_ip(scope, trust_forwarded)
    if ip is not None:
        context["ip"] = ip
    agents = _header_values(scope, b"user-agent")
    if agents and agents[0].strip():
        context["user_agent"] = agents[0].strip()[:MAX_USER_AGENT]
    parents = _header_values(scope, b"traceparent")
    # Several traceparent headers make none of them valid (W3C Trace Context, section 3.2).
    trace_id = parse_traceparent(parents[0]) if len(parents) == 1 else None
    if trace_id is not None:
        context["trace_id"] = trace_id
    return context


class AuditContextMiddleware:
    """Stamps ``request_id``, ``ip``, ``user_agent`` and ``trace_id`` on the events recorded
    while a request is served. ``trust_forwarded``: how many proxies of your own stand in
    front of the app (``True`` is one); 0, the default, ignores X-Forwarded-For, which any
    client can write. ``echo_request_id``: send the request id back in the response."""

    def __init__(self, app: ASGIApp, *, trust_forwarded: int = 0, echo_request_id: bool = True) -> None:
        if trust_forwarded < 0:
            raise ValueError("trust_forwarded is a number of proxies, 0 or more")
        self.app = app
        self.trust_forwarded = int(trust_forwarded)
        self.echo_request_id = echo_request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan: no request to describe
            return
        context = request_context(scope, self.trust_forwarded)
        if self.echo_request_id and scope["type"] == "http":
            send = _echoing(send, context["request_id"].encode("latin-1"))
        token = set_stamps(context=context)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_stamps(token)


def _echoing(send: Send, request_id: bytes) -> Send:
    async def send_with_request_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            if not any(key.lower() == REQUEST_ID_HEADER for key, _ in headers):
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, request_id)]}
        await send(message)

    return send_with_request_id
