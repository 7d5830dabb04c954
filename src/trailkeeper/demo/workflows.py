"""The pipeline workflows: their signals, agents and steps, and what can go wrong at a step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trailkeeper.catalogue import (
    AGENT_ACTION_TAKEN,
    ALERT_SENT,
    CRM_TASK_CREATED,
    INTEGRATION_DATA_RETRIEVED,
    MEETING_SCHEDULED,
)
from trailkeeper.demo.beats import _Step
from trailkeeper.demo.people import _PIPELINE_AGENT, _PREP_AGENT, _ROUTING_AGENT, _Actor


@dataclass(frozen=True, slots=True)
class _Workflow:
    id: str
    name: str
    signal: str  # what the signal says, for people
    trigger: str  # the trigger as recorded in workflow.trigger
    agent: _Actor
    steps: tuple[_Step, ...]
    subject: str  # "opportunity" or "lead"


_STALLED_DEAL = _Workflow(
    "wf_stalled_deal", "Stalled deal follow-up", "deal stalled 14 days",
    "signal:deal_stalled_14_days", _PIPELINE_AGENT,
    (
        _Step("load_deal", INTEGRATION_DATA_RETRIEVED, "salesforce", object_type="Opportunity"),
        _Step("create_tasks", CRM_TASK_CREATED, "salesforce"),
        _Step("alert_slack", ALERT_SENT, "slack", destination="#deal-desk"),
        _Step("alert_email", ALERT_SENT, "gmail", destination="owner_email"),
        _Step("propose_times", AGENT_ACTION_TAKEN, "google_calendar", tool="calendar.freebusy"),
        _Step("schedule_meeting", MEETING_SCHEDULED, "google_calendar"),
    ),
    "opportunity",
)  # fmt: skip
_MEETING_PREP = _Workflow(
    "wf_meeting_prep", "Meeting prep brief", "meeting in 24 hours",
    "signal:meeting_in_24_hours", _PREP_AGENT,
    (
        _Step("read_calendar", INTEGRATION_DATA_RETRIEVED, "google_calendar", object_type="Event"),
        _Step("read_crm", INTEGRATION_DATA_RETRIEVED, "salesforce", object_type="Opportunity"),
        _Step("read_email", INTEGRATION_DATA_RETRIEVED, "gmail", object_type="Thread"),
        _Step("write_brief", AGENT_ACTION_TAKEN, tool="brief.compose"),
        _Step("send_brief", ALERT_SENT, "slack", destination="owner_dm"),
    ),
    "opportunity",
)  # fmt: skip


def _lead_routing(crm: str, object_type: str) -> _Workflow:
    steps = (
        _Step("load_lead", INTEGRATION_DATA_RETRIEVED, crm, object_type=object_type),
        _Step("assign_owner", AGENT_ACTION_TAKEN, tool="routing.territory_rules"),
        _Step("create_task", CRM_TASK_CREATED, "salesforce"),
        _Step("alert_slack", ALERT_SENT, "slack", destination="#inbound-leads"),
    )
    name, signal, trigger = "Inbound lead routing", "new inbound lead", "signal:new_inbound_lead"
    return _Workflow("wf_lead_routing", name, signal, trigger, _ROUTING_AGENT, steps, "lead")


# Leads come from HubSpot until its grant is revoked, then from Salesforce.
_LEAD_ROUTING = _lead_routing("hubspot", "Contact")
_LEAD_ROUTING_AFTER_REVOCATION = _lead_routing("salesforce", "Lead")
_SIGNALLED = (_STALLED_DEAL, _STALLED_DEAL, _STALLED_DEAL, _MEETING_PREP, _MEETING_PREP, _LEAD_ROUTING)

# What can go wrong at a step, by its action and the system it uses.
_RATE_LIMITED = "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded"
_EXPIRED = "INVALID_SESSION_ID: Session expired or invalid"
_LOCKED = "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record"
_NO_SLOT = "no common free slot in the next 5 business days"
_STEP_ERRORS: Mapping[tuple[str, str | None], tuple[str, ...]] = {
    (INTEGRATION_DATA_RETRIEVED, "salesforce"): (_RATE_LIMITED, _EXPIRED),
    (INTEGRATION_DATA_RETRIEVED, "hubspot"): ("429 Too Many Requests: ten-second rolling limit reached",),
    (INTEGRATION_DATA_RETRIEVED, "gmail"): ("429 rateLimitExceeded: user-rate limit exceeded",),
    (INTEGRATION_DATA_RETRIEVED, "google_calendar"): ("503 backendError: calendar service unavailable",),
    (CRM_TASK_CREATED, "salesforce"): (_RATE_LIMITED, _LOCKED),
    (ALERT_SENT, "slack"): ("channel_not_found", "ratelimited"),
    (ALERT_SENT, "gmail"): ("429 rateLimitExceeded: user-rate limit exceeded",),
    (AGENT_ACTION_TAKEN, "google_calendar"): ("403 forbiddenForNonOrganizer: free/busy not shared",),
    (AGENT_ACTION_TAKEN, None): ("model response timed out after 30 s",),
    (MEETING_SCHEDULED, "google_calendar"): (_NO_SLOT,),
}  # fmt: skip
_REVOKED_ERROR = "401 invalid_grant: the OAuth grant was revoked; reconnect HubSpot"
_TASK_TITLES = (
    "Call {owner} back about next steps",
    "Send a revised proposal",
    "Confirm the economic buyer",
    "Book a technical review",
)
_AGENT_SAYS = {
    "calendar.freebusy": "Proposed three meeting times for {subject} from {owner}'s calendar",
    "brief.compose": "Wrote a meeting brief on {subject} for {owner}",
    "routing.territory_rules": "Assigned {subject} to {owner} by territory",
}
