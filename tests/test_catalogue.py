"""The event catalogue: the platform's actions, their OCSF classes, and docs/events.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from trailkeeper import catalogue
from trailkeeper.catalogue import (
    CATALOGUE,
    OCSF_CLASSES,
    OTHER_ACTIVITY,
    lookup,
    ocsf_class_for,
    ocsf_type,
    render_markdown,
)

EVENTS_DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"

# Issue 7, point 1, verbatim: the actions the revenue platform records, by category.
ISSUE_7_ACTIONS = {
    "authentication": (
        "auth.login.attempted", "auth.login.succeeded", "auth.login.failed",
        "auth.sso.succeeded", "auth.sso.failed", "auth.logout", "auth.mfa.challenged",
        "auth.password.changed", "auth.session.expired",
    ),
    "user_activity": (
        "assistant.query.submitted", "workflow.triggered", "config.changed", "user.invited",
        "user.role.changed",
    ),
    "integration": (
        "integration.connected", "integration.disconnected", "integration.oauth.granted",
        "integration.oauth.revoked", "integration.oauth.refreshed",
        "integration.data.retrieved",
    ),
    "workflow": (
        "workflow.started", "workflow.completed", "workflow.failed", "alert.sent",
        "crm.task.created", "meeting.scheduled", "agent.action.taken",
    ),
}  # fmt: skip
# CONTRACT section 4: what the service records about its own log.
SYSTEM_ACTIONS = (
    "audit.log.read", "audit.log.exported", "audit.key.created", "audit.key.revoked",
    "audit.log.purged", "audit.service.started", "audit.service.stopped",
)  # fmt: skip
# The classes issue 7 names, and Application Lifecycle for the service's start and stop.
ALLOWED_CLASSES = {3001, 3002, 3004, 4009, 6001, 6002, 6003, 6005}


@pytest.mark.parametrize(
    ("category", "action"),
    [(category, action) for category, actions in ISSUE_7_ACTIONS.items() for action in actions],
)
def test_every_action_of_issue_7_is_catalogued_in_its_category(category: str, action: str) -> None:
    spec = lookup(action)
    assert spec is not None
    assert spec.category == category


@pytest.mark.parametrize("action", SYSTEM_ACTIONS)
def test_the_service_own_actions_are_catalogued_as_system(action: str) -> None:
    spec = lookup(action)
    assert spec is not None
    assert spec.category == "system"


@pytest.mark.parametrize("spec", CATALOGUE.values(), ids=lambda spec: spec.action)
def test_every_entry_maps_to_a_real_ocsf_class_and_activity(spec: catalogue.ActionSpec) -> None:
    assert spec.ocsf_class_uid in ALLOWED_CLASSES
    ocsf_class = OCSF_CLASSES[spec.ocsf_class_uid]
    assert spec.ocsf_class_name == ocsf_class.name
    assert spec.ocsf_activity_name == ocsf_class.activities[spec.ocsf_activity_id]
    # OCSF numbers classes within their category: 3002 is in category 3.
    assert spec.ocsf.category_uid == spec.ocsf_class_uid // 1000
    assert spec.ocsf.type_uid == spec.ocsf_class_uid * 100 + spec.ocsf_activity_id


@pytest.mark.parametrize("spec", CATALOGUE.values(), ids=lambda spec: spec.action)
def test_every_entry_says_what_it_means_and_carries(spec: catalogue.ActionSpec) -> None:
    assert spec.title
    assert spec.meaning.endswith(".")
    for field in spec.required_fields:
        assert field.split(".")[0] in ("context", "integration", "workflow")


def test_authentication_actions_map_to_logon_and_logoff() -> None:
    assert ocsf_class_for("authentication", "auth.sso.failed")[:3] == (3002, "Authentication", 1)
    assert ocsf_class_for("authentication", "auth.logout").activity_name == "Logoff"
    assert ocsf_class_for("authentication", "auth.password.changed").type_uid == 300103


def test_each_constant_holds_the_action_it_is_named_after() -> None:
    for action in CATALOGUE:
        assert getattr(catalogue, action.replace(".", "_").upper()) == action


def test_an_action_outside_the_catalogue_is_not_found() -> None:
    assert lookup("crm.deal.updated") is None


@pytest.mark.parametrize(
    ("category", "action", "expected"),
    [
        ("authentication", "auth.passkey.login", ("Authentication", "Logon")),
        ("authentication", "auth.token.minted", ("Authentication", "Other")),
        ("user_activity", "report.exported", ("Web Resources Activity", "Export")),
        ("user_activity", "dashboard.viewed", ("Web Resources Activity", "Read")),
        ("workflow", "crm.deal.updated", ("API Activity", "Update")),
        ("integration", "hubspot.contact.deleted", ("API Activity", "Delete")),
        ("integration", "hubspot.webhook.received", ("API Activity", "Other")),
        ("system", "audit.tile.written", ("API Activity", "Other")),
    ],
)
def test_an_action_outside_the_catalogue_gets_a_class_by_category_and_verb(
    category: str, action: str, expected: tuple[str, str]
) -> None:
    ocsf = ocsf_class_for(category, action)
    assert (ocsf.class_name, ocsf.activity_name) == expected


def test_an_unknown_category_falls_back_to_api_activity() -> None:
    assert ocsf_class_for("billing", "invoice.created")[:3] == (6003, "API Activity", 1)


def test_other_activity_is_99_in_every_class() -> None:
    for ocsf_class in OCSF_CLASSES.values():
        assert ocsf_class.activities[OTHER_ACTIVITY] == "Other"
        assert ocsf_class.activities[0] == "Unknown"


def test_an_alert_sent_by_email_is_email_activity_and_by_slack_api_activity() -> None:
    by_email = ocsf_class_for("workflow", "alert.sent", channel="email")
    by_slack = ocsf_class_for("workflow", "alert.sent", channel="slack")
    assert (by_email.class_uid, by_email.activity_name) == (4009, "Send")
    assert (by_slack.class_uid, by_slack.activity_name) == (6003, "Create")


def test_an_activity_the_class_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="no activity 'Logon'"):
        ocsf_type(6003, "Logon")


def test_docs_events_md_is_the_rendered_catalogue() -> None:
    assert EVENTS_DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/events.md is stale: run `python -m trailkeeper.catalogue > docs/events.md`"
    )


def test_the_markdown_has_a_table_per_category_listing_each_action_once() -> None:
    markdown = render_markdown()
    for heading in ("## Authentication", "## User activity", "## Integration", "## Workflow"):
        assert f"\n{heading}\n" in markdown
    assert "\n## System" in markdown
    for action in CATALOGUE:
        assert markdown.count(f"| `{action}` |") == 1
    assert "| `integration.data.retrieved` |" in markdown
    assert "`object_type`, `record_count` | Datastore Activity (6005): Query (4) |" in markdown


def test_main_prints_the_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert catalogue.main() == 0
    assert capsys.readouterr().out == render_markdown()
