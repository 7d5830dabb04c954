"""Bearer keys (RFC 6750): who is calling, for which tenant, with which scopes.

The tenant of every request is the key's own; no parameter can name another, so another
tenant's data is out of reach by construction, and the routes answer 404 for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from trailkeeper.api.errors import Forbidden, Unauthorized
from trailkeeper.api.ratelimit import RateLimiter
from trailkeeper.auditlog import AuditLog
from trailkeeper.events import now_text
from trailkeeper.reads import reader_address
from trailkeeper.store.base import ApiKey

WRITE = "events:write"
READ = "events:read"
ADMIN = "admin"

# A key is far shorter; a longer header is refused before it costs a lookup.
_MAX_SECRET = 512
TOUCH_INTERVAL = 60.0

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key of one tenant: `Authorization: Bearer <key>`.",
)


@dataclass(frozen=True)
class Caller:
    """The key a request came with, and where it came from (for the log of reads)."""

    key: ApiKey
    ip: str | None
    user_agent: str | None

    @property
    def tenant(self) -> str:
        return self.key.tenant


def has_scope(key: ApiKey, scope: str) -> bool:
    return scope in key.scopes or ADMIN in key.scopes


class Authenticator:
    def __init__(
        self,
        log: AuditLog,
        limiter: RateLimiter | None,
        *,
        touch_interval: float = TOUCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._limiter = limiter
        self._touch_interval = touch_interval
        self._clock = clock
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def key_of(self, secret: str) -> ApiKey:
        """The live key of a secret (blocking: it reads the store), or :class:`Unauthorized`.

        Looked up on every request, never cached, so that a revocation holds at once.
        """
        key = self._log.authenticate(secret) if len(secret) <= _MAX_SECRET else None
        if key is None:
            raise Unauthorized("the API key is unknown or revoked", token_given=True)
        if self._touch_due(key.id):
            self._log.store.touch_key(key.id, now_text())
        return key

    def _touch_due(self, key_id: str) -> bool:
        # Last use is shown to a minute: writing it on every request would put a write
        # transaction in front of every read.
        now = self._clock()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < self._touch_interval:
                return False
            self._touched[key_id] = now
            return True

    def requiring(self, scope: str) -> Callable[..., Awaitable[Caller]]:
        """A FastAPI dependency: the caller, once its key, its rate and ``scope`` check out."""

        async def caller(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        ) -> Caller:
            if credentials is None or not credentials.credentials:
                raise Unauthorized("an API key is required: Authorization: Bearer <key>", token_given=False)
            key = await run_in_threadpool(self.key_of, credentials.credentials)
            if self._limiter is not None:
                self._limiter.check(key.id)
            if not has_scope(key, scope):
                raise Forbidden(scope)
            return Caller(key, *reader_address(request))

        return caller
