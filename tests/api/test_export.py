"""GET /v1/export: every match, streamed, in five formats."""

from __future__ import annotations

import csv
import io
import json
import re

import httpx
import pytest
from tests.api.helpers import Api, event, record, search, settle

MANY = 2500


@pytest.fixture(scope="module")
def exporter(api: Api) -> httpx.Client:
    client = api.client("export-seeded")
    for start in range(0, MANY, 1000):
        batch = [
            event(
                id=f"x{i}",
                occurred_at=f"2026-04-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                description="d" * 40,
            )
            for i in range(start, min(start + 1000, MANY))
        ]
        record(client, *batch)
    return client


def export(client: httpx.Client, **params: str) -> httpx.Response:
    return client.get("/v1/export", params={"action": "auth.login", **params})


@pytest.mark.parametrize(
    ("format", "media_type", "extension"),
    [
        ("ndjson", "application/x-ndjson", ".ndjson"),
        ("csv", "text/csv; charset=utf-8; header=present", ".csv"),
        ("ocsf", "application/x-ndjson", ".ocsf.ndjson"),
        ("cef", "text/plain; charset=utf-8", ".cef"),
        ("syslog", "text/plain; charset=utf-8", ".log"),
    ],
)
def test_each_format_is_an_attachment_of_its_media_type(
    exporter: httpx.Client, format: str, media_type: str, extension: str
) -> None:
    response = export(exporter, format=format, q="x0")

    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(
        rf'attachment; filename="trailkeeper-export-seeded-\d{{8}}T\d{{6}}Z\{extension}"', disposition
    )


def test_ndjson_export_is_every_stored_record_of_the_filter_streamed(exporter: httpx.Client) -> None:
    with exporter.stream(
        "GET", "/v1/export", params={"action": "auth.login", "format": "ndjson"}
    ) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())

    records = [json.loads(line) for line in lines if line]
    assert len(records) == MANY
    assert records[0] == exporter.get(f"/v1/events/{records[0]['id']}").json()
    assert [r["id"] for r in records[:2]] == [f"x{MANY - 1}", f"x{MANY - 2}"]


def test_csv_export_has_a_header_and_a_row_per_event(exporter: httpx.Client) -> None:
    rows = list(csv.DictReader(io.StringIO(export(exporter, format="csv", order="asc").text)))

    assert len(rows) == MANY
    assert rows[0]["id"] == "x0"
    assert rows[0]["action"] == "auth.login"


@pytest.mark.parametrize(("format", "start"), [("ocsf", "{"), ("cef", "CEF:0|"), ("syslog", "<")])
def test_line_formats_have_one_line_per_event(exporter: httpx.Client, format: str, start: str) -> None:
    lines = export(exporter, format=format, since="2026-04-01T00:00:00Z", until="2026-04-01T00:00:10Z").text

    assert len(lines.splitlines()) == 10
    assert all(line.startswith(start) for line in lines.splitlines())


def test_unknown_format_is_400_before_any_byte_is_streamed(exporter: httpx.Client) -> None:
    response = export(exporter, format="xml")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "format"


def test_malformed_query_is_400_not_a_broken_stream(exporter: httpx.Client) -> None:
    response = export(exporter, q="outcome:")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_query"


def test_export_is_recorded_with_its_format_and_count(api: Api, tenant: str) -> None:
    client = api.client(tenant)
    record(client, *(event() for _ in range(3)))

    assert len(export(client, format="csv").text.splitlines()) == 4
    settle(api.log, tenant)

    (exported,) = search(client, action="audit.log.exported", include_audit=True)
    assert exported["actor"]["type"] == "service"
    assert exported["metadata"]["format"] == "csv"
    assert exported["metadata"]["results"] == 3
    assert exported["metadata"]["complete"] is True
    assert exported["metadata"]["params"] == {"action": "auth.login", "format": "csv"}
