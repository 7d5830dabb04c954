"""The administrators' web console (issue 6): the routes.

:func:`create_console` returns a router for the HTTP API's app to include. Every page is
rendered on the server from the :class:`~trailkeeper.auditlog.AuditLog` facade and works
without script; each shows one tenant, the signed-in key's, whatever the URL says, and every
read is recorded in that tenant's log as the API records its own (CONTRACT section 4).

Pages: ``/`` (search, with the activity chart framed from ``/chart``), ``/events/{id}``,
``/runs/{run_id}``, ``/actors/{actor_id}``, ``/integrations/{provider}``, ``/integrity``
(and ``POST /integrity/verify``), ``/export``, ``/login``, ``POST /logout``,
``/static/{name}``.

The activity chart is a page of its own (``/chart``), framed by the search, actor and
integration pages: on a large log counting a chart is most of the work, and the first page of
results must not wait for it. Its bars are links with ``target="_top"``, so a click narrows
the search in the whole window, without script.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from trailkeeper.auditlog import AuditLog
from trailkeeper.errors import InvalidArgument, NotFound, TrailkeeperError
from trailkeeper.events import CATEGORIES, OUTCOMES
from trailkeeper.exporters import MEDIA_TYPES, attachment_name
from trailkeeper.notes import VerifierKey, open_checkpoint
from trailkeeper.query import Filter, Term, describe
from trailkeeper.reads import EXPORTED, READ, record_read
from trailkeeper.web import pages
from trailkeeper.web.chart import SERIES, ActivityCache, Bucket, count_activity, draw
from trailkeeper.web.export import FORMATS as EXPORT_FORMATS
from trailkeeper.web.export import export_body
from trailkeeper.web.integrity import Verifications
from trailkeeper.web.proof import check_inclusion
from trailkeeper.web.render import Templates, load_static, security_headers
from trailkeeper.web.search import PRESETS, SearchForm, resolve
from trailkeeper.web.session import (
    CSRF_FIELD,
    SessionSigner,
    csrf_matches,
    same_origin,
)
from trailkeeper.web.signin import SignIn, Viewer, see_other
from trailkeeper.web.timeline import run_duration, timeline

log = logging.getLogger("trailkeeper.web")

PAGE_SIZE: Final = 50
_MAX_PARAM: Final = 512


def create_console(log: AuditLog, *, secret_key: bytes | None = None) -> APIRouter:
    """The console's routes over ``log``, for ``app.include_router``.

    ``secret_key`` signs the session cookies; by default a random one, so that sessions end
    when the process does. Give the same key to every process behind one address.
    """
    return Console(log, secret_key or secrets.token_bytes(32)).router()


class Console:
    """The console's state (signer, templates, chart cache, verification runs) and pages."""

    def __init__(self, audit_log: AuditLog, secret_key: bytes) -> None:
        self.log = audit_log
        self.signer = SessionSigner(secret_key)
        self.static = load_static()
        self.templates = Templates(self.static)
        self.verifications = Verifications(audit_log)
        self.charts = ActivityCache()
        self.sign_in = SignIn(audit_log, self.signer, self.templates)

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        views: list[tuple[str, Callable[..., Any]]] = [
            ("/", self.search_page),
            ("/chart", self.chart_frame),
            ("/events", self.event_page),
            ("/events/{event_id:path}", self.event_page),
            ("/runs", self.run_page),
            ("/runs/{run_id:path}", self.run_page),
            ("/actors", self.actor_page),
            ("/actors/{actor_id:path}", self.actor_page),
            ("/integrations", self.integration_page),
            ("/integrations/{provider:path}", self.integration_page),
            ("/integrity", self.integrity_page),
            ("/export", self.export),
            ("/login", self.sign_in.page),
            ("/static/{name}", self.static_file),
        ]
        for path, view in views:
            router.add_api_route(path, view, methods=["GET"])
        router.add_api_route("/login", self.sign_in.sign_in, methods=["POST"])
        router.add_api_route("/logout", self.sign_in.sign_out, methods=["POST"])
        router.add_api_route("/integrity/verify", self.start_verification, methods=["POST"])
        return router

    # -- who is asking ---------------------------------------------------------------------
    def _signed_in(self, request: Request, build: Callable[[Viewer], Response]) -> Response:
        """Run a page for the signed-in viewer; anyone else goes to the sign-in page."""
        viewer = self.sign_in.viewer(request)
        if viewer is None:
            return self.sign_in.redirect(request)
        try:
            return build(viewer)
        except TrailkeeperError as exc:
            return self._error(viewer, exc.status if exc.status < 500 else 500, exc.message)

    def _error(self, viewer: Viewer, status: int, message: str) -> Response:
        title = "Not found" if status == 404 else "Something is wrong"
        return self.templates.response(
            "error.html", {**self._base(viewer), "title": title, "message": message}, status=status
        )

    def _base(self, viewer: Viewer, section: str = "") -> dict[str, Any]:
        return {"viewer": viewer, "csrf_field": CSRF_FIELD, "section": section}

    # -- the record of reads ---------------------------------------------------------------
    def _record_read(
        self,
        viewer: Viewer,
        *,
        endpoint: str,
        params: Mapping[str, object],
        results: int,
        action: str = READ,
        error: str | None = None,
        target: tuple[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        """Queue the record of one read; never fails the page that was read."""
        record_read(
            self.log,
            viewer.key,
            via="console",
            ip=viewer.ip,
            user_agent=viewer.user_agent,
            action=action,
            endpoint=endpoint,
            params={name: _cut(value) for name, value in params.items()},
            results=results,
            error=error,
            target=target,
            extra=extra,
        )

    # -- search ----------------------------------------------------------------------------
    def search_page(self, request: Request) -> Response:
        return self._signed_in(request, lambda viewer: self._search(request, viewer))

    def _search(self, request: Request, viewer: Viewer) -> Response:
        form = SearchForm.from_params(request.query_params)
        cursor = request.query_params.get("cursor") or None
        resolved = resolve(self.log, form, _now_us())
        page = None
        cursor_fault = None
        if resolved.filter is not None:
            try:
                page = self.log.search_filter(viewer.tenant, resolved.filter, limit=PAGE_SIZE, cursor=cursor)
            except (InvalidArgument, NotFound) as exc:
                cursor_fault = (
                    f"This page link is no longer valid ({exc.message}). Start from the first page."
                )
        self._record_read(
            viewer,
            endpoint="GET /",
            params={**form.params(), "cursor": cursor},
            results=len(page.events) if page else 0,
            error=resolved.fault_code or ("invalid_argument" if cursor_fault else None),
        )
        context = {
            **self._base(viewer, "search"),
            "form": form,
            "resolved": resolved,
            "page": page,
            "cursor": cursor,
            "cursor_fault": cursor_fault,
            "next_url": form.url("/", cursor=page.next_cursor) if page and page.next_cursor else None,
            "first_url": form.url("/"),
            "chart_url": form.url("/chart"),
            "export_urls": {fmt: form.url("/export", format=fmt) for fmt in EXPORT_FORMATS},
            "presets": [(p, form.with_preset(p.key).url("/")) for p in PRESETS],
            "all_time_url": form.with_preset("").url("/"),
            "categories": CATEGORIES,
            "outcomes": OUTCOMES,
        }
        status = 400 if resolved.filter is None else 200
        return self.templates.response("search.html", context, status=status)

    def chart_frame(self, request: Request) -> Response:
        return self._signed_in(request, lambda viewer: self._chart(request, viewer))

    def _chart(self, request: Request, viewer: Viewer) -> Response:
        form = SearchForm.from_params(request.query_params)
        series = request.query_params.get("series", "category")
        if series not in SERIES:
            series = "category"
        # One clock reading for the preset's bounds and the cache's settled buckets alike.
        now_us = _now_us()
        resolved = resolve(self.log, form, now_us)
        chart = None
        if resolved.filter is not None:
            query_filter = resolved.filter
            activity = count_activity(
                self.log,
                viewer.tenant,
                query_filter,
                series_field=series,
                cache=self.charts,
                now_us=now_us,
            )
            if activity is not None:
                chart = draw(activity, lambda bucket: _narrowed(form, query_filter, bucket))
        self._record_read(
            viewer,
            endpoint="GET /chart",
            params={**form.params(), "series": series},
            results=chart.total if chart else 0,
            error=resolved.fault_code,
        )
        return self.templates.response(
            "chart.html", {"chart": chart, "resolved": resolved, "series": series}, framed=True
        )

    # -- one event -------------------------------------------------------------------------
    def event_page(self, request: Request, event_id: str = "") -> Response:
        event_id = event_id or request.query_params.get("id", "")
        return self._signed_in(request, lambda viewer: self._event(viewer, event_id))

    def _event(self, viewer: Viewer, event_id: str) -> Response:
        record = self.log.get(viewer.tenant, event_id) if event_id else None
        self._record_read(
            viewer,
            endpoint="GET /events/{id}",
            params={"id": event_id},
            results=0 if record is None else 1,
            error=None if record is not None else NotFound.code,
            target=("event", event_id),
        )
        if record is None:
            # Another tenant's event is exactly as absent as one that never was.
            raise NotFound(f"no event {event_id!r} in this tenant's log")
        context = {
            **self._base(viewer, "search"),
            "record": record,
            "fields": pages.event_fields(record),
            "check": check_inclusion(self.log, viewer.tenant, record),
        }
        return self.templates.response("event.html", context)

    # -- a workflow run --------------------------------------------------------------------
    def run_page(self, request: Request, run_id: str = "") -> Response:
        run_id = run_id or request.query_params.get("id", "")
        return self._signed_in(request, lambda viewer: self._run(viewer, run_id))

    def _run(self, viewer: Viewer, run_id: str) -> Response:
        try:
            run = self.log.workflow_run(viewer.tenant, run_id)
        except TrailkeeperError as exc:
            self._record_read(
                viewer, endpoint="GET /runs/{run_id}", params={"run_id": run_id}, results=0, error=exc.code
            )
            raise
        events = run["events"]
        self._record_read(
            viewer,
            endpoint="GET /runs/{run_id}",
            params={"run_id": run_id},
            results=len(events),
            target=("workflow_run", run_id),
        )
        context = {
            **self._base(viewer, "search"),
            "run_id": run_id,
            "summary": run["summary"],
            "steps": timeline(events),
            "duration": run_duration(run["summary"]),
            "subject": pages.run_subject(events),
            "search_url": SearchForm(q=describe(Filter(terms=(Term("workflow_run", run_id),)))).url("/"),
        }
        return self.templates.response("run.html", context)

    # -- an actor --------------------------------------------------------------------------
    def actor_page(self, request: Request, actor_id: str = "") -> Response:
        actor_id = actor_id or request.query_params.get("id", "")
        return self._signed_in(request, lambda viewer: self._actor(viewer, actor_id))

    def _actor(self, viewer: Viewer, actor_id: str) -> Response:
        activity = pages.actor_activity(self.log, viewer.tenant, actor_id)
        self._record_read(
            viewer,
            endpoint="GET /actors/{actor_id}",
            params={"actor_id": actor_id},
            results=activity.total,
            error=None if activity.total else NotFound.code,
            target=("actor", actor_id),
        )
        if not activity.total:
            raise NotFound(f"no events by actor {actor_id!r} in this tenant's log")
        search = SearchForm(q=describe(Filter(terms=(Term("actor", actor_id),))))
        context = {
            **self._base(viewer, "search"),
            "actor_id": actor_id,
            "activity": activity,
            "search_url": search.url("/"),
            "chart_url": search.url("/chart"),
        }
        return self.templates.response("actor.html", context)

    # -- an integration --------------------------------------------------------------------
    def integration_page(self, request: Request, provider: str = "") -> Response:
        provider = provider or request.query_params.get("id", "")
        return self._signed_in(request, lambda viewer: self._integration(viewer, provider))

    def _integration(self, viewer: Viewer, provider: str) -> Response:
        activity = pages.integration_activity(self.log, viewer.tenant, provider)
        self._record_read(
            viewer,
            endpoint="GET /integrations/{provider}",
            params={"provider": provider},
            results=activity.total,
            error=None if activity.total else NotFound.code,
            target=("integration", provider),
        )
        if not activity.total:
            raise NotFound(f"no events of the integration {provider!r} in this tenant's log")
        only = Filter(terms=(Term("integration", provider),))
        retrievals = only.merge(Filter(terms=(Term("action", "integration.data.retrieved"),)))
        context = {
            **self._base(viewer, "search"),
            "provider": provider,
            "activity": activity,
            "search_url": SearchForm(q=describe(only)).url("/"),
            "retrievals_url": SearchForm(q=describe(retrievals)).url("/"),
            "chart_url": SearchForm(q=describe(retrievals)).url("/chart", series="outcome"),
        }
        return self.templates.response("integration.html", context)

    # -- integrity -------------------------------------------------------------------------
    def integrity_page(self, request: Request) -> Response:
        return self._signed_in(request, lambda viewer: self._integrity(viewer))

    def _integrity(self, viewer: Viewer) -> Response:
        tenant = viewer.tenant
        # The note and the time it was signed, read together: another may be signed meanwhile.
        signed = self.log.signed_checkpoint(tenant)
        note = signed.note
        public_key = self.log.public_key(tenant)
        signature_problem = None
        checkpoint = None
        verifier = None
        try:
            verifier = VerifierKey.parse(public_key)
            checkpoint = open_checkpoint(note, verifier, origin=self.log.origin(tenant))
        except TrailkeeperError as exc:
            signature_problem = exc.message
        run = self.verifications.latest(tenant)
        self._record_read(
            viewer,
            endpoint="GET /integrity",
            params={},
            results=1,
            extra={"tree_size": checkpoint.tree_size if checkpoint else None},
        )
        context = {
            **self._base(viewer, "integrity"),
            "note": note,
            "checkpoint": checkpoint,
            "signed_at": signed.created_at,
            "public_key": public_key.strip(),
            "key_id": verifier.key_id if verifier else None,
            "signature_problem": signature_problem,
            "run": run,
        }
        return self.templates.response("integrity.html", context)

    async def start_verification(self, request: Request) -> Response:
        form = await request.form()
        token = form.get(CSRF_FIELD)
        viewer = await run_in_threadpool(self.sign_in.viewer, request)
        if viewer is None:
            return self.sign_in.redirect(request)
        if not same_origin(request) or not isinstance(token, str) or not csrf_matches(viewer.session, token):
            return self._forbidden(viewer)
        self.verifications.start(viewer.tenant)
        self._record_read(viewer, endpoint="POST /integrity/verify", params={}, results=0)
        return see_other("/integrity")

    def _forbidden(self, viewer: Viewer) -> Response:
        message = "This form is out of date or came from another site. Reload the page and try again."
        return self.templates.response(
            "error.html", {**self._base(viewer), "title": "Refused", "message": message}, status=403
        )

    # -- export ----------------------------------------------------------------------------
    def export(self, request: Request) -> Response:
        return self._signed_in(request, lambda viewer: self._export(request, viewer))

    def _export(self, request: Request, viewer: Viewer) -> Response:
        form = SearchForm.from_params(request.query_params)
        format = request.query_params.get("format", "csv")
        if format not in EXPORT_FORMATS:
            raise InvalidArgument("format", f"must be one of {', '.join(EXPORT_FORMATS)}")
        resolved = resolve(self.log, form, _now_us())
        if resolved.filter is None:
            fault = resolved.query_fault or resolved.field_fault
            raise InvalidArgument("search", getattr(fault, "message", "is not valid"))

        def finished(count: int, complete: bool) -> None:
            self._record_read(
                viewer,
                action=EXPORTED,
                endpoint="GET /export",
                params=form.params(),
                results=count,
                extra={"format": format, "complete": complete},
            )

        records = self.log.iter_search(viewer.tenant, resolved.filter)
        disposition = f'attachment; filename="{attachment_name(viewer.tenant, format)}"'
        return StreamingResponse(
            export_body(format, records, finished),
            media_type=MEDIA_TYPES[format],
            headers={**security_headers(), "Content-Disposition": disposition},
        )

    # -- static files ------------------------------------------------------------------------
    def static_file(self, request: Request, name: str) -> Response:
        found = self.static.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain", headers=security_headers())
        headers = security_headers()
        # A versioned URL names these exact bytes: it may be kept for good.
        versioned = request.query_params.get("v") == found.version
        headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
        return Response(found.body, media_type=found.media_type, headers=headers)


def _narrowed(form: SearchForm, query_filter: Filter, bucket: Bucket) -> str:
    """A chart bar's link: the search, over the bar's bucket within the search's own bounds."""
    start = max(bucket.start_us, query_filter.after_us or bucket.start_us)
    end = min(bucket.end_us, query_filter.before_us or bucket.end_us)
    return form.narrowed(start, end).url("/")


def _now_us() -> int:
    return time.time_ns() // 1000


def _cut(value: object) -> object:
    if isinstance(value, str) and len(value) > _MAX_PARAM:
        return value[:_MAX_PARAM] + "…"
    return value
