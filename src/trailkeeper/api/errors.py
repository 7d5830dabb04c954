"""The one error shape of the HTTP API: ``{"error": {"code", "message", "details"}}``.

Every failure a client can cause leaves through :func:`install_error_handlers` with a status
that says whose fault it is (CONTRACT section 4); nothing a client sends can produce a 500 or
a traceback in the body.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trailkeeper.api.encoding import JsonResponse
from trailkeeper.errors import TrailkeeperError

log = logging.getLogger("trailkeeper.api")

# RFC 6750 section 3: the challenge a bearer-token resource answers 401 and 403 with.
REALM = 'Bearer realm="trailkeeper"'


class HttpError(TrailkeeperError):
    """An error that exists only over HTTP, with the headers its status calls for."""

    def __init__(self, message: str, details: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, details)
        self.headers = dict(headers or {})


class Unauthorized(HttpError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, token_given: bool) -> None:
        # RFC 6750 section 3.1: a request without a token gets a bare challenge; a token that
        # is unknown or revoked gets error="invalid_token".
        challenge = f'{REALM}, error="invalid_token"' if token_given else REALM
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(HttpError):
    status = 403
    code = "forbidden"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"this key lacks the scope {scope!r} (or 'admin')",
            {"required_scope": scope},
            # RFC 6750 section 3.1: insufficient_scope names the scope that would do.
            {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
        )


class PayloadTooLarge(HttpError):
    status = 413
    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is over {limit} bytes", {"limit_bytes": limit})


class InvalidBody(HttpError):
    """The body is not JSON (or a line of NDJSON is not)."""

    status = 400
    code = "invalid_json"


class RateLimited(HttpError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        # RFC 9110 section 10.2.3: Retry-After in whole seconds; rounding up never invites a
        # retry that would be refused again.
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            f"too many requests for this key; retry in {seconds} s",
            {"retry_after": seconds},
            {"Retry-After": str(seconds)},
        )


def error_response(error: TrailkeeperError) -> Response:
    headers = error.headers if isinstance(error, HttpError) else None
    return JsonResponse(error.to_json(), status_code=error.status, headers=headers)


def _body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


async def _on_trailkeeper_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrailkeeperError)
    if exc.status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


def _parameter_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    found = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        where = location[0] if location else "request"
        field = ".".join(location[1:]) or where
        message = str(error.get("msg", "is not valid"))
        if error.get("type") == "extra_forbidden":
            message = "is not a parameter of this endpoint"
        found.append({"field": field, "in": where, "message": message})
    return found


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    # A parameter of the wrong type or out of range is the client's mistake about the
    # request, not about an event: 400, naming each parameter.
    assert isinstance(exc, RequestValidationError)
    problems = _parameter_errors(exc.errors())
    shown = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    details = {"field": problems[0]["field"] if problems else None, "errors": problems}
    return JsonResponse(_body("invalid_argument", shown or "invalid request", details), status_code=400)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    return JsonResponse(_body(code, message), status_code=exc.status_code, headers=exc.headers)


class LastResort:
    """Answers an unexpected exception with a 500 in the one error shape and logs its
    traceback. Starlette's own last handler would re-raise after answering, and uvicorn then
    drops the connection, so that a client's next request on it fails too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # too late for a status: only dropping the connection says it failed
            # The client learns only that the fault is ours; the log has the rest.
            body = _body("internal", "internal error; the server log has the details")
            await JsonResponse(body, status_code=500)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TrailkeeperError, _on_trailkeeper_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_middleware(LastResort)
