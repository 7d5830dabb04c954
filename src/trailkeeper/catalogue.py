"""The revenue platform's actions, as data: the event catalogue.

For every action a producer of the platform is expected to record, the catalogue says its
category, what it means, which targets, fields and metadata it carries, and the OCSF 1.3.0
event class and activity an export maps it to. ``docs/events.md`` is rendered from here
(``python -m trailkeeper.catalogue``), so the documentation cannot drift from the code.

Events stay open-ended: a producer may record any action. :func:`ocsf_class_for` gives an
action outside the catalogue a class chosen by its category and an activity read from the
verbs in its name.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple

from trailkeeper.events import CATEGORIES

OCSF_VERSION: Final = "1.3.0"

# OCSF 1.3.0 event classes used by the catalogue: uid, name, category, and activity names
# numbered from 1. Every class also has 0 "Unknown" and 99 "Other" (the activity is then
# named by activity_name).
_IAM = (3, "Identity & Access Management")
_NETWORK = (4, "Network Activity")
_APPLICATION = (6, "Application Activity")
_CLASS_TABLE: Final = (
    (3001, "Account Change", _IAM, ("Create", "Enable", "Password Change", "Password Reset",
     "Disable", "Delete", "Attach Policy", "Detach Policy", "Lock", "MFA Factor Enable",
     "MFA Factor Disable")),
    (3002, "Authentication", _IAM, ("Logon", "Logoff", "Authentication Ticket",
     "Service Ticket Request", "Service Ticket Renew", "Preauth")),
    (3004, "Entity Management", _IAM, ("Create", "Read", "Update", "Delete", "Move", "Enroll",
     "Unenroll", "Enable", "Disable", "Activate", "Deactivate", "Suspend", "Resume")),
    (4009, "Email Activity", _NETWORK, ("Send", "Receive", "Scan", "Trace")),
    (6001, "Web Resources Activity", _APPLICATION, ("Create", "Read", "Update", "Delete",
     "Search", "Import", "Export", "Share")),
    (6002, "Application Lifecycle", _APPLICATION, ("Install", "Remove", "Start", "Stop",
     "Restart", "Enable", "Disable", "Update")),
    (6003, "API Activity", _APPLICATION, ("Create", "Read", "Update", "Delete")),
    (6005, "Datastore Activity", _APPLICATION, ("Read", "Update", "Connect", "Query", "Write",
     "Create", "Delete", "List", "Encrypt", "Decrypt")),
)  # fmt: skip

UNKNOWN_ACTIVITY: Final = 0
OTHER_ACTIVITY: Final = 99


@dataclass(frozen=True)
class OcsfClass:
    """One OCSF event class: its uid and name, its category, and its activities by id."""

    uid: int
    name: str
    category_uid: int
    category_name: str
    activities: Mapping[int, str]

    def activity_id(self, activity_name: str) -> int | None:
        for activity_id, name in self.activities.items():
            if name == activity_name:
                return activity_id
        return None


OCSF_CLASSES: Final[Mapping[int, OcsfClass]] = MappingProxyType(
    {
        uid: OcsfClass(
            uid,
            name,
            category[0],
            category[1],
            MappingProxyType(
                {UNKNOWN_ACTIVITY: "Unknown"}
                | dict(enumerate(activities, start=1))
                | {OTHER_ACTIVITY: "Other"}
            ),
        )
        for uid, name, category, activities in _CLASS_TABLE
    }
)

ACCOUNT_CHANGE: Final = 3001
AUTHENTICATION_CLASS: Final = 3002
ENTITY_MANAGEMENT: Final = 3004
EMAIL_ACTIVITY: Final = 4009
WEB_RESOURCES_ACTIVITY: Final = 6001
APPLICATION_LIFECYCLE: Final = 6002
API_ACTIVITY: Final = 6003
DATASTORE_ACTIVITY: Final = 6005


class OcsfType(NamedTuple):
    """An OCSF class and activity; together they make the event's ``type_uid``."""

    class_uid: int
    class_name: str
    activity_id: int

    @property
    def ocsf_class(self) -> OcsfClass:
        return OCSF_CLASSES[self.class_uid]

    @property
    def activity_name(self) -> str:
        return self.ocsf_class.activities[self.activity_id]

    @property
    def category_uid(self) -> int:
        return self.ocsf_class.category_uid

    @property
    def category_name(self) -> str:
        return self.ocsf_class.category_name

    @property
    def type_uid(self) -> int:
        # OCSF: type_uid = class_uid * 100 + activity_id.
        return self.class_uid * 100 + self.activity_id

    @property
    def type_name(self) -> str:
        return f"{self.class_name}: {self.activity_name}"


def ocsf_type(class_uid: int, activity: str) -> OcsfType:
    """The OCSF type of a class and an activity named as the schema names it."""
    ocsf_class = OCSF_CLASSES[class_uid]
    activity_id = ocsf_class.activity_id(activity)
    if activity_id is None:
        raise ValueError(f"OCSF class {ocsf_class.name} has no activity {activity!r}")
    return OcsfType(class_uid, ocsf_class.name, activity_id)


@dataclass(frozen=True)
class ActionSpec:
    """What one action of the catalogue means and carries.

    ``required_targets`` are target types, ``required_fields`` dotted event fields beyond the
    ones every event has (``integration.provider``, ``workflow.run_id``...), and
    ``required_metadata`` keys of ``metadata``. ``channel_ocsf`` overrides the OCSF type when
    ``metadata.channel`` names a channel with a class of its own (an alert sent by email).
    """

    action: str
    category: str
    title: str
    meaning: str
    ocsf: OcsfType
    required_targets: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ()
    required_metadata: tuple[str, ...] = ()
    channel_ocsf: tuple[tuple[str, OcsfType], ...] = ()

    @property
    def ocsf_class_uid(self) -> int:
        return self.ocsf.class_uid

    @property
    def ocsf_class_name(self) -> str:
        return self.ocsf.class_name

    @property
    def ocsf_activity_id(self) -> int:
        return self.ocsf.activity_id

    @property
    def ocsf_activity_name(self) -> str:
        return self.ocsf.activity_name

    def ocsf_for_channel(self, channel: object) -> OcsfType:
        for name, override in self.channel_ocsf:
            if channel == name:
                return override
        return self.ocsf


# authentication
AUTH_LOGIN_ATTEMPTED: Final = "auth.login.attempted"
AUTH_LOGIN_SUCCEEDED: Final = "auth.login.succeeded"
AUTH_LOGIN_FAILED: Final = "auth.login.failed"
AUTH_SSO_SUCCEEDED: Final = "auth.sso.succeeded"
AUTH_SSO_FAILED: Final = "auth.sso.failed"
AUTH_LOGOUT: Final = "auth.logout"
AUTH_MFA_CHALLENGED: Final = "auth.mfa.challenged"
AUTH_PASSWORD_CHANGED: Final = "auth.password.changed"  # noqa: S105 (an action name, not a secret)
AUTH_SESSION_EXPIRED: Final = "auth.session.expired"
# user_activity
ASSISTANT_QUERY_SUBMITTED: Final = "assistant.query.submitted"
WORKFLOW_TRIGGERED: Final = "workflow.triggered"
CONFIG_CHANGED: Final = "config.changed"
USER_INVITED: Final = "user.invited"
USER_ROLE_CHANGED: Final = "user.role.changed"
# integration
INTEGRATION_CONNECTED: Final = "integration.connected"
INTEGRATION_DISCONNECTED: Final = "integration.disconnected"
INTEGRATION_OAUTH_GRANTED: Final = "integration.oauth.granted"
INTEGRATION_OAUTH_REVOKED: Final = "integration.oauth.revoked"
INTEGRATION_OAUTH_REFRESHED: Final = "integration.oauth.refreshed"
INTEGRATION_DATA_RETRIEVED: Final = "integration.data.retrieved"
# workflow
WORKFLOW_STARTED: Final = "workflow.started"
WORKFLOW_COMPLETED: Final = "workflow.completed"
WORKFLOW_FAILED: Final = "workflow.failed"
ALERT_SENT: Final = "alert.sent"
CRM_TASK_CREATED: Final = "crm.task.created"
MEETING_SCHEDULED: Final = "meeting.scheduled"
AGENT_ACTION_TAKEN: Final = "agent.action.taken"
# system: what the service records about its own log (CONTRACT section 4)
AUDIT_LOG_READ: Final = "audit.log.read"
AUDIT_LOG_EXPORTED: Final = "audit.log.exported"
AUDIT_KEY_CREATED: Final = "audit.key.created"
AUDIT_KEY_REVOKED: Final = "audit.key.revoked"
AUDIT_LOG_PURGED: Final = "audit.log.purged"
AUDIT_SERVICE_STARTED: Final = "audit.service.started"
AUDIT_SERVICE_STOPPED: Final = "audit.service.stopped"

_LOGON = ocsf_type(AUTHENTICATION_CLASS, "Logon")
_LOGOFF = ocsf_type(AUTHENTICATION_CLASS, "Logoff")
_CONNECTION = ("integration.provider", "integration.connection_id")
_RUN = ("workflow.run_id",)

_SPECS: Final = (
    ActionSpec(
        AUTH_LOGIN_ATTEMPTED, "authentication", "Login attempted",
        "Someone submitted credentials to the platform's own login form; "
        "auth.login.succeeded or auth.login.failed follows.",
        _LOGON, required_fields=("context.ip",), required_metadata=("method",),
    ),
    ActionSpec(
        AUTH_LOGIN_SUCCEEDED, "authentication", "Login succeeded",
        "A person signed in with the platform's own credentials and a session began.",
        _LOGON, required_fields=("context.ip",), required_metadata=("method",),
    ),
    ActionSpec(
        AUTH_LOGIN_FAILED, "authentication", "Login failed",
        "Credentials were refused (outcome failure); a burst of these from one IP is how "
        "brute force shows.",
        _LOGON, required_fields=("context.ip",), required_metadata=("method", "reason"),
    ),
    ActionSpec(
        AUTH_SSO_SUCCEEDED, "authentication", "SSO login succeeded",
        "A person signed in through the organisation's identity provider; protocol is saml "
        "or oidc, idp names the provider.",
        _LOGON, required_fields=("context.ip",), required_metadata=("protocol", "idp"),
    ),
    ActionSpec(
        AUTH_SSO_FAILED, "authentication", "SSO login failed",
        "The identity provider's assertion or token was refused (outcome failure): expired, "
        "wrong audience, unknown user.",
        _LOGON, required_fields=("context.ip",),
        required_metadata=("protocol", "idp", "reason"),
    ),
    ActionSpec(
        AUTH_LOGOUT, "authentication", "Logout",
        "A person ended their session.",
        _LOGOFF, required_fields=("context.session_id",),
    ),
    ActionSpec(
        AUTH_MFA_CHALLENGED, "authentication", "MFA challenged",
        "A second factor was asked for during sign-in; the outcome says whether it was met.",
        # OCSF has no activity for a second-factor challenge: Other, named by activity_name.
        OcsfType(AUTHENTICATION_CLASS, "Authentication", OTHER_ACTIVITY),
        required_metadata=("factor",),
    ),
    ActionSpec(
        AUTH_PASSWORD_CHANGED, "authentication", "Password changed",
        "An account's password was changed, by its owner or by an administrator (the actor).",
        ocsf_type(ACCOUNT_CHANGE, "Password Change"), required_targets=("user",),
    ),
    ActionSpec(
        AUTH_SESSION_EXPIRED, "authentication", "Session expired",
        "A session ended because it reached its idle or absolute lifetime; reason says which.",
        _LOGOFF, required_fields=("context.session_id",), required_metadata=("reason",),
    ),
    ActionSpec(
        ASSISTANT_QUERY_SUBMITTED, "user_activity", "Assistant query submitted",
        "A person asked the conversational assistant a question.",
        ocsf_type(WEB_RESOURCES_ACTIVITY, "Search"), required_metadata=("conversation_id",),
    ),
    ActionSpec(
        WORKFLOW_TRIGGERED, "user_activity", "Workflow triggered",
        "A person started a workflow run by hand; runs that signals start record only "
        "workflow.started.",
        ocsf_type(API_ACTIVITY, "Create"), required_targets=("workflow",),
        required_fields=_RUN,
    ),
    ActionSpec(
        CONFIG_CHANGED, "user_activity", "Configuration changed",
        "A setting changed; before and after hold its values with secrets redacted.",
        ocsf_type(ENTITY_MANAGEMENT, "Update"),
        required_metadata=("setting", "before", "after"),
    ),
    ActionSpec(
        USER_INVITED, "user_activity", "User invited",
        "A person was invited to the organisation with a role.",
        ocsf_type(ACCOUNT_CHANGE, "Create"), required_targets=("user",),
        required_metadata=("role",),
    ),
    ActionSpec(
        USER_ROLE_CHANGED, "user_activity", "User role changed",
        "A person's role changed from before to after; the actor is who changed it.",
        ocsf_type(ACCOUNT_CHANGE, "Attach Policy"), required_targets=("user",),
        required_metadata=("before", "after"),
    ),
    ActionSpec(
        INTEGRATION_CONNECTED, "integration", "Integration connected",
        "A connection to an outside system (CRM, Slack, email, calendar, intelligence "
        "provider) was set up.",
        ocsf_type(ENTITY_MANAGEMENT, "Create"), required_fields=_CONNECTION,
    ),
    ActionSpec(
        INTEGRATION_DISCONNECTED, "integration", "Integration disconnected",
        "A connection was removed; no data flows through it any more.",
        ocsf_type(ENTITY_MANAGEMENT, "Delete"), required_fields=_CONNECTION,
    ),
    ActionSpec(
        INTEGRATION_OAUTH_GRANTED, "integration", "OAuth access granted",
        "A person granted the platform OAuth access to a connected system, with these scopes.",
        ocsf_type(ENTITY_MANAGEMENT, "Create"), required_fields=_CONNECTION,
        required_metadata=("scopes",),
    ),
    ActionSpec(
        INTEGRATION_OAUTH_REVOKED, "integration", "OAuth access revoked",
        "The grant was withdrawn, by a person or by the provider; the connection stops "
        "working until access is granted again.",
        ocsf_type(ENTITY_MANAGEMENT, "Delete"), required_fields=_CONNECTION,
    ),
    ActionSpec(
        INTEGRATION_OAUTH_REFRESHED, "integration", "OAuth token refreshed",
        "The platform exchanged a refresh token for a new access token.",
        ocsf_type(ENTITY_MANAGEMENT, "Update"), required_fields=_CONNECTION,
        required_metadata=("expires_at",),
    ),
    ActionSpec(
        INTEGRATION_DATA_RETRIEVED, "integration", "Data retrieved",
        "The platform read records of one object type from a connected system.",
        ocsf_type(DATASTORE_ACTIVITY, "Query"), required_fields=("integration.provider",),
        required_metadata=("object_type", "record_count"),
    ),
    ActionSpec(
        WORKFLOW_STARTED, "workflow", "Workflow started",
        "A workflow run began; trigger names the signal, schedule or person that started it.",
        ocsf_type(API_ACTIVITY, "Create"), required_fields=(*_RUN, "workflow.trigger"),
    ),
    ActionSpec(
        WORKFLOW_COMPLETED, "workflow", "Workflow completed",
        "A workflow run finished every step.",
        ocsf_type(API_ACTIVITY, "Update"), required_fields=_RUN,
    ),
    ActionSpec(
        WORKFLOW_FAILED, "workflow", "Workflow failed",
        "A workflow run stopped at a step with an error (outcome failure), with the trigger "
        "signal that started it.",
        ocsf_type(API_ACTIVITY, "Update"),
        required_fields=(*_RUN, "workflow.trigger", "workflow.step"),
        required_metadata=("error",),
    ),
    ActionSpec(
        ALERT_SENT, "workflow", "Alert sent",
        "A notification went out; channel is slack or email, destination the Slack channel "
        "or the address.",
        ocsf_type(API_ACTIVITY, "Create"), required_metadata=("channel", "destination"),
        channel_ocsf=(("email", ocsf_type(EMAIL_ACTIVITY, "Send")),),
    ),
    ActionSpec(
        CRM_TASK_CREATED, "workflow", "CRM task created",
        "A task was created in the CRM, usually for the owner of a deal.",
        ocsf_type(API_ACTIVITY, "Create"), required_targets=("task",),
        required_fields=("integration.provider",),
    ),
    ActionSpec(
        MEETING_SCHEDULED, "workflow", "Meeting scheduled",
        "A meeting was put on the attendees' calendars.",
        ocsf_type(API_ACTIVITY, "Create"), required_targets=("meeting",),
        required_fields=("integration.provider",), required_metadata=("starts_at",),
    ),
    ActionSpec(
        AGENT_ACTION_TAKEN, "workflow", "Agent action taken",
        "An AI revenue agent (actor type agent) acted on its own; tool names what it used.",
        OcsfType(API_ACTIVITY, "API Activity", OTHER_ACTIVITY), required_metadata=("tool",),
    ),
    ActionSpec(
        AUDIT_LOG_READ, "system", "Audit log read",
        "An API key read the log; operation is search, get, stats, workflow_run or proof.",
        ocsf_type(DATASTORE_ACTIVITY, "Read"), required_metadata=("operation",),
    ),
    ActionSpec(
        AUDIT_LOG_EXPORTED, "system", "Audit log exported",
        "An API key exported events in a format.",
        ocsf_type(WEB_RESOURCES_ACTIVITY, "Export"), required_metadata=("format",),
    ),
    ActionSpec(
        AUDIT_KEY_CREATED, "system", "API key created",
        "An API key was created with these scopes; only its hash is stored.",
        ocsf_type(ENTITY_MANAGEMENT, "Create"), required_targets=("api_key",),
        required_metadata=("scopes",),
    ),
    ActionSpec(
        AUDIT_KEY_REVOKED, "system", "API key revoked",
        "An API key was revoked; it stops working at once.",
        ocsf_type(ENTITY_MANAGEMENT, "Delete"), required_targets=("api_key",),
    ),
    ActionSpec(
        AUDIT_LOG_PURGED, "system", "Audit log purged",
        "Retention purged the bodies of events older than cutoff; their leaf hashes stay, "
        "so checkpoints and proofs still check.",
        ocsf_type(DATASTORE_ACTIVITY, "Delete"), required_metadata=("cutoff", "purged_count"),
    ),
    ActionSpec(
        AUDIT_SERVICE_STARTED, "system", "Service started",
        "The trailkeeper server started.",
        ocsf_type(APPLICATION_LIFECYCLE, "Start"), required_metadata=("version",),
    ),
    ActionSpec(
        AUDIT_SERVICE_STOPPED, "system", "Service stopped",
        "The trailkeeper server stopped, after finishing what it had acknowledged.",
        ocsf_type(APPLICATION_LIFECYCLE, "Stop"),
    ),
)  # fmt: skip

CATALOGUE: Final[Mapping[str, ActionSpec]] = MappingProxyType({s.action: s for s in _SPECS})

# The class an action outside the catalogue gets from its category.
_CLASS_BY_CATEGORY: Final = MappingProxyType(
    {
        "authentication": AUTHENTICATION_CLASS,
        "user_activity": WEB_RESOURCES_ACTIVITY,
        "integration": API_ACTIVITY,
        "workflow": API_ACTIVITY,
        "system": API_ACTIVITY,
    }
)

# Words of an action's name and the OCSF activity they suggest; one only counts when the
# class has that activity (a "sent" user activity stays Other).
_VERB_ACTIVITY: Final = MappingProxyType(
    {
        "login": "Logon", "logon": "Logon", "signin": "Logon",
        "logout": "Logoff", "logoff": "Logoff", "signout": "Logoff",
        "created": "Create", "added": "Create", "invited": "Create",
        "read": "Read", "viewed": "Read", "opened": "Read", "retrieved": "Read",
        "fetched": "Read", "downloaded": "Read",
        "updated": "Update", "changed": "Update", "edited": "Update", "renamed": "Update",
        "deleted": "Delete", "removed": "Delete", "archived": "Delete",
        "searched": "Search", "queried": "Search",
        "exported": "Export", "imported": "Import", "shared": "Share",
        "sent": "Send", "received": "Receive",
        "started": "Start", "stopped": "Stop",
    }
)  # fmt: skip


def lookup(action: str) -> ActionSpec | None:
    """The catalogue's entry for an action, or None for an action it does not list."""
    return CATALOGUE.get(action)


def ocsf_class_for(category: str, action: str, *, channel: object = None) -> OcsfType:
    """The OCSF class and activity of an event: the catalogue's for a listed action (or its
    channel's, see :class:`ActionSpec`), else a class by category and an activity read from
    the action's words, last word first, falling back to Other."""
    spec = CATALOGUE.get(action)
    if spec is not None:
        return spec.ocsf_for_channel(channel)
    ocsf_class = OCSF_CLASSES[_CLASS_BY_CATEGORY.get(category, API_ACTIVITY)]
    for word in reversed(action.split(".")):
        activity = _VERB_ACTIVITY.get(word)
        activity_id = ocsf_class.activity_id(activity) if activity else None
        if activity_id is not None:
            return OcsfType(ocsf_class.uid, ocsf_class.name, activity_id)
    return OcsfType(ocsf_class.uid, ocsf_class.name, OTHER_ACTIVITY)


_CATEGORY_HEADINGS: Final = MappingProxyType(
    {
        "authentication": "Authentication",
        "user_activity": "User activity",
        "integration": "Integration",
        "workflow": "Workflow",
        "system": "System (recorded by trailkeeper about its own log)",
    }
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _codes(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "-"


def _ocsf_cell(spec: ActionSpec) -> str:
    def one(ocsf: OcsfType) -> str:
        return f"{ocsf.class_name} ({ocsf.class_uid}): {ocsf.activity_name} ({ocsf.activity_id})"

    text = one(spec.ocsf)
    for channel, override in spec.channel_ocsf:
        text += f"; channel `{channel}`: {one(override)}"
    return text


def render_markdown() -> str:
    """``docs/events.md``: the catalogue as one table per category."""
    lines = [
        "# Event catalogue",
        "",
        "<!-- Rendered from src/trailkeeper/catalogue.py by `python -m trailkeeper.catalogue`;",
        "     edit the code, not this file. -->",
        "",
        "The actions a revenue platform records in trailkeeper, by category. Every event also",
        "carries `category`, `action`, `actor` and, when it did not succeed, `outcome`",
        "(CONTRACT section 2). *Fields* are the other event fields an action needs, *targets*",
        "the types of its `targets`, *metadata* the keys of its `metadata`. The last column",
        f"is the OCSF {OCSF_VERSION} class and activity of the `ocsf` export.",
        "",
        "Any other action may be recorded too. Its OCSF class then follows its category",
        "(authentication: Authentication; user activity: Web Resources Activity; integration,",
        "workflow and system: API Activity), and its activity the verbs of its name",
        "(`report.exported` is Export, `crm.deal.updated` is Update), else Other (99).",
        "",
        "In code, each action is a constant of `trailkeeper.catalogue`",
        '(`AUTH_LOGIN_FAILED == "auth.login.failed"`), and `lookup(action)` returns its entry.',
    ]
    for category in CATEGORIES:
        specs = [spec for spec in _SPECS if spec.category == category]
        lines += [
            "",
            f"## {_CATEGORY_HEADINGS[category]}",
            "",
            "| action | meaning | fields | targets | metadata | OCSF class: activity |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| `{spec.action}` | {_cell(spec.meaning)} | {_codes(spec.required_fields)} "
            f"| {_codes(spec.required_targets)} | {_codes(spec.required_metadata)} "
            f"| {_ocsf_cell(spec)} |"
            for spec in specs
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
