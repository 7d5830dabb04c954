"""The console's sign-in: a signed session cookie, and the defences of its forms.

A session is a key id, its tenant and a CSRF token, signed with the console's secret (HMAC
through ``itsdangerous``) and kept in an HttpOnly, SameSite=Strict cookie, Secure when the
request came over HTTPS. Nothing secret is in it: the API key itself never leaves the sign-in
form. The key is looked up again on every request, so that revoking it ends the session at
once.

Forms that change something are POSTs carrying the session's CSRF token (the synchroniser
token of OWASP's CSRF Prevention Cheat Sheet); SameSite=Strict and a same-origin check of the
``Origin`` and ``Sec-Fetch-Site`` headers come on top. The sign-in form, which has no session
yet, carries a token that must match a short-lived cookie of its own (a signed double-submit
cookie), so that another site cannot sign a browser in under a key of its choosing.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE: Final = "tk_session"
SIGN_IN_COOKIE: Final = "tk_sign_in"
SESSION_SECONDS: Final = 12 * 3600
SIGN_IN_SECONDS: Final = 3600
CSRF_FIELD: Final = "csrf"


@dataclass(frozen=True)
class Session:
    """Who is signed in: the key (by id), its tenant, and the token its forms carry."""

    key_id: str
    tenant: str
    csrf: str


class SessionSigner:
    """Signs and opens the console's cookies. One secret; a salt per kind of cookie, so that
    a value signed for one purpose is never accepted for another."""

    def __init__(self, secret_key: bytes) -> None:
        if len(secret_key) < 16:
            raise ValueError("the console's secret key must be at least 16 bytes")
        self._sessions = URLSafeTimedSerializer(secret_key, salt="trailkeeper.console.session")
        self._sign_ins = URLSafeTimedSerializer(secret_key, salt="trailkeeper.console.sign-in")

    def new_session(self, key_id: str, tenant: str) -> tuple[Session, str]:
        """A fresh session (with a fresh CSRF token) and its cookie value."""
        session = Session(key_id, tenant, secrets.token_urlsafe(32))
        value = self._sessions.dumps({"k": key_id, "t": tenant, "c": session.csrf})
        return session, value

    def open_session(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when it is absent, forged, altered or expired."""
        if not cookie:
            return None
        try:
            payload = self._sessions.loads(cookie, max_age=SESSION_SECONDS)
        except BadData:
            return None
        if not isinstance(payload, dict):
            return None
        key_id, tenant, csrf = payload.get("k"), payload.get("t"), payload.get("c")
        if not (isinstance(key_id, str) and isinstance(tenant, str) and isinstance(csrf, str)):
            return None
        if not (key_id and tenant and csrf):
            return None
        return Session(key_id, tenant, csrf)

    def new_sign_in(self) -> tuple[str, str]:
        """A sign-in form's token and the cookie value that must come back with it."""
        token = secrets.token_urlsafe(32)
        return token, self._sign_ins.dumps(token)

    def sign_in_matches(self, cookie: str | None, token: str) -> bool:
        if not cookie or not token:
            return False
        try:
            expected = self._sign_ins.loads(cookie, max_age=SIGN_IN_SECONDS)
        except BadData:
            return False
        return isinstance(expected, str) and hmac.compare_digest(expected, token)


def csrf_matches(session: Session, token: str) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, token)


def same_origin(request: Request) -> bool:
    """Whether a state-changing request came from the console's own pages.

    Browsers send ``Sec-Fetch-Site`` (Fetch Metadata) and ``Origin`` with a POST; when they
    are there they must say the request is same-origin. Their absence proves nothing either
    way, so the CSRF token stays the defence that always holds.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """A cookie that scripts cannot read and other sites cannot make the browser send."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=is_https(request))
