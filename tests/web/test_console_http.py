"""The console over HTTP: sign-in, sessions, CSRF, tenancy, headers, pages and exports."""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tests.web.conftest import Console, csrf_token, sign_in, wait_for

from trailkeeper.web.render import CONTENT_SECURITY_POLICY

EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def set_cookie(response: httpx.Response, name: str) -> str:
    cookies = [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{name}=")]
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    return cookies[0]


# --- signing in and out ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/events/x", "/runs/r", "/actors/a", "/integrations/p", "/integrity", "/export"]
)
def test_every_page_sends_a_stranger_to_sign_in(console: Console, path: str) -> None:
    with console.client() as client:
        response = client.get(path)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    if path != "/":
        assert parse_qs(location.query)["next"] == [path]


def test_signing_in_sets_a_signed_httponly_strict_cookie_and_goes_to_next(console: Console) -> None:
    _, secret = console.key()
    with console.client() as client:
        response = sign_in(client, secret, next_path="/integrity")
        assert response.status_code == 303
        assert response.headers["location"] == "/integrity"
        cookie = set_cookie(response, "tk_session").lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie  # served over plain HTTP here
        assert secret not in response.headers.get_list("set-cookie")[0]
        assert client.get("/integrity").status_code == 200


def test_the_session_cookie_is_secure_over_https(console: Console) -> None:
    # uvicorn takes the scheme from X-Forwarded-Proto when the peer is a trusted proxy
    # (127.0.0.1 by default), as behind a TLS-terminating proxy.
    _, secret = console.key()
    with console.client() as client:
        form = client.get("/login")
        response = client.post(
            "/login",
            data={"api_key": secret, "csrf": csrf_token(form.text), "next": "/"},
            headers={"X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 303
    assert "secure" in set_cookie(response, "tk_session").lower()


def test_a_wrong_key_is_refused(console: Console) -> None:
    with console.client() as client:
        response = sign_in(client, "tk_not_a_key_at_all")
        assert response.status_code == 401
        assert "unknown or has been revoked" in response.text
        assert "tk_session" not in client.cookies
        assert client.get("/").status_code == 303


def test_a_key_without_read_scope_cannot_sign_in(console: Console) -> None:
    _, secret = console.key(scopes=["events:write"])
    with console.client() as client:
        response = sign_in(client, secret)
    assert response.status_code == 403
    assert "events:read" in response.text


def test_an_admin_key_may_sign_in(console: Console) -> None:
    _, secret = console.key(scopes=["admin"])
    with console.client() as client:
        assert sign_in(client, secret).status_code == 303


def test_sign_in_without_the_form_token_is_refused(console: Console) -> None:
    _, secret = console.key()
    with console.client() as client:
        client.get("/login")
        response = client.post("/login", data={"api_key": secret, "csrf": "forged", "next": "/"})
        assert response.status_code == 403
        assert client.get("/").status_code == 303


def test_sign_in_never_redirects_to_another_site(console: Console) -> None:
    _, secret = console.key()
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        with console.client() as client:
            response = sign_in(client, secret, next_path=hostile)
        assert response.headers["location"] == "/"


def test_revoking_the_key_ends_the_session_at_once(console: Console) -> None:
    key_id, secret = console.key()
    with console.signed_in(secret) as client:
        assert client.get("/").status_code == 200
        console.log.revoke_key(key_id)
        response = client.get("/")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?")
        assert "notice=ended" in response.headers["location"]
        assert (
            'tk_session=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
        )
        assert "Your session ended" in client.get(response.headers["location"]).text


def test_a_tampered_session_cookie_is_no_session(console: Console) -> None:
    _, secret = console.key()
    with console.signed_in(secret) as client:
        value = client.cookies["tk_session"]
        client.cookies.set("tk_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
        assert client.get("/").status_code == 303


def test_signing_out_needs_the_session_token(reader: httpx.Client) -> None:
    refused = reader.post("/logout", data={"csrf": "wrong"})
    assert refused.status_code == 403
    assert reader.get("/").status_code == 200
    token = csrf_token(reader.get("/").text)
    response = reader.post("/logout", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?notice=signed-out"
    assert reader.get("/").status_code == 303


def test_a_cross_site_post_is_refused_even_with_the_token(reader: httpx.Client) -> None:
    token = csrf_token(reader.get("/integrity").text)
    response = reader.post(
        "/integrity/verify", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    fetched = reader.post("/integrity/verify", data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403


def test_starting_a_verification_needs_the_session_token(reader: httpx.Client) -> None:
    assert reader.post("/integrity/verify", data={}).status_code == 403
    token = csrf_token(reader.get("/integrity").text)
    response = reader.post("/integrity/verify", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/integrity"
    page = wait_for(lambda: (text := reader.get("/integrity").text) and "Intact" in text and text)
    assert "events and" in page


# --- headers -----------------------------------------------------------------------------------


def test_the_policy_constant_is_the_one_the_issue_asks_for() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


def test_console_pages_carry_a_strict_content_security_policy(console: Console, reader: httpx.Client) -> None:
    run_id = console.facts.example_run_id
    event_id = f"{console.facts.id_prefix}5"
    for path in (
        "/",
        f"/events/{event_id}",
        f"/runs/{run_id}",
        "/integrity",
        "/actors/agt_pipeline",
        "/nope-404",
    ):
        response = reader.get(path)
        if response.status_code == 404 and path == "/nope-404":
            continue
        assert response.headers["content-security-policy"] == EXPECTED_CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    with console.client() as stranger:
        assert stranger.get("/login").headers["content-security-policy"] == EXPECTED_CSP


def test_the_chart_may_be_framed_by_the_console_only(reader: httpx.Client) -> None:
    response = reader.get("/chart")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy
    assert "script-src 'self'" in policy
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


def test_pages_hold_no_inline_script_or_style(console: Console, reader: httpx.Client) -> None:
    pages = ["/", "/chart", f"/runs/{console.facts.example_run_id}", "/integrity", "/actors/agt_pipeline"]
    for path in pages:
        html = reader.get(path).text
        assert "<script" not in html, path
        assert " style=" not in html, path
        assert "<style" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path
        assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""), path
        assert "https://" not in html, path


# --- one tenant --------------------------------------------------------------------------------


def test_another_tenants_event_run_and_actor_are_not_found(
    console: Console, reader: httpx.Client, tenant: str
) -> None:
    other = console.log.record(
        tenant,
        category="workflow",
        action="workflow.started",
        actor={"type": "agent", "id": "agt_elsewhere"},
        workflow={"run_id": "run_elsewhere"},
        integration={"provider": "elsewhere_crm"},
    )
    for path in (
        f"/events/{other['id']}",
        "/runs/run_elsewhere",
        "/actors/agt_elsewhere",
        "/integrations/elsewhere_crm",
    ):
        response = reader.get(path)
        assert response.status_code == 404, path
        assert "agt_elsewhere" not in response.text or path == "/actors/agt_elsewhere"
    assert other["id"] not in reader.get("/", params={"q": "actor:agt_elsewhere"}).text


def test_a_cursor_of_another_tenant_shows_nothing_of_it(
    console: Console, reader: httpx.Client, tenant: str
) -> None:
    for n in range(3):
        console.log.record(tenant, category="system", action="x.y", actor={"type": "user", "id": f"u{n}"})
    page = console.log.search(tenant, limit=1)
    assert page.next_cursor is not None
    response = reader.get("/", params={"cursor": page.next_cursor})
    assert "no longer valid" in response.text


# --- every value escaped -------------------------------------------------------------------------

HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_ATTRIBUTE = '"><img src=x onerror=alert(2)>'


def test_hostile_values_are_shown_as_text(console: Console, tenant: str) -> None:
    record = console.log.record(
        tenant,
        category="user_activity",
        action="config.changed",
        actor={"type": "user", "id": "u<b>1</b>", "name": HOSTILE_ATTRIBUTE, "email": "a'b@example.com"},
        targets=[{"type": "setting", "id": "s1", "name": "evil\u202eexe.txt"}],
        description=f"{HOSTILE_SCRIPT} line one\nline two\x1b[31m red",
        context={"user_agent": "agent\x00with\x7fcontrols", "ip": "192.0.2.1"},
        metadata={"note": HOSTILE_SCRIPT, "quote": 'it\'s "quoted"', "bell": "\x07", "c1": "\x85"},
    )
    _, secret = console.key(tenant)
    with console.signed_in(secret) as client:
        pages = {
            "search": client.get("/").text,
            "event": client.get(f"/events/{record['id']}").text,
            "actor": client.get("/actors/u<b>1</b>").text,
        }
    for name, html in pages.items():
        assert HOSTILE_SCRIPT not in html, name
        assert "<img src=x" not in html, name
        assert "<b>1</b>" not in html, name
        assert "&lt;img src=x onerror=alert(2)&gt;" in html, name
    for name in ("search", "event"):
        html = pages[name]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, name
        # Control characters are kept as data and shown as escapes, never raw.
        assert '<span class="ctl" title="U+000A">\\n</span>' in html, name
        assert '<span class="ctl" title="U+001B">\\x1b</span>' in html, name
        assert "\x1b" not in html, name
    event = pages["event"]
    assert '<span class="ctl" title="U+202E">\\u202e</span>' in event
    assert '<span class="ctl" title="U+0000">\\x00</span>' in event
    assert '<span class="ctl" title="U+007F">\\x7f</span>' in event
    assert '<span class="ctl" title="U+0085">\\x85</span>' in event
    assert "it&#39;s \\&#34;quoted\\&#34;" in event
    assert "\\u0007" in event  # JSON writes C0 controls of metadata as escapes itself


# --- search ------------------------------------------------------------------------------------


def test_a_malformed_query_is_shown_with_the_fault_marked(reader: httpx.Client) -> None:
    response = reader.get("/", params={"q": "outcome:failure acter:jane"})
    assert response.status_code == 400
    assert "at character 17" in response.text
    assert "outcome:failure <mark>a</mark>cter:jane" in response.text
    assert " " * 16 + '<span class="caret">^</span>' in response.text


def test_a_fault_at_the_end_of_the_query_is_marked_there(reader: httpx.Client) -> None:
    response = reader.get("/", params={"q": 'action:auth.* "unterminated'})
    assert response.status_code == 400
    assert "<mark>&#34;</mark>unterminated" in response.text


def test_a_bad_time_bound_names_its_field(reader: httpx.Client) -> None:
    response = reader.get("/", params={"from": "yesterday"})
    assert response.status_code == 400
    assert "<strong>From:</strong>" in response.text


def test_filters_narrow_the_results(console: Console, reader: httpx.Client) -> None:
    html = reader.get("/", params={"outcome": "failure", "category": "authentication"}).text
    rows = re.findall(r'<tr class="([^"]*)">', html)
    assert rows
    assert all(row == "failed" for row in rows)
    assert "cat-authentication" in html
    assert "cat-workflow" not in html


def test_a_time_typed_without_offset_is_read_as_utc(reader: httpx.Client) -> None:
    html = reader.get("/", params={"from": "2026-11-02T14:00", "to": "2026-11-02 18:00"}).text
    times = re.findall(r'<time datetime="([^"]+)"', html)
    assert times
    assert all("2026-11-02T14:00:00" <= t < "2026-11-02T18:00:00" for t in times)


def test_paging_walks_every_event_once(console: Console, reader: httpx.Client) -> None:
    seen: list[str] = []
    url: str | None = "/?q=actor:agt_pipeline"
    while url is not None:
        html = reader.get(url).text
        seen += re.findall(r'<a href="/events/([^"]+)"><time', html)
        found = re.search(r'<a href="([^"]+)" class="button small" rel="next">', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    expected = [
        record["id"] for record in console.log.iter_search("demo", console.log.filter("actor:agt_pipeline"))
    ]
    assert seen == expected
    assert len(expected) > 50


def test_chart_bars_link_to_the_search_narrowed_to_their_bucket(reader: httpx.Client) -> None:
    html = reader.get("/chart", params={"category": "workflow"}).text
    links = [
        href.replace("&amp;", "&")
        for href in re.findall(r'<a href="([^"]+)" target="_top" class="bar">', html)
    ]
    assert len(links) >= 30
    query = parse_qs(urlsplit(links[10]).query)
    assert query["category"] == ["workflow"]
    start, end = query["from"][0], query["to"][0]
    assert start.endswith("T00:00:00Z")
    assert end.endswith("T00:00:00Z")
    assert "range" not in query
    narrowed = reader.get(links[10]).text
    times = re.findall(r'<time datetime="([^"]+)"', narrowed)
    assert all(start[:19] <= t[:19] < end[:19] for t in times)


def test_the_chart_counts_match_the_stats(console: Console, reader: httpx.Client) -> None:
    html = reader.get("/chart", params={"q": "outcome:failure"}).text
    total = int(re.search(r"<strong>([\d,]+)</strong> event", html).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert total == console.log.stats("demo", "outcome:failure", group_by="category")["total"]


# --- pages -----------------------------------------------------------------------------------


def test_the_event_page_shows_every_field_and_its_verified_proof(
    console: Console, reader: httpx.Client
) -> None:
    event_id = f"{console.facts.id_prefix}100"
    record = console.log.get("demo", event_id)
    assert record is not None
    html = reader.get(f"/events/{event_id}").text
    assert "Verified" in html
    assert record["leaf_hash"] in html
    for name in ("occurred_at", "received_at", "category", "action", "tenant", "seq", "leaf_hash"):
        assert f'<th scope="row" class="mono">{name}</th>' in html
    assert "proof hash" in html


def test_the_run_page_is_a_timeline_from_trigger_to_meeting(console: Console, reader: httpx.Client) -> None:
    html = reader.get(f"/runs/{console.facts.example_run_id}").text
    order = [
        html.index(f">{action}</a>") for action in ("workflow.started", "crm.task.created", "alert.sent")
    ]
    assert order == sorted(order)
    assert html.index(">meeting.scheduled</a>") < html.index(">workflow.completed</a>")
    assert "signal:" in html
    assert "kind-meeting" in html


def test_a_failed_run_marks_its_failure(console: Console, reader: httpx.Client) -> None:
    html = reader.get(f"/runs/{console.facts.failed_runs[0]}").text
    assert "out-failure" in html
    assert re.search(r'class="step kind-failed failed"', html)


def test_the_actor_page_highlights_failed_sign_ins(console: Console, reader: httpx.Client) -> None:
    html = reader.get(f"/actors/{console.facts.brute_force_target_user}").text
    assert console.facts.brute_force_ip in html
    assert html.count('<tr class="failed">') >= 10
    assert "python-requests" in html


def test_the_integration_page_shows_grants_and_revocations(console: Console, reader: httpx.Client) -> None:
    html = reader.get(f"/integrations/{console.facts.revoked_provider}").text
    assert "integration.oauth.granted" in html
    assert "integration.oauth.revoked" in html
    assert console.facts.revoked_connection_id in html
    assert "status-disconnected" in html


def test_a_missing_event_is_a_404_page(reader: httpx.Client) -> None:
    response = reader.get("/events/no-such-event")
    assert response.status_code == 404
    assert "Not found" in response.text


# --- export ------------------------------------------------------------------------------------


def test_export_streams_the_current_filter_as_csv(console: Console, reader: httpx.Client) -> None:
    response = reader.get("/export", params={"format": "csv", "q": "outcome:failure"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="trailkeeper-demo-')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    expected = list(console.log.iter_search("demo", console.log.filter("outcome:failure")))
    assert len(rows) == len(expected) > 0
    assert {row["outcome"] for row in rows} == {"failure"}


def test_export_streams_ndjson_records(console: Console, reader: httpx.Client) -> None:
    response = reader.get("/export", params={"format": "ndjson", "category": "workflow", "to": "2026-10-25"})
    assert response.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in response.text.splitlines()]
    assert records
    assert all(r["category"] == "workflow" and r["occurred_at"] < "2026-10-25" for r in records)
    assert all(r["tenant"] == "demo" for r in records)


def test_export_refuses_an_unknown_format(reader: httpx.Client) -> None:
    assert reader.get("/export", params={"format": "xlsx"}).status_code == 400


# --- the record of reads -----------------------------------------------------------------------


def test_reads_are_recorded_in_the_tenants_log(console: Console, tenant: str) -> None:
    record = console.log.record(tenant, category="system", action="x.y", actor={"type": "user", "id": "u"})
    key_id, secret = console.key(tenant)
    with console.signed_in(secret) as client:
        assert client.get(f"/events/{record['id']}").status_code == 200
        client.get("/export", params={"format": "ndjson"})

    def reads() -> list[dict[str, object]]:
        return console.log.search(tenant, "action:audit.log.*", order="asc").events

    found = wait_for(lambda: len(reads()) >= 2 and reads())
    viewed = next(r for r in found if r["action"] == "audit.log.read")
    assert viewed["actor"] == {"type": "service", "id": key_id, "name": "console test"}
    assert viewed["targets"] == [{"type": "event", "id": record["id"]}]
    assert viewed["metadata"]["via"] == "console"
    assert viewed["context"]["ip"] == "127.0.0.1"
    exported = next(r for r in found if r["action"] == "audit.log.exported")
    assert exported["metadata"]["format"] == "ndjson"
    assert exported["metadata"]["complete"] is True


def test_static_files_are_served_with_their_type(reader: httpx.Client) -> None:
    html = reader.get("/").text
    href = re.search(r'href="(/static/console\.css\?v=[0-9a-f]+)"', html).group(1)  # type: ignore[union-attr]
    response = reader.get(href)
    assert response.headers["content-type"].startswith("text/css")
    assert "immutable" in response.headers["cache-control"]
    assert reader.get("/static/../../etc/passwd").status_code == 404


def test_links_reach_things_whose_ids_are_awkward_in_a_url(console: Console, tenant: str) -> None:
    record = console.log.record(
        tenant,
        id="..",
        category="workflow",
        action="workflow.started",
        actor={"type": "user", "id": "team/ops lead?#"},
        workflow={"run_id": "run #1/2?x=%41"},
        integration={"provider": ".."},
    )
    _, secret = console.key(tenant)
    with console.signed_in(secret) as client:
        html = client.get(f"/events?id={record['id']}").text
        assert "Verified" in html
        for kind in ("actors", "runs", "integrations"):
            href = re.search(rf'href="(/{kind}[/?][^"]+)"', html).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
            assert client.get(href).status_code == 200, href
        assert 'href="/events?id=.."' in client.get("/").text
