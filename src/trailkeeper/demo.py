"""The demo tenant: a revenue team's platform over six weeks (issue 7, point 3).

:func:`generate` plans a fictional organisation, Larkspur (fifty people at ``larkspur.example``),
and streams the events its revenue platform records between :data:`WINDOW_START` and
:data:`WINDOW_END`: sign-ins through Okta (SAML and OIDC) or with a password, MFA challenges,
assistant questions, settings and people administration, five connected systems with their
OAuth grants and token refreshes, scheduled syncs, and the runs of three pipeline workflows
started by signals or by people. Planted among them are the stories an investigation should
find, and :class:`DemoFacts` names each of them exactly: one brute-force burst, one login from
a new country, one revoked integration, failed runs, a complete run from signal to meeting.

The generator is pure and deterministic: no I/O, no clock, no iteration over hash-ordered
sets; one seed and one size give the same stream, byte for byte. It is planned as a list of
episodes (a session, a workflow run, a sync...), each with a seed of its own, so that an
episode can be scripted twice: once while planning, to count its events and learn the facts,
and once while streaming, to render them. A million events are never held at once: episodes
overlap in time, and a heap merges their events into ``occurred_at`` order.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from trailkeeper.catalogue import (
    AGENT_ACTION_TAKEN,
    ALERT_SENT,
    ASSISTANT_QUERY_SUBMITTED,
    AUTH_LOGIN_ATTEMPTED,
    AUTH_LOGIN_FAILED,
    AUTH_LOGIN_SUCCEEDED,
    AUTH_LOGOUT,
    AUTH_MFA_CHALLENGED,
    AUTH_PASSWORD_CHANGED,
    AUTH_SESSION_EXPIRED,
    AUTH_SSO_FAILED,
    AUTH_SSO_SUCCEEDED,
    CATALOGUE,
    CONFIG_CHANGED,
    CRM_TASK_CREATED,
    INTEGRATION_CONNECTED,
    INTEGRATION_DATA_RETRIEVED,
    INTEGRATION_DISCONNECTED,
    INTEGRATION_OAUTH_GRANTED,
    INTEGRATION_OAUTH_REFRESHED,
    INTEGRATION_OAUTH_REVOKED,
    MEETING_SCHEDULED,
    USER_INVITED,
    USER_ROLE_CHANGED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_STARTED,
    WORKFLOW_TRIGGERED,
)
from trailkeeper.errors import InvalidArgument
from trailkeeper.events import MAX_BATCH

Event = dict[str, Any]

# Times are integer microseconds after WINDOW_START: cheap to draw, add and compare.
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

WINDOW_DAYS = 42
WINDOW_END = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday: six whole weeks, Monday to Sunday
WINDOW_START = WINDOW_END - timedelta(days=WINDOW_DAYS)
DOMAIN = "larkspur.example"  # RFC 2606 reserves .example for names like this one
TENANT = "demo"
PEOPLE = 50
MIN_EVENTS = 500  # the planted stories take a few hundred events of their own
BATCH_SIZE = MAX_BATCH

_LATEST_START = WINDOW_DAYS * DAY - 12 * HOUR  # room for the longest episode before the end
_IDLE_TIMEOUT = 30 * MINUTE  # the value the go-live settings choose
_MASK64 = (1 << 64) - 1

# --- time -----------------------------------------------------------------------------------

_DAY_PREFIXES = tuple(
    (WINDOW_START + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(WINDOW_DAYS)
)


def _timestamp(at: int) -> str:
    """The stored form of a time (CONTRACT section 2; RFC 3339 section 5.6, UTC with
    microseconds), by arithmetic for the window's days: strftime would be most of the cost of
    an event."""
    day, rest = divmod(at, DAY)
    if 0 <= day < WINDOW_DAYS:
        hour, rest = divmod(rest, HOUR)
        minute, rest = divmod(rest, MINUTE)
        second, micro = divmod(rest, SECOND)
        return f"{_DAY_PREFIXES[day]}{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}Z"
    return (WINDOW_START + timedelta(microseconds=at)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_weekend(day: int) -> bool:
    return (WINDOW_START + timedelta(days=day)).weekday() >= 5


_DAYS = range(WINDOW_DAYS)
_DAY_CUM_WEIGHTS = tuple(itertools.accumulate(0.06 if _is_weekend(d) else 1.0 for d in _DAYS))
_WEEKDAYS = tuple(d for d in _DAYS if not _is_weekend(d))


def _between(rng: random.Random, low: float, high: float) -> int:
    """A pause of ``low`` to ``high`` seconds."""
    return int((low + (high - low) * rng.random()) * SECOND)


def _working_moment(rng: random.Random, utc_offset: int, earliest: int) -> int:
    """A moment of someone's working day: mostly a weekday, 7:30 to 19:00 local time."""
    while True:
        day = rng.choices(_DAYS, cum_weights=_DAY_CUM_WEIGHTS)[0]
        local_hour = rng.triangular(7.5, 19.0, 10.5)
        at = day * DAY + int((local_hour - utc_offset) * HOUR)
        if earliest <= at < _LATEST_START:
            return at


def _story_moment(rng: random.Random, first_day: int, last_day: int, utc_hour: float) -> int:
    """A weekday between two days of the window, at about an hour (UTC) of that day."""
    day = rng.choice([d for d in _WEEKDAYS if first_day <= d <= last_day])
    return day * DAY + int(utc_hour * HOUR) + _between(rng, 0, 40 * 60)


# --- the organisation -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    location: str
    ip: str


@dataclass(frozen=True, slots=True)
class _Office:
    location: str
    utc_offset: int  # hours; daylight saving is ignored: local times only need to be plausible
    egress_ip: str


# Every address is in an RFC 5737 documentation range.
_OFFICES = (
    _Office("San Francisco, US", -8, "198.51.100.10"),
    _Office("New York, US", -5, "198.51.100.20"),
    _Office("Austin, US", -6, "198.51.100.30"),
    _Office("Toronto, CA", -5, "198.51.100.40"),
    _Office("London, GB", 0, "198.51.100.50"),
)
_OFFICE_CUM_WEIGHTS = (4, 8, 11, 12, 14)
_ATTACKER = _Place("Amsterdam, NL", "203.0.113.66")
_TRAVEL = _Place("Lisbon, PT", "203.0.113.201")
_ATTACKER_AGENT = "python-requests/2.32.3"

_BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:132.0) Gecko/20100101 Firefox/132.0",
)
_MOBILE_APP = "LarkspurRevenue/4.12.0 (iPhone; iOS 18.1; Scale/3.00)"

_ROLES = (
    ("admin", 2),
    ("revops", 3),
    ("executive", 2),
    ("sales_manager", 5),
    ("account_executive", 18),
    ("sdr", 14),
    ("customer_success", 6),
)
_SELLERS = ("account_executive", "sales_manager")

_FIRST_NAMES = (
    "Ada", "Amara", "Ben", "Bianca", "Caleb", "Chloe", "Dana", "Diego", "Elena", "Emeka",
    "Farah", "Felix", "Grace", "Gustavo", "Hana", "Hugo", "Imani", "Isaac", "Jade", "Jonas",
    "Kai", "Keiko", "Leila", "Liam", "Maya", "Mateo", "Nadia", "Noah", "Olivia", "Omar",
    "Priya", "Quinn", "Rafael", "Rosa", "Samir", "Sofia", "Tariq", "Tessa", "Uma", "Victor",
    "Wen", "Willa", "Xavier", "Yara", "Yusuf", "Zoe", "Aiden", "Beatriz", "Connor", "Daria",
    "Ezra", "Freya", "Gideon", "Ines", "Jasper", "Kiara", "Lucas", "Mira", "Nico", "Ophelia",
)  # fmt: skip
_LAST_NAMES = (
    "Abara", "Bergstrom", "Castillo", "Dubois", "Eriksen", "Fontaine", "Gallagher", "Haddad",
    "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov",
    "Quintero", "Rahman", "Santos", "Takahashi", "Ueda", "Varga", "Whitfield", "Xu", "Yilmaz",
    "Zimmermann", "Achterberg", "Bianchi", "Chen", "Delgado", "Esposito", "Fischer", "Gupta",
    "Horvat", "Iyer", "Jovanovic", "Kim", "Larsen", "Mensah", "Novak", "Ortega", "Park",
    "Ramirez", "Schulz", "Tanaka", "Usman", "Valdez", "Weber", "Young", "Zhang",
    "Adeyemi", "Brennan", "Costa", "Dimitrov", "Eklund", "Farouk", "Grant", "Holm", "Ito",
    "Jaramillo",
)  # fmt: skip
_ACCOUNT_WORDS = (
    "Acme", "Birchwood", "Cobalt", "Driftwood", "Evergreen", "Foxglove", "Granite", "Harbor",
    "Ironclad", "Juniper", "Kestrel", "Lumen", "Meridian", "Northwind", "Orchid", "Pinnacle",
    "Quarry", "Redwood", "Summit", "Tidewater", "Umber", "Vantage", "Willow", "Yarrow",
)  # fmt: skip
_ACCOUNT_KINDS = ("Robotics", "Health", "Logistics", "Analytics", "Foods", "Energy", "Capital",
                  "Software", "Media", "Labs")  # fmt: skip
_DEAL_KINDS = ("New business", "Expansion", "Renewal", "Pilot")
_STAGES = ("Discovery", "Evaluation", "Proposal", "Negotiation")


@dataclass(frozen=True, slots=True)
class _Person:
    id: str
    name: str
    email: str
    role: str
    office: _Office
    ip: str
    user_agent: str
    password_login: bool  # one of the few accounts outside SSO
    invited_at: int | None  # invited during the window, else None
    active_from: int  # nothing of theirs happens before this

    def actor(self) -> dict[str, str]:
        return {"type": "user", "id": self.id, "name": self.name, "email": self.email}

    def target(self) -> dict[str, str]:
        return {"type": "user", "id": self.id, "name": self.name}

    @property
    def handle(self) -> str:
        return self.email.partition("@")[0]


@dataclass(frozen=True, slots=True)
class _Connection:
    provider: str
    id: str
    title: str
    scopes: tuple[str, ...]
    objects: tuple[str, ...]  # object types a sync reads

    def integration(self) -> dict[str, str]:
        return {"provider": self.provider, "connection_id": self.id}

    def target(self) -> dict[str, str]:
        return {"type": "connection", "id": self.id, "name": self.title}


# provider, title, OAuth scopes, object types
_PROVIDERS = (
    ("salesforce", "Salesforce", ("api", "refresh_token"),
     ("Opportunity", "Account", "Contact", "Task", "Lead")),
    ("hubspot", "HubSpot", ("crm.objects.contacts.read", "crm.objects.deals.read", "oauth"),
     ("Contact", "Company", "Deal")),
    ("slack", "Slack", ("chat:write", "channels:read", "users:read"), ("Channel", "User")),
    ("gmail", "Gmail", ("gmail.readonly", "gmail.send"), ("Message", "Thread")),
    ("google_calendar", "Google Calendar", ("calendar.events",), ("Event", "FreeBusy")),
)  # fmt: skip
_REVOKED_PROVIDER = "hubspot"


@dataclass(frozen=True, slots=True)
class _Deal:
    id: str
    name: str
    account: str
    stage: str
    amount: int
    owner: _Person

    def target(self) -> dict[str, str]:
        return {"type": "opportunity", "id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class _Actor:
    type: str
    id: str
    name: str

    def actor(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id, "name": self.name}


_PIPELINE_AGENT = _Actor("agent", "agt_pipeline", "Pipeline Agent")
_PREP_AGENT = _Actor("agent", "agt_meeting_prep", "Meeting Prep Agent")
_ROUTING_AGENT = _Actor("agent", "agt_lead_router", "Lead Routing Agent")
_SYNC_SERVICE = _Actor("service", "svc_sync", "Scheduled sync")
_TOKEN_SERVICE = _Actor("service", "svc_token_refresh", "Token refresher")
_PLATFORM = _Actor("system", "system", "Larkspur platform")


@dataclass(frozen=True)
class _Org:
    people: tuple[_Person, ...]
    admins: tuple[_Person, ...]
    connections: Mapping[str, _Connection]
    deals: tuple[_Deal, ...]
    go_live: int  # the morning the integrations are connected
    open_from: int  # everyday activity starts once go-live is done
    revocation: int  # the HubSpot grant is revoked in a session starting then


def _opaque_ids(rng: random.Random, prefix: str, count: int, digits: int) -> list[str]:
    return [f"{prefix}{n:0{digits}x}" for n in rng.sample(range(16**digits), count)]


def _build_org(rng: random.Random) -> _Org:
    go_live = 14 * HOUR + _between(rng, 0, 20 * 60)  # day 0, nine in the morning in New York
    open_from = go_live + 90 * MINUTE
    roles = [role for role, count in _ROLES for _ in range(count)]
    first_names = rng.sample(_FIRST_NAMES, PEOPLE)
    last_names = rng.sample(_LAST_NAMES, PEOPLE)
    ids = _opaque_ids(rng, "usr_", PEOPLE, 10)
    # Six sellers join during the window; five others sign in with a password, not SSO.
    juniors = [i for i, role in enumerate(roles) if role in ("sdr", "account_executive")]
    new_hires = rng.sample(juniors, 6)
    outside_sso = rng.sample([i for i, r in enumerate(roles) if r in _SELLERS and i not in new_hires], 5)
    people = []
    for i, role in enumerate(roles):
        first, last = first_names[i], last_names[i]
        office = rng.choices(_OFFICES, cum_weights=_OFFICE_CUM_WEIGHTS)[0]
        at_home = rng.random() < 0.4
        invited_at = None
        active_from = open_from
        if i in new_hires:
            invited_at = _story_moment(rng, 3, 33, 16.0)
            active_from = invited_at + _between(rng, 2 * 3600, 30 * 3600)
        people.append(
            _Person(
                id=ids[i],
                name=f"{first} {last}",
                email=f"{first}.{last}@{DOMAIN}".lower(),
                role=role,
                office=office,
                ip=f"192.0.2.{20 + i}" if at_home else office.egress_ip,
                user_agent=rng.choice(_BROWSERS),
                password_login=i in outside_sso,
                invited_at=invited_at,
                active_from=active_from,
            )
        )
    connection_ids = _opaque_ids(rng, "", len(_PROVIDERS), 6)
    connections = {
        provider: _Connection(provider, f"conn_{provider}_{suffix}", title, scopes, objects)
        for (provider, title, scopes, objects), suffix in zip(_PROVIDERS, connection_ids, strict=True)
    }
    owners = [p for p in people if p.role in _SELLERS and p.invited_at is None]
    deals = []
    for deal_id in _opaque_ids(rng, "006", 160, 12):
        account = f"{rng.choice(_ACCOUNT_WORDS)} {rng.choice(_ACCOUNT_KINDS)}"
        deals.append(
            _Deal(
                id=deal_id.upper(),
                name=f"{account} - {rng.choice(_DEAL_KINDS)}",
                account=account,
                stage=rng.choice(_STAGES),
                amount=rng.randrange(8, 400) * 1000,
                owner=rng.choice(owners),
            )
        )
    return _Org(
        people=tuple(people),
        admins=tuple(p for p in people if p.role == "admin"),
        connections=MappingProxyType(connections),
        deals=tuple(deals),
        go_live=go_live,
        open_from=open_from,
        revocation=_story_moment(rng, 26, 30, 17.0),
    )


def _usable(org: _Org, provider: str, at: int) -> bool:
    """Whether a connection works at a time: HubSpot stops at its revocation."""
    return provider != _REVOKED_PROVIDER or at < org.revocation - 10 * MINUTE


# --- beats: what happens when ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SettingChange:
    setting: str
    before: str | int | bool | tuple[str, ...]
    after: str | int | bool | tuple[str, ...]
    secret: bool = False  # values are shown masked


@dataclass(frozen=True, slots=True)
class _Invitation:
    invitee: _Person


@dataclass(frozen=True, slots=True)
class _RoleChange:
    person: _Person
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class _Connect:
    connection: _Connection


@dataclass(frozen=True, slots=True)
class _Revoke:
    connection: _Connection
    reason: str


_Act = _SettingChange | _Invitation | _RoleChange | _Connect | _Revoke


@dataclass(frozen=True, slots=True)
class _Step:
    """One step of a workflow and the event that records it."""

    name: str
    action: str
    provider: str | None = None
    object_type: str = ""  # what a retrieval reads
    destination: str = ""  # where an alert goes: a Slack channel, "owner_dm" or "owner_email"
    tool: str = ""  # what an agent acts with


_START = _Step("start", WORKFLOW_STARTED)
_TRIGGER = _Step("trigger", WORKFLOW_TRIGGERED)
_FINISH = _Step("finish", WORKFLOW_COMPLETED)


class _Beat(NamedTuple):
    """One event as the script decides it: when, what, how it went, and the detail its
    rendering needs. The provider is here, not in the rendering, so that the facts counted
    from beats are the facts of the stream."""

    at: int
    action: str
    outcome: str = "success"
    detail: str | _Act | _Step | None = None
    provider: str | None = None


class _Episode(Protocol):
    """A stretch of related events: scripted from its own seed, rendered from the same."""

    @property
    def start(self) -> int: ...

    @property
    def seed(self) -> int: ...

    def beats(self, rng: random.Random) -> list[_Beat]: ...

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]: ...


_CATEGORY: Mapping[str, str] = MappingProxyType(
    {action: spec.category for action, spec in CATALOGUE.items()}
)


def _event(
    beat: _Beat,
    actor: dict[str, str],
    description: str,
    *,
    targets: list[dict[str, str]] | None = None,
    integration: dict[str, str] | None = None,
    workflow: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Event:
    # "id" comes first so that it reads first; the stream fills it in once the order is known.
    event: Event = {
        "id": "",
        "occurred_at": _timestamp(beat.at),
        "category": _CATEGORY[beat.action],
        "action": beat.action,
        "outcome": beat.outcome,
        "actor": actor,
    }
    if targets:
        event["targets"] = targets
    if integration:
        event["integration"] = integration
    if workflow:
        event["workflow"] = workflow
    if context:
        event["context"] = context
    event["description"] = description
    if metadata:
        event["metadata"] = metadata
    return event


def _request_id(rng: random.Random) -> str:
    return f"req_{rng.getrandbits(64):016x}"


# --- sessions -------------------------------------------------------------------------------

_SSO_FAILURES = ("assertion_expired", "user_not_assigned_to_app", "clock_skew", "idp_timeout")
_QUERY_COUNTS = range(7)
_BUSY_ASKERS = ("account_executive", "sdr", "sales_manager", "executive")
_QUERY_CUM_WEIGHTS = {
    True: tuple(itertools.accumulate((1, 2, 3, 3, 2, 1, 1))),
    False: tuple(itertools.accumulate((3, 3, 2, 1, 1, 0, 0))),
}
_QUESTIONS = (
    "Which of my deals have had no activity in the last 14 days?",
    "Summarize the last three emails with {account}.",
    "What changed in the {account} opportunity this week?",
    "Who are the decision makers at {account}?",
    "Draft a follow-up to {account} after yesterday's call.",
    "What is the team's commit versus quota for this quarter?",
    "List renewals closing in the next 30 days over $50k.",
    "Which accounts opened the pricing email but did not reply?",
    "Prepare me for tomorrow's meeting with {account}.",
    "Show pipeline created by SDRs this month by source.",
    "Why did {account} push the close date?",
    "Which open opportunities have no next meeting booked?",
)
_QUERY_SOURCES = ("salesforce", "gmail", "google_calendar", "slack")
_PROTOCOL_NAMES = {"saml": "SAML", "oidc": "OIDC"}


@dataclass(frozen=True, slots=True)
class _Session:
    """A person signs in, works a while (administration, assistant questions), and leaves."""

    start: int
    seed: int
    person: _Person
    method: str  # "saml", "oidc" or "password"
    acts: tuple[_Act, ...] = ()
    away: _Place | None = None  # signing in from somewhere the person has never been
    change_password: bool = False

    def beats(self, rng: random.Random) -> list[_Beat]:
        t = self.start
        out: list[_Beat] = []
        if self.method == "password":
            t = self._password_login(rng, t, out)
        else:
            if rng.random() < 0.04:
                out.append(_Beat(t, AUTH_SSO_FAILED, "failure", rng.choice(_SSO_FAILURES)))
                t += _between(rng, 20, 120)
            if self.away:  # the identity provider steps up to MFA for an unknown country
                out.append(_Beat(t, AUTH_MFA_CHALLENGED, "success", "okta_verify_push"))
                t += _between(rng, 4, 15)
            out.append(_Beat(t, AUTH_SSO_SUCCEEDED))
        for act in self.acts:
            t += _between(rng, 40, 300)
            t = _act_beats(act, rng, t, out)
        busy = self.person.role in _BUSY_ASKERS
        queries = rng.choices(_QUERY_COUNTS, cum_weights=_QUERY_CUM_WEIGHTS[busy])[0]
        for _ in range(queries):
            t += _between(rng, 45, 1500)
            out.append(_Beat(t, ASSISTANT_QUERY_SUBMITTED))
        if self.change_password or (self.method == "password" and rng.random() < 0.02):
            t += _between(rng, 30, 300)
            out.append(_Beat(t, AUTH_PASSWORD_CHANGED))
        if rng.random() < 0.55:
            t += _between(rng, 60, 1800)
            out.append(_Beat(t, AUTH_LOGOUT))
        else:
            t += _IDLE_TIMEOUT + _between(rng, 0, 90)  # the sweeper runs every ninety seconds
            out.append(_Beat(t, AUTH_SESSION_EXPIRED, detail="idle_timeout"))
        return out

    def _password_login(self, rng: random.Random, t: int, out: list[_Beat]) -> int:
        typos = 0
        if not self.change_password:
            draw = rng.random()
            typos = 0 if draw < 0.86 else 1 if draw < 0.97 else 2
        for _ in range(typos):
            out.append(_Beat(t, AUTH_LOGIN_ATTEMPTED, "pending"))
            t += _between(rng, 0.2, 0.9)
            out.append(_Beat(t, AUTH_LOGIN_FAILED, "failure", "invalid_password"))
            t += _between(rng, 5, 40)
        out.append(_Beat(t, AUTH_LOGIN_ATTEMPTED, "pending"))
        t += _between(rng, 0.3, 1.2)
        if rng.random() < 0.04:
            out.append(_Beat(t, AUTH_MFA_CHALLENGED, "failure", "totp"))
            t += _between(rng, 10, 60)
        out.append(_Beat(t, AUTH_MFA_CHALLENGED, "success", "totp"))
        t += _between(rng, 3, 20)
        out.append(_Beat(t, AUTH_LOGIN_SUCCEEDED))
        return t

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        person = self.person
        place = self.away or _Place(person.office.location, person.ip)
        user_agent = _MOBILE_APP if self.method == "oidc" else person.user_agent
        session_id = f"sess_{self.seed:016x}"
        events = []
        signed_in = False
        for beat in beats:
            action = beat.action
            signed_in = signed_in or action in (AUTH_LOGIN_SUCCEEDED, AUTH_SSO_SUCCEEDED)
            context = {"ip": place.ip, "user_agent": user_agent, "location": place.location}
            if signed_in:
                context["session_id"] = session_id
            context["request_id"] = _request_id(rng)
            if isinstance(beat.detail, _SettingChange | _Invitation | _RoleChange | _Connect | _Revoke):
                events.append(_act_event(beat, beat.detail, person, context))
            elif action == ASSISTANT_QUERY_SUBMITTED:
                events.append(_query_event(beat, person, context, rng, org))
            else:
                events.append(self._auth_event(beat, context))
        return events

    def _auth_event(self, beat: _Beat, context: dict[str, str]) -> Event:
        person, action = self.person, beat.action
        protocol = _PROTOCOL_NAMES.get(self.method, "")
        sso = {"protocol": self.method, "idp": "okta"}
        if action == AUTH_LOGIN_ATTEMPTED:
            return _event(beat, person.actor(), f"{person.name} submitted a password sign-in",
                          targets=[person.target()], context=context,
                          metadata={"method": "password"})
        if action == AUTH_LOGIN_FAILED:
            return _failed_login(beat, person, context)
        if action == AUTH_LOGIN_SUCCEEDED:
            return _event(beat, person.actor(), f"{person.name} signed in with a password",
                          targets=[person.target()], context=context,
                          metadata={"method": "password", "mfa": True})
        if action == AUTH_SSO_SUCCEEDED:
            metadata: dict[str, Any] = dict(sso)
            if self.away:
                metadata["new_country"] = True
            return _event(beat, person.actor(), f"{person.name} signed in through Okta ({protocol})",
                          targets=[person.target()], context=context, metadata=metadata)
        if action == AUTH_SSO_FAILED:
            return _event(beat, person.actor(),
                          f"Okta {protocol} sign-in refused for {person.email}: {beat.detail}",
                          targets=[person.target()], context=context,
                          metadata={**sso, "reason": str(beat.detail)})
        if action == AUTH_MFA_CHALLENGED:
            result = "met" if beat.outcome == "success" else "failed"
            metadata = {"factor": str(beat.detail)}
            if self.away:
                metadata["reason"] = "new_country"
            return _event(beat, person.actor(),
                          f"{person.name} was challenged for a second factor ({beat.detail}): {result}",
                          targets=[person.target()], context=context, metadata=metadata)
        if action == AUTH_PASSWORD_CHANGED:
            return _event(beat, person.actor(), f"{person.name} changed their password",
                          targets=[person.target()], context=context)
        if action == AUTH_LOGOUT:
            return _event(beat, person.actor(), f"{person.name} signed out",
                          targets=[person.target()], context=context)
        # AUTH_SESSION_EXPIRED: the platform ends the session, not the person.
        return _event(beat, _PLATFORM.actor(),
                      f"Session of {person.name} expired after {_IDLE_TIMEOUT // MINUTE} idle minutes",
                      targets=[person.target()], context=context,
                      metadata={"reason": "idle_timeout",
                                "idle_timeout_minutes": _IDLE_TIMEOUT // MINUTE})  # fmt: skip


def _failed_login(beat: _Beat, person: _Person, context: dict[str, str]) -> Event:
    return _event(beat, person.actor(), f"Password sign-in refused for {person.email}: invalid password",
                  targets=[person.target()], context=context,
                  metadata={"method": "password", "reason": "invalid_password"})  # fmt: skip


def _act_beats(act: _Act, rng: random.Random, t: int, out: list[_Beat]) -> int:
    if isinstance(act, _Connect):
        provider = act.connection.provider
        out.append(_Beat(t, INTEGRATION_OAUTH_GRANTED, detail=act, provider=provider))
        t += _between(rng, 2, 15)
        out.append(_Beat(t, INTEGRATION_CONNECTED, detail=act, provider=provider))
    elif isinstance(act, _Revoke):
        provider = act.connection.provider
        out.append(_Beat(t, INTEGRATION_OAUTH_REVOKED, detail=act, provider=provider))
        t += _between(rng, 1, 4)
        out.append(_Beat(t, INTEGRATION_DISCONNECTED, detail=act, provider=provider))
    elif isinstance(act, _SettingChange):
        out.append(_Beat(t, CONFIG_CHANGED, detail=act))
    elif isinstance(act, _Invitation):
        out.append(_Beat(t, USER_INVITED, detail=act))
    else:
        out.append(_Beat(t, USER_ROLE_CHANGED, detail=act))
    return t


def _shown(value: str | int | bool | tuple[str, ...]) -> str | int | bool | list[str]:
    return list(value) if isinstance(value, tuple) else value


def _act_event(beat: _Beat, act: _Act, admin: _Person, context: dict[str, str]) -> Event:
    actor = admin.actor()
    if isinstance(act, _SettingChange):
        # Secrets are recorded masked (their last four characters), never in clear.
        metadata = {"setting": act.setting, "before": _shown(act.before), "after": _shown(act.after),
                    "redacted": act.secret}  # fmt: skip
        return _event(beat, actor, f"{admin.name} changed the setting {act.setting}",
                      targets=[{"type": "setting", "id": act.setting}], context=context,
                      metadata=metadata)  # fmt: skip
    if isinstance(act, _Invitation):
        invitee = act.invitee
        return _event(beat, actor, f"{admin.name} invited {invitee.email} as {invitee.role}",
                      targets=[invitee.target()], context=context,
                      metadata={"role": invitee.role, "email": invitee.email})  # fmt: skip
    if isinstance(act, _RoleChange):
        return _event(beat, actor,
                      f"{admin.name} changed the role of {act.person.name} from {act.before} to {act.after}",
                      targets=[act.person.target()], context=context,
                      metadata={"before": act.before, "after": act.after})  # fmt: skip
    connection = act.connection
    targets, integration = [connection.target()], connection.integration()
    if beat.action == INTEGRATION_OAUTH_GRANTED:
        return _event(beat, actor, f"{admin.name} granted OAuth access to {connection.title}",
                      targets=targets, integration=integration, context=context,
                      metadata={"scopes": list(connection.scopes)})  # fmt: skip
    if beat.action == INTEGRATION_CONNECTED:
        return _event(beat, actor, f"{admin.name} connected {connection.title}",
                      targets=targets, integration=integration, context=context)  # fmt: skip
    reason = act.reason if isinstance(act, _Revoke) else ""
    if beat.action == INTEGRATION_OAUTH_REVOKED:
        return _event(beat, actor, f"{admin.name} revoked the OAuth grant of {connection.title}",
                      targets=targets, integration=integration, context=context,
                      metadata={"reason": reason})  # fmt: skip
    # INTEGRATION_DISCONNECTED follows the revocation: the platform closes the connection.
    return _event(beat, _PLATFORM.actor(), f"{connection.title} disconnected: its OAuth grant was revoked",
                  targets=targets, integration=integration,
                  context={"request_id": context["request_id"]},
                  metadata={"reason": "oauth_grant_revoked"})  # fmt: skip


def _query_event(
    beat: _Beat, person: _Person, context: dict[str, str], rng: random.Random, org: _Org
) -> Event:
    question = rng.choice(_QUESTIONS).format(account=rng.choice(org.deals).account)
    sources = rng.sample(_QUERY_SOURCES, 1 + int(rng.random() * 3))
    return _event(beat, person.actor(), f"{person.name} asked the assistant: {question}",
                  context=context,
                  metadata={"question": question, "conversation_id": f"conv_{rng.getrandbits(48):012x}",
                            "sources": sources, "latency_ms": 400 + int(rng.random() * 5000)})  # fmt: skip


# --- workflow runs --------------------------------------------------------------------------


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
    return _Workflow(
        "wf_lead_routing", "Inbound lead routing", "new inbound lead",
        "signal:new_inbound_lead", _ROUTING_AGENT,
        (
            _Step("load_lead", INTEGRATION_DATA_RETRIEVED, crm, object_type=object_type),
            _Step("assign_owner", AGENT_ACTION_TAKEN, tool="routing.territory_rules"),
            _Step("create_task", CRM_TASK_CREATED, "salesforce"),
            _Step("alert_slack", ALERT_SENT, "slack", destination="#inbound-leads"),
        ),
        "lead",
    )  # fmt: skip


# Leads come from HubSpot until its grant is revoked, then from Salesforce.
_LEAD_ROUTING = _lead_routing("hubspot", "Contact")
_LEAD_ROUTING_AFTER_REVOCATION = _lead_routing("salesforce", "Lead")

_STEP_ERRORS = {
    "salesforce": ("REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded",
                   "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record"),
    "hubspot": ("429 Too Many Requests: ten-second rolling limit reached",),
    "slack": ("channel_not_found", "ratelimited"),
    "gmail": ("429 rateLimitExceeded: user-rate limit exceeded",),
    "google_calendar": ("no common free slot in the next 5 business days",
                        "403 forbiddenForNonOrganizer"),
    None: ("model response timed out after 30 s",),
}  # fmt: skip
_REVOKED_ERROR = "401 invalid_grant: the OAuth grant was revoked; reconnect HubSpot"
_TASK_SUBJECTS = ("Call {owner} back about next steps", "Send a revised proposal",
                  "Confirm the economic buyer", "Book a technical review")  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Run:
    """One workflow run: started by a signal or by a person, ending completed or failed."""

    start: int
    seed: int
    run_id: str
    workflow: _Workflow
    deal: _Deal
    requested_by: _Person | None = None  # a person pressed "run now"
    fail_step: str | None = None
    tasks: int = 1
    error: str | None = None  # chosen by the plan, else drawn for the failing step

    @property
    def trigger(self) -> str:
        return "manual" if self.requested_by else self.workflow.trigger

    def beats(self, rng: random.Random) -> list[_Beat]:
        t = self.start
        out: list[_Beat] = []
        if self.requested_by:
            out.append(_Beat(t, WORKFLOW_TRIGGERED, detail=_TRIGGER))
            t += _between(rng, 0.3, 2)
        out.append(_Beat(t, WORKFLOW_STARTED, detail=_START))
        for step in self.workflow.steps:
            for _ in range(self.tasks if step.action == CRM_TASK_CREATED else 1):
                t += _between(rng, 0.2, 6)
                if step.name == self.fail_step:
                    out.append(_Beat(t, step.action, "failure", step, step.provider))
                    t += _between(rng, 0.05, 1.5)
                    out.append(_Beat(t, WORKFLOW_FAILED, "failure", step))
                    return out
                out.append(_Beat(t, step.action, "success", step, step.provider))
        t += _between(rng, 0.05, 1)
        out.append(_Beat(t, WORKFLOW_COMPLETED, detail=_FINISH))
        return out

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        wf, deal = self.workflow, self.deal
        owner = deal.owner
        trace_id = f"{rng.getrandbits(128):032x}"
        failing = next((b for b in beats if b.outcome == "failure"), None)
        error = self.error or rng.choice(_STEP_ERRORS[failing.provider if failing else None])
        if wf.subject == "lead":
            lead_name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
            subject = {"type": "lead", "id": f"00Q{rng.getrandbits(48):012X}",
                       "name": f"{lead_name} ({deal.account})"}  # fmt: skip
        else:
            subject = deal.target()
        days_stalled = 14 + int(rng.random() * 12)
        events = []
        for beat in beats:
            step = beat.detail if isinstance(beat.detail, _Step) else _START
            workflow = {"run_id": self.run_id, "id": wf.id, "name": wf.name,
                        "trigger": self.trigger, "step": step.name}  # fmt: skip
            context = {"request_id": _request_id(rng), "trace_id": trace_id}
            integration = org.connections[beat.provider].integration() if beat.provider else None
            action = beat.action
            actor = wf.agent.actor()
            targets = [subject]
            metadata: dict[str, Any] = {}
            if action == WORKFLOW_TRIGGERED:
                person = self.requested_by or owner
                actor = person.actor()
                targets = [{"type": "workflow", "id": wf.id, "name": wf.name}, subject]
                context = {"ip": person.ip, "user_agent": person.user_agent,
                           "location": person.office.location, **context}  # fmt: skip
                description = f"{person.name} ran {wf.name} for {subject['name']}"
            elif action == WORKFLOW_STARTED:
                if self.requested_by:
                    metadata = {"requested_by": self.requested_by.id}
                else:
                    metadata = {"signal": wf.signal}
                    if wf is _STALLED_DEAL:
                        metadata["days_stalled"] = days_stalled
                metadata |= {"stage": deal.stage, "amount": deal.amount}
                cause = "requested by a person" if self.requested_by else f"signal {wf.signal!r}"
                description = f"{wf.name} started for {subject['name']}: {cause}"
            elif action == WORKFLOW_COMPLETED:
                metadata = {"duration_ms": (beat.at - beats[0].at) // 1000, "steps": len(beats) - 1}
                description = f"{wf.name} completed for {subject['name']}"
            elif action == WORKFLOW_FAILED:
                metadata = {"signal": wf.signal, "step": step.name, "error": error}
                description = f"{wf.name} failed at step {step.name}: {error}"
            else:
                description, targets, metadata = _step_content(step, beat, subject, owner, rng)
                if beat.outcome == "failure":
                    metadata["error"] = error
                    description = f"{description} - failed: {error}"
            events.append(_event(beat, actor, description, targets=targets, integration=integration,
                                 workflow=workflow, context=context, metadata=metadata))  # fmt: skip
        return events


def _step_content(
    step: _Step, beat: _Beat, subject: dict[str, str], owner: _Person, rng: random.Random
) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    """The description, targets and metadata of one step's event."""
    action, name = step.action, subject["name"]
    if action == INTEGRATION_DATA_RETRIEVED:
        count = 1 if step.object_type in ("Opportunity", "Lead", "Contact") else 1 + int(rng.random() * 40)
        provider = str(step.provider)
        return (f"Read {count} {step.object_type} record(s) from {provider} for {name}", [subject],
                {"provider": provider, "object_type": step.object_type, "record_count": count})  # fmt: skip
    if action == CRM_TASK_CREATED:
        title = rng.choice(_TASK_SUBJECTS).format(owner=owner.name.split()[0])
        task = {"type": "task", "id": f"00T{rng.getrandbits(48):012X}", "name": title}
        due = _timestamp(beat.at + 2 * DAY)[:10]
        return (f"Created task {title!r} on {name} for {owner.name}", [task, subject],
                {"owner_id": owner.id, "due_date": due})  # fmt: skip
    if action == ALERT_SENT:
        channel = "email" if step.destination == "owner_email" else "slack"
        destination = {"owner_email": owner.email, "owner_dm": f"@{owner.handle}"}.get(
            step.destination, step.destination
        )
        return (f"Alerted {destination} by {channel} about {name}", [owner.target(), subject],
                {"channel": channel, "destination": destination})  # fmt: skip
    if action == AGENT_ACTION_TAKEN:
        said = {
            "calendar.freebusy": f"Proposed three meeting times for {name} from {owner.name}'s calendar",
            "brief.compose": f"Wrote a meeting brief on {name} for {owner.name}",
            "routing.territory_rules": f"Assigned {name} to {owner.name} by territory",
        }[step.tool]
        return said, [subject], {"tool": step.tool, "decision": step.name}
    # MEETING_SCHEDULED
    starts = (beat.at // DAY + 2 + int(rng.random() * 3)) * DAY + int((15 + rng.random() * 5)) * HOUR
    meeting = {"type": "meeting", "id": f"evt_{rng.getrandbits(64):016x}", "name": f"{name}: next steps"}
    return (f"Scheduled {meeting['name']!r} with {owner.name}", [meeting, subject],
            {"starts_at": _timestamp(starts), "duration_minutes": 30, "attendees": 2 + int(rng.random() * 4)})  # fmt: skip


# --- the platform's own jobs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sync:
    """A scheduled sync reads a few object types from one connected system."""

    start: int
    seed: int
    connection: _Connection
    reads: int

    def beats(self, rng: random.Random) -> list[_Beat]:
        provider, objects = self.connection.provider, self.connection.objects
        out = []
        t = self.start
        for _ in range(self.reads):
            out.append(_Beat(t, INTEGRATION_DATA_RETRIEVED, detail=rng.choice(objects), provider=provider))
            t += _between(rng, 0.5, 20)
        return out

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        c = self.connection
        events = []
        for beat in beats:
            count = int(rng.paretovariate(1.2) * 12)
            events.append(
                _event(beat, _SYNC_SERVICE.actor(), f"Scheduled sync read {count} {beat.detail} records from {c.title}",
                       targets=[c.target()], integration=c.integration(),
                       context={"request_id": _request_id(rng)},
                       metadata={"provider": c.provider, "object_type": beat.detail,
                                 "record_count": count, "mode": "incremental"})  # fmt: skip
            )
        return events


@dataclass(frozen=True, slots=True)
class _Refresh:
    """The platform exchanges a connection's refresh token for a new access token."""

    start: int
    seed: int
    connection: _Connection

    def beats(self, rng: random.Random) -> list[_Beat]:
        return [_Beat(self.start, INTEGRATION_OAUTH_REFRESHED, provider=self.connection.provider)]

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        c = self.connection
        return [
            _event(beat, _TOKEN_SERVICE.actor(), f"Refreshed the {c.title} access token",
                   targets=[c.target()], integration=c.integration(),
                   context={"request_id": _request_id(rng)},
                   metadata={"expires_at": _timestamp(beat.at + HOUR), "expires_in": 3600})  # fmt: skip
            for beat in beats
        ]


@dataclass(frozen=True, slots=True)
class _BruteForce:
    """Password guesses against one account from one address, seconds apart."""

    start: int
    seed: int
    victim: _Person
    attempts: int

    def beats(self, rng: random.Random) -> list[_Beat]:
        out = []
        t = self.start
        for _ in range(self.attempts):
            out.append(_Beat(t, AUTH_LOGIN_ATTEMPTED, "pending"))
            t += _between(rng, 0.15, 0.6)
            out.append(_Beat(t, AUTH_LOGIN_FAILED, "failure", "invalid_password"))
            t += _between(rng, 1.5, 6)
        return out

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        victim = self.victim
        events = []
        for beat in beats:
            context = {"ip": _ATTACKER.ip, "user_agent": _ATTACKER_AGENT,
                       "location": _ATTACKER.location, "request_id": _request_id(rng)}  # fmt: skip
            if beat.action == AUTH_LOGIN_FAILED:
                events.append(_failed_login(beat, victim, context))
            else:
                events.append(
                    _event(beat, victim.actor(), f"Password sign-in submitted for {victim.email}",
                           targets=[victim.target()], context=context, metadata={"method": "password"})
                )
        return events


# --- the facts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoFacts:
    """What the generator knows about the stream it makes, for tests and documentation.

    Times are stored-form strings (``YYYY-MM-DDTHH:MM:SS.ffffffZ``); users are ids
    (``usr_...``). Every count is exact: it is counted from the same script that the stream
    is rendered from.
    """

    tenant: str
    seed: int
    events: int
    id_prefix: str  # event ids are id_prefix + the 0-based position in the stream
    domain: str
    window_start: str  # inclusive
    window_end: str  # exclusive
    first_at: str
    last_at: str
    people: int
    people_by_role: Mapping[str, int]  # roles at the start of the window
    counts_by_action: Mapping[str, int]
    counts_by_category: Mapping[str, int]
    retrievals_by_provider: Mapping[str, int]  # integration.data.retrieved events
    connections: Mapping[str, str]  # provider -> connection id
    brute_force_ip: str
    brute_force_target_user: str
    brute_force_target_email: str
    brute_force_count: int  # auth.login.failed from brute_force_ip, all within the burst
    brute_force_start: str  # the first attempt
    brute_force_end: str  # the last failure
    new_country_user: str
    new_country_location: str  # "City, CC"; nobody else's events come from that country
    new_country_ip: str
    new_country_at: str  # the auth.sso.succeeded of that login
    revoked_provider: str
    revoked_connection_id: str
    revoked_by: str
    revoked_at: str  # integration.oauth.revoked
    disconnected_at: str  # integration.disconnected that follows it
    workflow_runs: int
    failed_runs: tuple[str, ...]  # run ids ending in workflow.failed, oldest first
    example_run_id: str  # a stalled-deal run: signal, tasks, Slack and email alerts, meeting
    example_manual_run_id: str  # a run a person triggered by hand (workflow.triggered)


class _Tally:
    """Counts the planned beats into :class:`DemoFacts`."""

    def __init__(self) -> None:
        self.actions: Counter[str] = Counter()
        self.retrievals: Counter[str] = Counter()
        self.first = _LATEST_START
        self.last = 0
        self.runs = 0
        self.failed_runs: list[tuple[int, str]] = []

    def add(self, episode: _Episode, beats: list[_Beat]) -> None:
        for beat in beats:
            self.actions[beat.action] += 1
            if beat.action == INTEGRATION_DATA_RETRIEVED and beat.outcome == "success":
                self.retrievals[str(beat.provider)] += 1
        self.first = min(self.first, beats[0].at)
        self.last = max(self.last, beats[-1].at)
        if isinstance(episode, _Run):
            self.runs += 1
            if beats[-1].action == WORKFLOW_FAILED:
                self.failed_runs.append((episode.start, episode.run_id))


# --- the plan -------------------------------------------------------------------------------


class _RunIds:
    """Run ids that look random and never repeat: a counter through a bijection of 64 bits
    (multiplying by an odd number modulo 2**64 is invertible, and so is xor)."""

    def __init__(self, rng: random.Random) -> None:
        self._salt = rng.getrandbits(64)
        self._next = itertools.count(1)

    def __call__(self) -> str:
        return f"run_{(next(self._next) * 0x9E3779B97F4A7C15 ^ self._salt) & _MASK64:016x}"


@dataclass(frozen=True)
class _Story:
    """The planted stories: fixed episodes whose facts the tests and docs rely on."""

    episodes: tuple[_Episode, ...]
    brute_force: _BruteForce
    new_country: _Session
    revocation: _Session
    example_run: _Run
    manual_run: _Run


def _mask(rng: random.Random) -> str:
    return f"****{rng.getrandbits(16):04x}"


def _plan_story(org: _Org, rng: random.Random, run_ids: _RunIds) -> _Story:
    first_admin, second_admin = org.admins
    connections = org.connections
    seed = rng.getrandbits
    onboarding = _Session(
        org.go_live, seed(64), first_admin, "saml",
        acts=(
            _SettingChange("auth.sso.enforced", False, True),
            _SettingChange("auth.session.idle_timeout_minutes", 60, _IDLE_TIMEOUT // MINUTE),
            *(_Connect(c) for c in connections.values()),
            _SettingChange("workflows.stalled_deal.threshold_days", 21, 14),
            _SettingChange("assistant.sources", ("salesforce",), _QUERY_SOURCES),
        ),
    )  # fmt: skip
    episodes: list[_Episode] = [onboarding]
    for i, person in enumerate(p for p in org.people if p.invited_at is not None):
        admin = org.admins[i % 2]
        episodes.append(_Session(int(person.invited_at or 0), seed(64), admin, "saml",
                                 acts=(_Invitation(person),)))  # fmt: skip
    sdrs = [p for p in org.people if p.role == "sdr" and p.invited_at is None]
    aes = [p for p in org.people if p.role == "account_executive" and p.invited_at is None]
    promotions = (
        (_RoleChange(sdrs[0], "sdr", "account_executive"), _RoleChange(sdrs[1], "sdr", "account_executive")),
        (_RoleChange(aes[0], "account_executive", "sales_manager"),
         _RoleChange(next(p for p in org.people if p.role == "revops"), "revops", "admin")),
    )  # fmt: skip
    for i, acts in enumerate(promotions):
        at = _story_moment(rng, 8 + 14 * i, 12 + 14 * i, 17.5)
        episodes.append(_Session(at, seed(64), org.admins[i], "saml", acts=acts))
    rotation = (
        _SettingChange("integrations.slack.signing_secret", _mask(rng), _mask(rng), secret=True),
        _SettingChange("integrations.salesforce.client_secret", _mask(rng), _mask(rng), secret=True),
    )
    episodes.append(_Session(_story_moment(rng, 8, 11, 19.0), seed(64), second_admin, "saml", acts=rotation))

    # The brute force: a night in week 3, against an account outside SSO. The victim resets
    # the password in the morning and an administrator turns on lockout.
    victim = rng.choice([p for p in org.people if p.password_login])
    burst_day = rng.choice([d for d in _WEEKDAYS if 14 <= d <= 17])
    brute_force = _BruteForce(burst_day * DAY + 2 * HOUR + _between(rng, 0, 3600), seed(64), victim,
                              attempts=rng.randint(36, 60))  # fmt: skip
    morning = (burst_day + 1) * DAY + int((8.5 - victim.office.utc_offset) * HOUR)
    episodes += [
        brute_force,
        _Session(morning, seed(64), victim, "password", change_password=True),
        _Session(morning + 2 * HOUR, seed(64), first_admin, "saml",
                 acts=(_SettingChange("auth.lockout.max_failed_attempts", 0, 10),)),
    ]  # fmt: skip

    # One login from a country the traveller has never signed in from.
    traveller = rng.choice(
        [p for p in org.people if p.role == "account_executive" and p.office.location.endswith(", US")
         and not p.password_login and p.invited_at is None]
    )  # fmt: skip
    new_country = _Session(_story_moment(rng, 21, 25, 9.0), seed(64), traveller, "saml", away=_TRAVEL)
    episodes.append(new_country)

    # HubSpot's grant is revoked; lead routing moves to Salesforce the next day.
    hubspot = connections[_REVOKED_PROVIDER]
    revocation = _Session(org.revocation, seed(64), second_admin, "saml",
                          acts=(_Revoke(hubspot, "HubSpot contract ends; leads move to Salesforce"),))
    switch = _SettingChange("workflows.lead_routing.source", "hubspot", "salesforce")
    episodes += [revocation, _Session(org.revocation + DAY, seed(64), second_admin, "saml", acts=(switch,))]  # fmt: skip

    deals = list(org.deals)
    example_run = _Run(_story_moment(rng, 7, 11, 15.0), seed(64), run_ids(), _STALLED_DEAL, deals[0], tasks=2)
    manual_run = _Run(_story_moment(rng, 15, 19, 16.0), seed(64), run_ids(), _STALLED_DEAL, deals[1],
                      requested_by=deals[1].owner)  # fmt: skip
    episodes += [
        example_run,
        manual_run,
        _Run(_story_moment(rng, 12, 16, 14.0), seed(64), run_ids(), _STALLED_DEAL, deals[2],
             fail_step="create_tasks", error=_STEP_ERRORS["salesforce"][0]),
        _Run(_story_moment(rng, 19, 24, 18.0), seed(64), run_ids(), _STALLED_DEAL, deals[3],
             fail_step="schedule_meeting", error=_STEP_ERRORS["google_calendar"][0]),
    ]  # fmt: skip
    return _Story(tuple(episodes), brute_force, new_country, revocation, example_run, manual_run)


def _refreshes(org: _Org, rng: random.Random, count: int) -> list[_Episode]:
    """About ``count`` token refreshes, evenly spaced per connection over its working life."""
    lives = {
        provider: (org.open_from, org.revocation - 10 * MINUTE if provider == _REVOKED_PROVIDER else _LATEST_START)
        for provider in org.connections
    }  # fmt: skip
    interval = sum(end - begin for begin, end in lives.values()) // max(count, 1)
    episodes: list[_Episode] = []
    for provider, (begin, end) in lives.items():
        at = begin + int(rng.random() * interval)
        while at < end:
            episodes.append(_Refresh(at, rng.getrandbits(64), org.connections[provider]))
            at += interval + _between(rng, -60, 60)
    return episodes


_KINDS = ("session", "run", "manual_run", "sync")
_KIND_CUM_WEIGHTS = tuple(itertools.accumulate((30, 28, 2, 40)))
_WORKFLOW_CUM_WEIGHTS = tuple(itertools.accumulate((5, 3, 2)))
_US_CENTRAL = -6  # signals are evaluated on the sales team's clock


def _background_episode(org: _Org, rng: random.Random, run_ids: _RunIds) -> _Episode:
    kind = rng.choices(_KINDS, cum_weights=_KIND_CUM_WEIGHTS)[0]
    if kind == "session":
        person = rng.choice(org.people)
        start = _working_moment(rng, person.office.utc_offset, person.active_from)
        method = "password" if person.password_login else "oidc" if rng.random() < 0.25 else "saml"
        return _Session(start, rng.getrandbits(64), person, method)
    if kind == "sync":
        return _sync(org, rng, reads=1 + int(rng.random() * 3))
    deal = rng.choice(org.deals)
    seed = rng.getrandbits(64)
    tasks = 2 if rng.random() < 0.4 else 1
    if kind == "manual_run":
        start = _working_moment(rng, deal.owner.office.utc_offset, org.open_from)
        return _Run(start, seed, run_ids(), _STALLED_DEAL, deal, requested_by=deal.owner, tasks=tasks)
    workflow = (_STALLED_DEAL, _MEETING_PREP, _LEAD_ROUTING)[
        rng.choices(range(3), cum_weights=_WORKFLOW_CUM_WEIGHTS)[0]
    ]
    start = _working_moment(rng, _US_CENTRAL, org.open_from)
    fail_step = rng.choice(workflow.steps).name if rng.random() < 0.06 else None
    error = None
    if workflow is _LEAD_ROUTING and not _usable(org, "hubspot", start):
        if start < org.revocation + DAY:  # until the switch, lead routing fails on the revoked grant
            fail_step, error = "load_lead", _REVOKED_ERROR
        else:
            workflow = _LEAD_ROUTING_AFTER_REVOCATION
    return _Run(start, seed, run_ids(), workflow, deal, fail_step=fail_step, tasks=tasks, error=error)


def _sync(org: _Org, rng: random.Random, reads: int) -> _Sync:
    while True:
        start = org.open_from + int(rng.random() * (_LATEST_START - org.open_from))
        connection = rng.choice(list(org.connections.values()))
        if _usable(org, connection.provider, start):
            return _Sync(start, rng.getrandbits(64), connection, reads)


@dataclass(frozen=True)
class _Plan:
    org: _Org
    episodes: list[_Episode]  # by start
    facts: DemoFacts


def _script(episode: _Episode) -> list[_Beat]:
    return episode.beats(random.Random(episode.seed))


def _plan(events: int, seed: int) -> _Plan:
    if isinstance(events, bool) or not isinstance(events, int) or events < MIN_EVENTS:
        raise InvalidArgument("events", f"the demo needs at least {MIN_EVENTS} events")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidArgument("seed", "must be an integer from 0 to 2**63 - 1")
    rng = random.Random(seed)
    org = _build_org(rng)
    run_ids = _RunIds(rng)
    story = _plan_story(org, rng, run_ids)
    tally = _Tally()
    episodes: list[_Episode] = []
    remaining = events

    def take(episode: _Episode, beats: list[_Beat]) -> None:
        nonlocal remaining
        episodes.append(episode)
        tally.add(episode, beats)
        remaining -= len(beats)

    scripted = {id(e): _script(e) for e in story.episodes}
    for episode in story.episodes:
        take(episode, scripted[id(episode)])
    for episode in _refreshes(org, rng, max(3 * len(org.connections), events // 40)):
        take(episode, _script(episode))
    if remaining < 0:  # only if MIN_EVENTS is set too low for the stories
        raise InvalidArgument("events", f"the demo needs at least {events - remaining} events")
    while remaining > 0:
        episode = _background_episode(org, rng, run_ids)
        beats = _script(episode)
        if len(beats) > remaining:  # the last few events: single reads fit any remainder
            episode = _sync(org, rng, reads=1)
            beats = _script(episode)
        take(episode, beats)
    episodes.sort(key=lambda e: e.start)
    facts = _facts(events, seed, org, story, scripted, tally)
    return _Plan(org, episodes, facts)


def _frozen(counter: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(sorted(counter.items())))


def _facts(
    events: int,
    seed: int,
    org: _Org,
    story: _Story,
    scripted: Mapping[int, list[_Beat]],
    tally: _Tally,
) -> DemoFacts:
    burst = scripted[id(story.brute_force)]
    landing = next(b for b in scripted[id(story.new_country)] if b.action == AUTH_SSO_SUCCEEDED)
    revocation = scripted[id(story.revocation)]
    revoked = next(b for b in revocation if b.action == INTEGRATION_OAUTH_REVOKED)
    disconnected = next(b for b in revocation if b.action == INTEGRATION_DISCONNECTED)
    categories: Counter[str] = Counter()
    for action, count in tally.actions.items():
        categories[_CATEGORY[action]] += count
    return DemoFacts(
        tenant=TENANT,
        seed=seed,
        events=events,
        id_prefix=f"demo-s{seed}-n{events}-",
        domain=DOMAIN,
        window_start=_timestamp(0),
        window_end=_timestamp(WINDOW_DAYS * DAY),
        first_at=_timestamp(tally.first),
        last_at=_timestamp(tally.last),
        people=len(org.people),
        people_by_role=_frozen(Counter(p.role for p in org.people)),
        counts_by_action=_frozen(tally.actions),
        counts_by_category=_frozen(categories),
        retrievals_by_provider=_frozen(tally.retrievals),
        connections=MappingProxyType({p: c.id for p, c in org.connections.items()}),
        brute_force_ip=_ATTACKER.ip,
        brute_force_target_user=story.brute_force.victim.id,
        brute_force_target_email=story.brute_force.victim.email,
        brute_force_count=sum(b.action == AUTH_LOGIN_FAILED for b in burst),
        brute_force_start=_timestamp(burst[0].at),
        brute_force_end=_timestamp(burst[-1].at),
        new_country_user=story.new_country.person.id,
        new_country_location=_TRAVEL.location,
        new_country_ip=_TRAVEL.ip,
        new_country_at=_timestamp(landing.at),
        revoked_provider=_REVOKED_PROVIDER,
        revoked_connection_id=org.connections[_REVOKED_PROVIDER].id,
        revoked_by=story.revocation.person.id,
        revoked_at=_timestamp(revoked.at),
        disconnected_at=_timestamp(disconnected.at),
        workflow_runs=tally.runs,
        failed_runs=tuple(run_id for _, run_id in sorted(tally.failed_runs)),
        example_run_id=story.example_run.run_id,
        example_manual_run_id=story.manual_run.run_id,
    )


# --- the stream -----------------------------------------------------------------------------


def _stream(plan: _Plan) -> Iterator[Event]:
    """Renders the episodes in start order and merges their events by time.

    An episode's events are never earlier than its start, so once the next episode starts at
    ``s``, every event before ``s`` is final. Ties keep the order of rendering, which is fixed.
    """
    prefix = plan.facts.id_prefix
    heap: list[tuple[int, int, Event]] = []
    order = itertools.count()
    position = 0
    for episode in plan.episodes:
        start = episode.start
        while heap and heap[0][0] < start:
            event = heapq.heappop(heap)[2]
            event["id"] = f"{prefix}{position}"
            position += 1
            yield event
        rng = random.Random(episode.seed)
        beats = episode.beats(rng)
        for beat, event in zip(beats, episode.render(beats, rng, plan.org), strict=True):
            heapq.heappush(heap, (beat.at, next(order), event))
    while heap:
        event = heapq.heappop(heap)[2]
        event["id"] = f"{prefix}{position}"
        position += 1
        yield event


def generate(events: int = 5000, seed: int = 7) -> tuple[Iterator[Event], DemoFacts]:
    """The demo organisation's events, oldest first, and the facts about them.

    Exactly ``events`` events (at least :data:`MIN_EVENTS`); each is a fresh dict in the
    producer shape of CONTRACT section 2 with an ``id`` of ``facts.id_prefix`` and its
    position, so that writing the same stream twice stores it once. The facts are exact
    before the first event is drawn. Raises :class:`InvalidArgument` for a size below the
    minimum or a seed outside ``0 .. 2**63 - 1``.
    """
    plan = _plan(events, seed)
    return _stream(plan), plan.facts


class RecordsMany(Protocol):
    """What :func:`write_demo` needs of a log: ``AuditLog.record_many``, all or nothing."""

    def record_many(self, tenant: str, events: list[dict[str, Any]]) -> Sequence[object]: ...


def write_demo(
    log: RecordsMany,
    *,
    events: int = 5000,
    seed: int = 7,
    tenant: str = TENANT,
    progress: Callable[[int], None] | None = None,
) -> DemoFacts:
    """Writes the demo organisation into ``tenant`` in batches of :data:`BATCH_SIZE`, calling
    ``progress`` with the number of events written after each batch, and returns its facts."""
    stream, facts = generate(events, seed)
    written = 0
    while batch := list(itertools.islice(stream, BATCH_SIZE)):
        log.record_many(tenant, batch)
        written += len(batch)
        if progress is not None:
            progress(written)
    return replace(facts, tenant=tenant)
