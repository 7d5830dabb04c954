"""Who is signed in: the sign-in form, signing out, and the viewer of each request.

A request's viewer is the key its session names, looked up again every time: a key that was
revoked, or lost its read scope, or belongs to another tenant than the session says, is no
one, and the next page goes back to the sign-in form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from trailkeeper.auditlog import AuditLog
from trailkeeper.errors import TrailkeeperError
from trailkeeper.reads import reader_address
from trailkeeper.store.base import ApiKey
from trailkeeper.web.render import Templates, security_headers
from trailkeeper.web.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    SIGN_IN_COOKIE,
    SIGN_IN_SECONDS,
    Session,
    SessionSigner,
    clear_cookie,
    csrf_matches,
    same_origin,
    set_cookie,
)

READ_SCOPES: Final = frozenset({"events:read", "admin"})
# A key is far shorter; a longer one is refused before it costs a lookup.
_MAX_SECRET: Final = 512
# Sign-in notices by name: the page never echoes text from its URL.
NOTICES: Final = {
    "signed-out": "You are signed out.",
    "ended": "Your session ended: its key was revoked or can no longer read events. Sign in again.",
}
_EXPIRED = "The sign-in form expired. Please try again."
_UNKNOWN = "That key is unknown or has been revoked."
_CANNOT_READ = "That key cannot read events: it needs the events:read or admin scope."


@dataclass(frozen=True)
class Viewer:
    """The signed-in key, and where its request came from (for the record of its reads)."""

    session: Session
    key: ApiKey
    ip: str | None
    user_agent: str | None

    @property
    def tenant(self) -> str:
        return self.key.tenant


def can_read(key: ApiKey) -> bool:
    return bool(READ_SCOPES & set(key.scopes))


class SignIn:
    """The sign-in and sign-out routes, and the viewer of every other one."""

    def __init__(self, audit_log: AuditLog, signer: SessionSigner, templates: Templates) -> None:
        self.log = audit_log
        self.signer = signer
        self.templates = templates

    def viewer(self, request: Request) -> Viewer | None:
        """The signed-in viewer, with the key looked up now: a revoked key is no one."""
        session = self.signer.open_session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        try:
            key = self.log.key(session.key_id)
        except TrailkeeperError:
            return None
        if key is None or key.revoked_at is not None or key.tenant != session.tenant or not can_read(key):
            return None
        return Viewer(session, key, *reader_address(request))

    def redirect(self, request: Request) -> Response:
        """To the sign-in form, coming back here after; an ended session's cookie is dropped."""
        had_session = SESSION_COOKIE in request.cookies
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        params = {"next": target} if target != "/" else {}
        if had_session:
            params["notice"] = "ended"
        response = see_other(f"/login?{urlencode(params)}" if params else "/login")
        if had_session:
            clear_cookie(response, request, SESSION_COOKIE)
        return response

    def page(self, request: Request) -> Response:
        if self.viewer(request) is not None:
            return see_other(safe_next(request.query_params.get("next")))
        notice = NOTICES.get(request.query_params.get("notice", ""))
        return self._form(request, request.query_params.get("next"), notice=notice)

    def _form(
        self,
        request: Request,
        next_path: str | None,
        *,
        error: str | None = None,
        notice: str | None = None,
        status: int = 200,
    ) -> Response:
        token, cookie = self.signer.new_sign_in()
        context = {
            "viewer": None,
            "section": "",
            "token": token,
            "next": safe_next(next_path),
            "error": error,
            "notice": notice,
        }
        response = self.templates.response("login.html", context, status=status)
        set_cookie(response, request, SIGN_IN_COOKIE, cookie, SIGN_IN_SECONDS)
        return response

    async def sign_in(self, request: Request) -> Response:
        form = await request.form()
        secret, token, next_field = form.get("api_key"), form.get(CSRF_FIELD), form.get("next")
        next_path = next_field if isinstance(next_field, str) else None
        cookie = request.cookies.get(SIGN_IN_COOKIE)
        if not (
            same_origin(request) and isinstance(token, str) and self.signer.sign_in_matches(cookie, token)
        ):
            return self._form(request, next_path, error=_EXPIRED, status=403)
        secret = secret.strip() if isinstance(secret, str) else ""
        key = None
        if 0 < len(secret) <= _MAX_SECRET:
            key = await run_in_threadpool(self.log.authenticate, secret)
        if key is None:
            return self._form(request, next_path, error=_UNKNOWN, status=401)
        if not can_read(key):
            return self._form(request, next_path, error=_CANNOT_READ, status=403)
        _, session_cookie = self.signer.new_session(key.id, key.tenant)
        response = see_other(safe_next(next_path))
        set_cookie(response, request, SESSION_COOKIE, session_cookie, SESSION_SECONDS)
        clear_cookie(response, request, SIGN_IN_COOKIE)
        return response

    async def sign_out(self, request: Request) -> Response:
        form = await request.form()
        token = form.get(CSRF_FIELD)
        session = self.signer.open_session(request.cookies.get(SESSION_COOKIE))
        if session is not None and not (
            same_origin(request) and isinstance(token, str) and csrf_matches(session, token)
        ):
            # Signing someone out from another site is a nuisance worth refusing too.
            context = {
                "viewer": None,
                "section": "",
                "title": "Refused",
                "message": "This form is out of date.",
            }
            return self.templates.response("error.html", context, status=403)
        response = see_other("/login?notice=signed-out")
        clear_cookie(response, request, SESSION_COOKIE)
        return response


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site, never another site."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(char) < 0x20 or char == "\\" for char in value):
        return "/"
    return value


def see_other(location: str) -> Response:
    response = RedirectResponse(location, status_code=303)
    response.headers.update(security_headers())
    return response
