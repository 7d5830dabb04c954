"""The export formats: ndjson, csv, ocsf, cef and syslog, on realistic and on hostile records."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.errors import InvalidArgument
from trailkeeper.exporters import FORMATS, MEDIA_TYPES, export_lines

SSO_FAILURE: dict[str, Any] = {
    "tenant": "acme",
    "seq": 41,
    "id": "evt-sso-1",
    "occurred_at": "2026-03-02T09:15:00.123456Z",
    "received_at": "2026-03-02T09:15:00.250000Z",
    "category": "authentication",
    "action": "auth.sso.failed",
    "outcome": "failure",
    "actor": {"type": "user", "id": "u_42", "name": "Ana Ruiz", "email": "ana@acme.test"},
    "context": {
        "ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0 (Macintosh)",
        "request_id": "req-7f3a",
        "session_id": "sess-1",
    },
    "description": "SAML assertion expired",
    "metadata": {"protocol": "saml", "idp": "okta", "reason": "assertion_expired"},
    "leaf_hash": "ab" * 32,
}
SLACK_ALERT: dict[str, Any] = {
    "tenant": "acme",
    "seq": 42,
    "id": "evt-alert-1",
    "occurred_at": "2026-03-02T09:16:00.000000Z",
    "received_at": "2026-03-02T09:16:00.010000Z",
    "category": "workflow",
    "action": "alert.sent",
    "outcome": "success",
    "actor": {"type": "agent", "id": "pipeline-agent", "name": "Pipeline agent"},
    "integration": {"provider": "slack", "connection_id": "conn-slack-1"},
    "workflow": {
        "run_id": "run-2026-0302-17",
        "name": "Deal stalled follow-up",
        "trigger": "deal.stalled_14d",
        "step": "notify",
    },
    "targets": [{"type": "deal", "id": "006Dn00000AbCdE", "name": "Globex renewal"}],
    "metadata": {"destination": "#deals-emea", "channel": "slack"},
    "leaf_hash": "cd" * 32,
}
SALESFORCE_RETRIEVAL: dict[str, Any] = {
    "tenant": "acme",
    "seq": 43,
    "id": "evt-sf-1",
    "occurred_at": "2026-03-02T09:17:30.500000Z",
    "received_at": "2026-03-02T09:17:30.600000Z",
    "category": "integration",
    "action": "integration.data.retrieved",
    "outcome": "success",
    "actor": {"type": "integration", "id": "salesforce-sync"},
    "integration": {"provider": "salesforce", "connection_id": "conn-sf-1"},
    "metadata": {"object_type": "Opportunity", "record_count": 250},
    "leaf_hash": "ef" * 32,
}
PURGED = {"tenant": "acme", "seq": 3, "leaf_hash": "01" * 32, "purged": True}
REALISTIC = [SSO_FAILURE, SLACK_ALERT, SALESFORCE_RETRIEVAL]


def export(format: str, *records: dict[str, Any]) -> str:
    return "".join(export_lines(format, records))


# RFC 5424 section 6: HEADER SP STRUCTURED-DATA [SP MSG], with SD-PARAM values escaped.
SYSLOG_RE = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<timestamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z) "
    r"(?P<hostname>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) "
    r'(?P<sd>-|\[[^ =\]"]{1,32}(?: [^ =\]"]{1,32}="(?:[^"\\\]]|\\.)*")*\])'
    r"(?: (?P<msg>.*))?\n"
)
SD_PARAM_RE = re.compile(r' ([^ =\]"]+)="((?:[^"\\\]]|\\.)*)"')
CEF_HEADER_RE = re.compile(r"CEF:0((?:\|(?:[^|\\]|\\.)*){6})\|(?P<extension>.*)\n")
CEF_PAIR_RE = re.compile(r"(\w+)=((?:[^\\=]|\\.)*?)(?= \w+=|$)")


def unescape_backslashes(text: str) -> str:
    """Undo the exporters' escaping of control characters and backslashes (Python's
    unicode_escape escapes)."""
    return codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")


def unescape(text: str, specials: str) -> str:
    """Undo a format's own escapes of ``specials``, then the common ones. Left to right, so
    that an escaped backslash is never read as the start of another escape."""
    own = re.sub(r"\\(.)", lambda m: m[1] if m[1] in specials else m[0], text)
    return unescape_backslashes(own)


def syslog_params(line: str) -> dict[str, str]:
    match = SYSLOG_RE.fullmatch(line)
    assert match is not None, line
    # RFC 5424 section 6.3.3: '"' and ']' are escaped with a backslash, as the backslash is.
    return {key: unescape(value, '"]') for key, value in SD_PARAM_RE.findall(match["sd"])}


def cef_fields(line: str) -> tuple[list[str], dict[str, str]]:
    match = CEF_HEADER_RE.fullmatch(line)
    assert match is not None, line
    header = [unescape(h, "|") for h in re.findall(r"\|((?:[^|\\]|\\.)*)", match[1])]
    pairs = CEF_PAIR_RE.findall(match["extension"])
    return header, {key: unescape(value, "=") for key, value in pairs}


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_an_unknown_format_is_refused_at_the_call_before_any_output() -> None:
    with pytest.raises(InvalidArgument) as refused:
        export_lines("xml", [SSO_FAILURE])
    assert refused.value.field == "format"
    assert "ndjson, csv, ocsf, cef, syslog" in refused.value.message


def test_every_format_has_a_media_type() -> None:
    assert set(MEDIA_TYPES) == set(FORMATS)
    assert MEDIA_TYPES["ndjson"] == "application/x-ndjson"
    assert MEDIA_TYPES["csv"].startswith("text/csv; charset=utf-8")


@pytest.mark.parametrize("format", FORMATS)
def test_export_reads_records_only_as_it_writes_them(format: str) -> None:
    consumed: list[int] = []

    def records() -> Iterator[dict[str, Any]]:
        for i in range(10_000):
            consumed.append(i)
            yield {**SLACK_ALERT, "seq": i}

    lines = export_lines(format, records())
    first = [next(lines) for _ in range(2 if format == "csv" else 1)]
    assert len(consumed) == 1
    assert all(line.endswith("\n") for line in first)


@pytest.mark.parametrize("format", FORMATS)
def test_every_line_is_one_record(format: str) -> None:
    out = export(format, *REALISTIC)
    header = 1 if format == "csv" else 0
    assert len(out.splitlines()) == len(REALISTIC) + header


def test_ndjson_is_the_stored_records_with_keys_in_a_stable_order() -> None:
    lines = export("ndjson", *REALISTIC).splitlines()
    assert [json.loads(line) for line in lines] == REALISTIC
    shuffled = dict(reversed(list(SLACK_ALERT.items())))
    shuffled["metadata"] = {"channel": "slack", "destination": "#deals-emea"}
    assert export("ndjson", shuffled) == lines[1] + "\n"
    assert lines[1].startswith('{"tenant":"acme","seq":42,"id":"evt-alert-1","occurred_at":')
    assert lines[1].endswith(f'"leaf_hash":"{"cd" * 32}"}}')


def test_ndjson_passes_a_purged_record_through_and_the_others_skip_it() -> None:
    assert json.loads(export("ndjson", PURGED)) == PURGED
    for format in ("ocsf", "cef", "syslog"):
        assert export(format, PURGED, SSO_FAILURE) == export(format, SSO_FAILURE)
    assert len(csv_rows(export("csv", PURGED, SSO_FAILURE))) == 1


def test_csv_has_the_fixed_columns_and_one_row_per_record() -> None:
    rows = csv_rows(export("csv", *REALISTIC))
    assert list(rows[0]) == [
        "seq", "id", "occurred_at", "received_at", "category", "action", "outcome",
        "actor_type", "actor_id", "actor_name", "actor_email", "targets",
        "integration_provider", "integration_connection_id", "workflow_run_id",
        "workflow_name", "workflow_step", "ip", "user_agent", "request_id", "description",
        "metadata", "leaf_hash",
    ]  # fmt: skip
    sso, alert, retrieval = rows
    assert (sso["seq"], sso["action"], sso["outcome"]) == ("41", "auth.sso.failed", "failure")
    assert (sso["actor_email"], sso["ip"]) == ("ana@acme.test", "203.0.113.9")
    assert alert["targets"] == "deal:006Dn00000AbCdE"
    assert (alert["workflow_run_id"], alert["workflow_step"]) == ("run-2026-0302-17", "notify")
    assert retrieval["integration_provider"] == "salesforce"
    assert json.loads(retrieval["metadata"]) == {"object_type": "Opportunity", "record_count": 250}
    assert retrieval["description"] == retrieval["workflow_run_id"] == ""


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil.test","x")', '\'=HYPERLINK("http://evil.test","x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1", "\\t=1"),
        ("\r=1", "\\r=1"),
        ("plain text = fine", "plain text = fine"),
    ],
)
def test_csv_cells_are_never_formulas(value: str, cell: str) -> None:
    record = {**SSO_FAILURE, "description": value, "actor": {"type": "user", "id": value}}
    (row,) = csv_rows(export("csv", record))
    assert row["description"] == row["actor_id"] == cell


def test_csv_keeps_a_multiline_description_on_one_line_and_recoverable() -> None:
    description = 'first line\nsecond "quoted", line\r\n\\ end'
    out = export("csv", {**SSO_FAILURE, "description": description})
    assert len(out.splitlines()) == 2
    (row,) = csv_rows(out)
    assert row["description"] == 'first line\\nsecond "quoted", line\\r\\n\\\\ end'
    assert unescape_backslashes(row["description"]) == description


def test_ocsf_events_have_the_required_base_attributes() -> None:
    for line in export("ocsf", *REALISTIC).splitlines():
        event = json.loads(line)
        for attribute in (
            "class_uid", "class_name", "category_uid", "category_name", "activity_id",
            "activity_name", "type_uid", "time", "severity_id", "status_id", "metadata",
        ):  # fmt: skip
            assert attribute in event
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["category_uid"] == event["class_uid"] // 1000
        assert event["metadata"]["version"].startswith("1.")
        product = event["metadata"]["product"]
        assert (product["name"], product["vendor_name"]) == ("trailkeeper", "trailkeeper")
        assert event["metadata"]["log_name"] == "acme"
        assert "uid" in event["actor"]["user"]


def test_ocsf_sso_failure_is_a_failed_authentication_logon() -> None:
    event = json.loads(export("ocsf", SSO_FAILURE))
    assert (event["class_uid"], event["activity_id"], event["type_uid"]) == (3002, 1, 300201)
    assert (event["status_id"], event["status"]) == (2, "Failure")
    assert event["severity_id"] > 1
    expected_ms = int(datetime(2026, 3, 2, 9, 15, tzinfo=UTC).timestamp()) * 1000 + 123
    assert event["time"] == expected_ms
    assert event["metadata"]["uid"] == "evt-sso-1"
    assert event["metadata"]["sequence"] == 41
    assert (
        event["user"]
        == event["actor"]["user"]
        == {
            "uid": "u_42",
            "name": "Ana Ruiz",
            "email_addr": "ana@acme.test",
            "type": "User",
            "type_id": 1,
        }
    )
    assert (event["auth_protocol_id"], event["auth_protocol"]) == (5, "SAML")
    assert event["src_endpoint"] == {"ip": "203.0.113.9"}
    assert event["http_request"]["user_agent"] == "Mozilla/5.0 (Macintosh)"
    assert event["actor"]["session"] == {"uid": "sess-1"}
    assert event["message"] == "SAML assertion expired"
    assert event["unmapped"]["metadata"]["idp"] == "okta"


def test_ocsf_alert_to_slack_is_api_activity_and_by_email_is_email_activity() -> None:
    slack = json.loads(export("ocsf", SLACK_ALERT))
    assert (slack["class_name"], slack["activity_name"]) == ("API Activity", "Create")
    assert slack["api"] == {"operation": "alert.sent", "service": {"name": "slack"}}
    assert slack["metadata"]["correlation_uid"] == "run-2026-0302-17"
    assert slack["unmapped"]["workflow"]["trigger"] == "deal.stalled_14d"
    assert slack["actor"]["user"]["type"] == "Agent"
    email_metadata = {"channel": "email", "destination": "owner@acme.test"}
    email = json.loads(export("ocsf", {**SLACK_ALERT, "metadata": email_metadata}))
    assert (email["class_uid"], email["activity_id"], email["category_uid"]) == (4009, 1, 4)
    assert email["email"] == {"to": ["owner@acme.test"]}


def test_ocsf_salesforce_retrieval_is_a_datastore_query() -> None:
    event = json.loads(export("ocsf", SALESFORCE_RETRIEVAL))
    assert (event["class_uid"], event["activity_name"]) == (6005, "Query")
    assert (event["status_id"], event["severity_id"]) == (1, 1)
    assert event["unmapped"]["integration"]["provider"] == "salesforce"
    assert event["unmapped"]["metadata"]["record_count"] == 250


def test_ocsf_other_activity_is_named_by_the_action_title() -> None:
    record = {**SLACK_ALERT, "action": "agent.action.taken", "metadata": {"tool": "email"}}
    event = json.loads(export("ocsf", record))
    assert (event["activity_id"], event["activity_name"]) == (99, "Agent action taken")


def test_cef_header_and_extension_of_an_sso_failure() -> None:
    line = export("cef", SSO_FAILURE)
    assert line.startswith("CEF:0|trailkeeper|trailkeeper|")
    header, extension = cef_fields(line)
    assert header[3:] == ["auth.sso.failed", "SSO login failed", "5"]
    assert extension["rt"] == str(json.loads(export("ocsf", SSO_FAILURE))["time"])
    assert extension["suid"] == "u_42"
    assert extension["suser"] == "Ana Ruiz"
    assert extension["src"] == "203.0.113.9"
    assert extension["outcome"] == "failure"
    assert extension["externalId"] == "evt-sso-1"
    assert extension["msg"] == "SAML assertion expired"


def test_cef_labels_its_custom_fields() -> None:
    _, extension = cef_fields(export("cef", SLACK_ALERT))
    labelled = {
        extension[key]: extension[key.removesuffix("Label")] for key in extension if key.endswith("Label")
    }
    assert labelled["workflowRunId"] == "run-2026-0302-17"
    assert labelled["integrationProvider"] == "slack"
    assert labelled["tenant"] == "acme"
    assert labelled["seq"] == "42"


def test_cef_escapes_backslash_equals_and_newlines_in_extension_values() -> None:
    description = "a=b | c\\d\nnext\rline"
    line = export("cef", {**SSO_FAILURE, "description": description})
    assert "msg=a\\=b | c\\\\d\\nnext\\rline\n" in line
    assert cef_fields(line)[1]["msg"] == description


def test_cef_escapes_pipes_and_backslashes_in_the_header() -> None:
    from trailkeeper.exporters.cef import escape_header

    assert escape_header("a|b\\c") == "a\\|b\\\\c"


def test_cef_puts_an_ipv6_source_in_c6a2() -> None:
    record = {**SSO_FAILURE, "context": {"ip": "2001:db8::7"}}
    _, extension = cef_fields(export("cef", record))
    assert extension["c6a2"] == "2001:db8::7"
    assert "src" not in extension


def test_syslog_lines_are_rfc_5424_with_authpriv_for_authentication() -> None:
    sso, alert, _ = export("syslog", *REALISTIC).splitlines(keepends=True)
    match = SYSLOG_RE.fullmatch(sso)
    assert match is not None
    assert match["pri"] == str(10 * 8 + 4)  # authpriv, warning
    assert (match["app"], match["msgid"]) == ("trailkeeper", "auth.sso.failed")
    assert match["timestamp"] == "2026-03-02T09:15:00.123456Z"
    assert match["msg"] == "Ana Ruiz (user u_42) auth.sso.failed (failure): SAML assertion expired"
    params = syslog_params(sso)
    assert params["tenant"] == "acme"
    assert (params["seq"], params["id"]) == ("41", "evt-sso-1")
    assert params["ip"] == "203.0.113.9"
    alert_match = SYSLOG_RE.fullmatch(alert)
    assert alert_match is not None
    assert alert_match["pri"] == str(13 * 8 + 6)  # log audit, informational
    assert syslog_params(alert)["workflow_run_id"] == "run-2026-0302-17"


def test_syslog_escapes_quote_backslash_and_bracket_in_structured_data() -> None:
    name = 'Ana "The Closer" [EMEA] \\ Ruiz'
    record = {**SSO_FAILURE, "actor": {**SSO_FAILURE["actor"], "name": name}}
    line = export("syslog", record)
    assert 'actor_name="Ana \\"The Closer\\" [EMEA\\] \\\\ Ruiz"' in line
    assert syslog_params(line)["actor_name"] == name


def test_syslog_msgid_is_the_action_cut_to_32_characters() -> None:
    action = "crm.opportunity.stage.changed.to.closed_won"
    match = SYSLOG_RE.fullmatch(export("syslog", {**SLACK_ALERT, "action": action}))
    assert match is not None
    assert match["msgid"] == action[:32]
    assert syslog_params(match[0])["action"] == action


def test_syslog_message_in_utf8_starts_with_the_bom() -> None:
    record = {**SSO_FAILURE, "description": "Anmeldung für Jürgen abgelehnt"}
    match = SYSLOG_RE.fullmatch(export("syslog", record))
    assert match is not None
    assert match["msg"].startswith("\ufeff")
    ascii_match = SYSLOG_RE.fullmatch(export("syslog", SSO_FAILURE))
    assert ascii_match is not None
    assert not ascii_match["msg"].startswith("\ufeff")


# Arbitrary text, weighted towards what breaks lines and escapes: every control character
# class, the separators, and each format's special characters.
HOSTILE = st.sampled_from(list("\n\r\t\x00\x0b\x0c\x1b\x1c\x7f\x85\x9b\u2028\u2029\"'\\|=],;@+-{}"))
# Lone surrogates are left out: ingest refuses them (they have no UTF-8 form), so no stored
# record holds one.
CHARACTERS = st.characters(codec="utf-8")
TEXT = st.text(st.one_of(CHARACTERS, HOSTILE), max_size=24)
SOME_TEXT = st.text(st.one_of(CHARACTERS, HOSTILE), min_size=1, max_size=24)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
TIMES = st.datetimes(datetime(1970, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
)


@st.composite
def hostile_records(draw: st.DrawFn) -> dict[str, Any]:
    def optional(record: dict[str, Any], field: str, strategy: st.SearchStrategy[Any]) -> None:
        if draw(st.booleans()):
            record[field] = draw(strategy)

    actor = {"type": draw(SOME_TEXT), "id": draw(SOME_TEXT)}
    optional(actor, "name", SOME_TEXT)
    optional(actor, "email", SOME_TEXT)
    record: dict[str, Any] = {
        "tenant": draw(SOME_TEXT),
        "seq": draw(st.integers(0, 2**53 - 1)),
        "id": draw(SOME_TEXT),
        "occurred_at": draw(TIMES),
        "received_at": draw(TIMES),
        "category": draw(st.sampled_from(["authentication", "workflow", "system"]) | TEXT),
        "action": draw(st.sampled_from(["auth.login.failed", "alert.sent"]) | SOME_TEXT),
        "outcome": draw(st.sampled_from(["success", "failure", "pending", "unknown"])),
        "actor": actor,
        "leaf_hash": draw(SOME_TEXT),
    }
    target = st.fixed_dictionaries({"type": SOME_TEXT, "id": SOME_TEXT}, optional={"name": TEXT})
    optional(record, "targets", st.lists(target, max_size=3))
    optional(
        record,
        "integration",
        st.fixed_dictionaries({"provider": SOME_TEXT}, optional={"connection_id": SOME_TEXT}),
    )
    optional(
        record,
        "workflow",
        st.fixed_dictionaries(
            {"run_id": SOME_TEXT},
            optional={"name": SOME_TEXT, "trigger": SOME_TEXT, "step": SOME_TEXT},
        ),
    )
    context = ("ip", "user_agent", "request_id", "trace_id", "session_id", "location")
    optional(record, "context", st.fixed_dictionaries({}, optional=dict.fromkeys(context, SOME_TEXT)))
    optional(record, "description", TEXT)
    optional(record, "metadata", st.dictionaries(TEXT, JSON_VALUES, max_size=4))
    return record


def is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in "\u2028\u2029"


@settings(max_examples=80, deadline=None)
@given(record=hostile_records())
def test_no_field_value_can_break_a_line_in_any_format(record: dict[str, Any]) -> None:
    for format in FORMATS:
        out = export(format, record)
        terminator = "\r\n" if format == "csv" else "\n"
        lines = out.split(terminator)
        assert lines[-1] == ""
        assert len(lines) == (3 if format == "csv" else 2), (format, out)
        for line in lines[:-1]:
            assert not any(is_control(char) for char in line), (format, line)


@settings(max_examples=80, deadline=None)
@given(record=hostile_records())
def test_every_format_still_parses_and_gives_the_values_back(record: dict[str, Any]) -> None:
    assert json.loads(export("ndjson", record)) == record
    event = json.loads(export("ocsf", record))
    assert event["metadata"]["uid"] == record["id"]
    assert event.get("message", "") == record.get("description", "")

    (row,) = csv_rows(export("csv", record))
    for column, value in (
        ("id", record["id"]),
        ("actor_id", record["actor"]["id"]),
        ("description", record.get("description", "")),
    ):
        guarded = "'" + value if value.startswith(("=", "+", "-", "@")) else value
        assert unescape_backslashes(row[column]) == guarded
    if "metadata" in record:
        assert json.loads(unescape_backslashes(row["metadata"])) == record["metadata"]

    params = syslog_params(export("syslog", record))
    assert params["id"] == record["id"]
    assert params["actor_id"] == record["actor"]["id"]

    _, extension = cef_fields(export("cef", record))
    assert extension["externalId"] == record["id"]
    assert extension.get("msg", "") == record.get("description", "")
