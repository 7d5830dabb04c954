"""The console in a real browser: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` from the
``chromium`` package. Without it these tests are skipped, except under ``CI=true``, where
they fail. Each page visited is saved as a screenshot under ``docs/screenshots/``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.conftest import skip_or_fail
from tests.web.conftest import Console

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Where the browser reports a page breaking the Content-Security-Policy.
_CSP_REPORT = re.compile(r"Content Security Policy", re.IGNORECASE)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        skip_or_fail("Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def csp_reports() -> list[str]:
    return []


def sign_in_with_form(page: Page, console: Console, secret: str) -> None:
    page.goto(f"{console.url}/")
    assert urlsplit(page.url).path == "/login"
    page.fill("#api_key", secret)
    with page.expect_navigation():
        page.click("button[type=submit]")


@pytest.fixture(scope="module")
def page(browser: Browser, console: Console, csp_reports: list[str]) -> Iterator[Page]:
    """One signed-in tab for the module's tests, which visit pages in turn."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    tab = context.new_page()
    tab.on(
        "console",
        lambda message: csp_reports.append(message.text) if _CSP_REPORT.search(message.text) else None,
    )
    _, secret = console.key()
    sign_in_with_form(tab, console, secret)
    try:
        yield tab
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def chart_drawn(page: Page) -> None:
    page.frame_locator("iframe.chart-frame").first.locator("svg.chart").wait_for()


def test_signing_in_through_the_form_opens_the_search(browser: Browser, console: Console) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        tab = context.new_page()
        _, secret = console.key()
        sign_in_with_form(tab, console, secret)
        assert urlsplit(tab.url).path == "/"
        assert tab.locator("h2", has_text="Events").is_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "tk_session")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
    finally:
        context.close()


def test_a_search_shows_only_the_matching_events(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/?q=-action:audit.*")
    chart_drawn(page)
    shot(page, "search")
    page.fill("input[name=q]", "action:auth.* outcome:failure")
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")
    rows = page.locator("table.events tbody tr")
    assert rows.count() > 0
    assert rows.count() == page.locator("table.events tbody tr.failed").count()
    actions = page.locator("table.events a.action").all_inner_texts()
    assert all(action.startswith("auth.") for action in actions)


def test_clicking_a_chart_bar_narrows_the_time_range(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/?category=workflow")
    chart_drawn(page)
    bar = page.frame_locator("iframe.chart-frame").locator("a.bar:has(rect.s-workflow)").nth(5)
    with page.expect_navigation():
        bar.click()
    query = parse_qs(urlsplit(page.url).query)
    assert query["category"] == ["workflow"]
    start, end = query["from"][0], query["to"][0]
    assert start < end
    times = page.locator("table.events time").evaluate_all("nodes => nodes.map(n => n.dateTime)")
    assert times
    assert all(start[:19] <= t[:19] < end[:19] for t in times)
    assert page.locator(".presets .chip.on", has_text="→").is_visible()


def test_the_event_page_shows_its_proof_verified(page: Page, console: Console) -> None:
    run = console.log.workflow_run("demo", console.facts.example_run_id)
    record = next(r for r in run["events"] if r.get("metadata"))
    page.goto(f"{console.url}/events/{record['id']}")
    assert page.locator("#proof .verdict.ok").inner_text().strip().endswith("Verified")
    assert page.locator("#proof").inner_text().count(record["leaf_hash"][:16]) == 1
    first_key = next(iter(record["metadata"]))
    assert f'"{first_key}":' in page.locator("pre.json").first.inner_text()
    shot(page, "event")


def test_a_workflow_run_reads_as_a_timeline(page: Page, console: Console) -> None:
    run = console.log.workflow_run("demo", console.facts.example_run_id)
    page.goto(f"{console.url}/runs/{console.facts.example_run_id}")
    steps = page.locator("ol.timeline > li")
    assert steps.count() == 1 + len(run["events"])  # the triggering signal, then each event
    kinds = steps.evaluate_all("nodes => nodes.map(n => n.className)")
    assert "kind-signal" in kinds[0]
    assert "signal:" in steps.first.inner_text()
    assert "kind-start" in kinds[1]
    assert any("kind-meeting" in k for k in kinds)
    assert "kind-finish" in kinds[-1]
    shot(page, "run")
    page.locator("ol.timeline a.action").first.click()
    assert urlsplit(page.url).path.startswith("/events/")


def test_the_export_downloads_the_current_search(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/?q=outcome:failure")
    with page.expect_download() as download_info:
        page.click(".exports a:has-text('CSV')")
    download = download_info.value
    assert download.suggested_filename.startswith("trailkeeper-demo-")
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    expected = list(console.log.iter_search("demo", console.log.filter("outcome:failure")))
    assert len(rows) == len(expected)
    assert {row["outcome"] for row in rows} == {"failure"}


def test_the_actor_page_highlights_failed_sign_ins(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/actors/{console.facts.brute_force_target_user}")
    chart_drawn(page)
    assert page.locator("table tr.failed").count() >= 10
    assert page.get_by_text(console.facts.brute_force_ip).first.is_visible()
    shot(page, "actor")


def test_the_integration_page_shows_its_grants_and_revocation(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/integrations/{console.facts.revoked_provider}")
    chart_drawn(page)
    assert page.get_by_text("integration.oauth.revoked").first.is_visible()
    shot(page, "integration")


def test_the_integrity_page_verifies_the_log(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/integrity")
    assert page.locator(".verdict.ok", has_text="Signature verified").is_visible()
    with page.expect_navigation():
        page.click("#verification button[type=submit]")
    # The page refreshes itself every second while the run goes on, then shows its result.
    page.locator("#verification .verdict:not(.running)").wait_for(timeout=60_000)
    section = page.locator("#verification").inner_text()
    assert "Intact" in section, section
    shot(page, "integrity")


def test_no_page_broke_the_content_security_policy(page: Page, csp_reports: list[str]) -> None:
    assert csp_reports == []
