"""The demo tenant: a revenue team's platform over six weeks (issue 7, point 3).

:func:`generate` plans a fictional organisation, Larkspur (fifty people at ``larkspur.example``),
and streams the events its revenue platform records between :data:`WINDOW_START` and
:data:`WINDOW_END`: sign-ins through Okta (SAML and OIDC) or with a password, MFA challenges,
assistant questions, settings and people administration, five connected systems with their
OAuth grants and token refreshes, scheduled syncs, and the runs of three pipeline workflows
started by signals or by people. Planted among them are the stories an investigation should
find, and :class:`DemoFacts` names each exactly: one brute-force burst, one login from a new
country, one revoked integration, the failed runs, a complete run from signal to meeting.

The generator is pure and deterministic: no I/O, no clock, no iteration over hash-ordered
sets; one seed and one size give the same stream, byte for byte. The plan is a list of
episodes (a session, a workflow run, a sync...), each with a seed of its own, so that an
episode can be scripted twice: once while planning, to count its events and learn the facts,
and once while streaming, to render them. A million events are never held at once: episodes
overlap in time, and a heap merges their events into ``occurred_at`` order.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

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

__all__ = [
    "MIN_EVENTS",
    "TENANT",
    "WINDOW_END",
    "WINDOW_START",
    "DemoFacts",
    "RecordsMany",
    "generate",
    "write_demo",
]

Event = dict[str, Any]
_T = TypeVar("_T")

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
MIN_EVENTS = 500  # the planted stories take about three hundred events of their own
BATCH_SIZE = MAX_BATCH

_LATEST_START = WINDOW_DAYS * DAY - 12 * HOUR  # room for the longest episode before the end
_IDLE_MINUTES = 30  # the session idle timeout the go-live settings choose
_MASK64 = (1 << 64) - 1

# --- time and chance ------------------------------------------------------------------------

_DAY_PREFIXES = tuple((WINDOW_START + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(WINDOW_DAYS))
_CLOCK_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60))
_CLOCK_SECONDS = tuple(f"{s:02d}." for s in range(60))


def _timestamp(at: int) -> str:
    """The stored form of a time (CONTRACT section 2; RFC 3339 section 5.6 in UTC with
    microseconds). Table lookups: strftime costs several times as much, once per event."""
    day, rest = divmod(at, DAY)
    if 0 <= day < WINDOW_DAYS:
        minute, rest = divmod(rest, MINUTE)
        second, micro = divmod(rest, SECOND)
        return f"{_DAY_PREFIXES[day]}{_CLOCK_MINUTES[minute]}{_CLOCK_SECONDS[second]}{micro:06d}Z"
    return (WINDOW_START + timedelta(microseconds=at)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_weekend(day: int) -> bool:
    return (WINDOW_START + timedelta(days=day)).weekday() >= 5


_WEEKDAYS = tuple(d for d in range(WINDOW_DAYS) if not _is_weekend(d))
# Days to draw a working day from: a weekday is about seventeen times likelier than a weekend day.
_WORKING_DAYS = tuple(d for d in range(WINDOW_DAYS) for _ in range(1 if _is_weekend(d) else 17))


def _pick(rng: random.Random, options: Sequence[_T]) -> _T:
    """``rng.choice`` without its pure-Python rejection sampling: this runs per event."""
    return options[int(rng.random() * len(options))]


def _pause(rng: random.Random, low: float, high: float) -> int:
    """``low`` to ``high`` seconds, in microseconds."""
    return int((low + (high - low) * rng.random()) * SECOND)


def _working_moment(rng: random.Random, utc_offset: int, earliest: int) -> int:
    """A moment of someone's working day: mostly a weekday, 7:30 to 19:00 local time."""
    while True:
        day = _pick(rng, _WORKING_DAYS)
        local_hour = rng.triangular(7.5, 19.0, 10.5)
        at = day * DAY + int((local_hour - utc_offset) * HOUR)
        if earliest <= at < _LATEST_START:
            return at


def _story_moment(rng: random.Random, first_day: int, last_day: int, utc_hour: float) -> int:
    """A weekday between two days of the window, at about an hour (UTC) of that day."""
    day = rng.choice([d for d in _WEEKDAYS if first_day <= d <= last_day])
    return day * DAY + int(utc_hour * HOUR) + _pause(rng, 0, 40 * 60)


class _Dice:
    """The randomness of one episode's script: a 64-bit linear congruential generator with Knuth's
    MMIX constants, read from its top 53 bits. A script draws about a dozen numbers; seeding a
    Mersenne Twister for each of hundreds of thousands of episodes, twice, would cost more
    than the scripts themselves. Good enough for jitter; never for anything secret."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64

    def random(self) -> float:
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) & _MASK64
        return (self._state >> 11) * 2.0**-53

    def chance(self, probability: float) -> bool:
        return self.random() < probability

    def choice(self, options: Sequence[_T]) -> _T:
        return options[int(self.random() * len(options))]

    def pause(self, low: float, high: float) -> int:
        """``low`` to ``high`` seconds, in microseconds."""
        # random() inlined: this is the most frequent draw of every script.
        self._state = (self._state * 6364136223846793005 + 1442695040888963407) & _MASK64
        return int((low + (high - low) * ((self._state >> 11) * 2.0**-53)) * SECOND)


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
_ATTACKER_AGENT = "python-requests/2.32.3"
_TRAVEL = _Place("Lisbon, PT", "203.0.113.201")

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
_PEOPLE = sum(count for _, count in _ROLES)

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
_ACCOUNT_KINDS = (
    "Robotics", "Health", "Logistics", "Analytics", "Foods", "Energy", "Capital", "Software",
    "Media", "Labs",
)  # fmt: skip
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
_TITLES = {provider: title for provider, title, _, _ in _PROVIDERS}


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

    def usable(self, provider: str, at: int) -> bool:
        """Whether a connection works at a time: HubSpot stops at its revocation."""
        return provider != _REVOKED_PROVIDER or at < self.revocation - 10 * MINUTE


def _opaque_ids(rng: random.Random, prefix: str, count: int, digits: int) -> list[str]:
    """Distinct random-looking ids."""
    return [f"{prefix}{n:0{digits}x}" for n in rng.sample(range(16**digits), count)]


def _build_org(rng: random.Random) -> _Org:
    go_live = 14 * HOUR + _pause(rng, 0, 20 * 60)  # day 0, nine in the morning in New York
    open_from = go_live + 90 * MINUTE
    roles = [role for role, count in _ROLES for _ in range(count)]
    first_names = rng.sample(_FIRST_NAMES, _PEOPLE)
    last_names = rng.sample(_LAST_NAMES, _PEOPLE)
    ids = _opaque_ids(rng, "usr_", _PEOPLE, 10)
    # Six juniors join during the window; five sellers sign in with a password, not SSO.
    juniors = [i for i, role in enumerate(roles) if role in ("sdr", "account_executive")]
    new_hires = rng.sample(juniors, 6)
    seniors = [i for i, role in enumerate(roles) if role in _SELLERS and i not in new_hires]
    outside_sso = rng.sample(seniors, 5)
    people = []
    for i, role in enumerate(roles):
        first, last = first_names[i], last_names[i]
        office = rng.choices(_OFFICES, cum_weights=_OFFICE_CUM_WEIGHTS)[0]
        at_home = rng.random() < 0.4
        invited_at = _story_moment(rng, 3, 33, 16.0) if i in new_hires else None
        active_from = open_from
        if invited_at is not None:
            active_from = invited_at + _pause(rng, 2 * 3600, 30 * 3600)
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
    suffixes = _opaque_ids(rng, "", len(_PROVIDERS), 6)
    connections = {
        provider: _Connection(provider, f"conn_{provider}_{suffix}", title, scopes, objects)
        for (provider, title, scopes, objects), suffix in zip(_PROVIDERS, suffixes, strict=True)
    }
    owners = [p for p in people if p.role in _SELLERS and p.invited_at is None]
    deals = []
    for deal_id in _opaque_ids(rng, "006", 160, 12):  # Salesforce opportunity ids start 006
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


# --- beats: what happens when ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SettingChange:
    setting: str
    before: str | int | bool | tuple[str, ...]
    after: str | int | bool | tuple[str, ...]
    secret: bool = False  # the values are recorded masked


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
    """One step of a workflow and the action that records it."""

    name: str
    action: str
    provider: str | None = None
    object_type: str = ""  # what a retrieval reads
    destination: str = ""  # where an alert goes: a Slack channel, "owner_dm" or "owner_email"
    tool: str = ""  # what an agent acts with


_TRIGGER = _Step("trigger", WORKFLOW_TRIGGERED)
_START = _Step("start", WORKFLOW_STARTED)
_FINISH = _Step("finish", WORKFLOW_COMPLETED)

# A beat is one event as a script decides it: (at, action, outcome, detail, provider). The
# provider is decided here, not while rendering, so that the facts counted from beats are the
# facts of the stream. A plain tuple: a million of them are made twice.
_Detail = str | _Act | _Step | None
_Beat = tuple[int, str, str, _Detail, str | None]


class _Episode(Protocol):
    """A stretch of related events, scripted from its own seed."""

    @property
    def start(self) -> int: ...

    @property
    def seed(self) -> int: ...

    def beats(self, dice: _Dice) -> list[_Beat]: ...

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]: ...


_CATEGORY: Mapping[str, str] = MappingProxyType({action: spec.category for action, spec in CATALOGUE.items()})


def _event(at: int, action: str, outcome: str, actor: dict[str, str], said: str, parts: Event) -> Event:
    """One producer event (CONTRACT section 2). ``parts`` holds the optional fields it has
    (targets, integration, workflow, context, metadata): absent ones are left out, never null."""
    # "id" comes first so that it reads first; the stream fills it in once the order is known.
    return {
        "id": "",
        "occurred_at": _timestamp(at),
        "category": _CATEGORY[action],
        "action": action,
        "outcome": outcome,
        "actor": actor,
        "description": said,
        **parts,
    }


# --- sessions -------------------------------------------------------------------------------

_SSO_FAILURES = ("assertion_expired", "user_not_assigned_to_app", "clock_skew", "idp_timeout")
_BUSY_ASKERS = ("account_executive", "sdr", "sales_manager", "executive")
_QUERIES_BUSY = (0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6)  # assistant questions in one session
_QUERIES_OTHER = (0, 0, 0, 1, 1, 1, 2, 2, 3, 4)
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
_SOURCE_CHOICES = tuple(sources for n in (1, 2, 3) for sources in itertools.combinations(_QUERY_SOURCES, n))
_SIGNED_IN = (AUTH_LOGIN_SUCCEEDED, AUTH_SSO_SUCCEEDED)


@dataclass(frozen=True, slots=True)
class _Session:
    """A person signs in, works a while (administration, assistant questions), and leaves."""

    start: int
    seed: int
    person: _Person
    method: str  # "saml", "oidc" or "password"
    acts: tuple[_Act, ...] = ()
    away: _Place | None = None  # signing in from a country the person has never been in
    change_password: bool = False

    def beats(self, dice: _Dice) -> list[_Beat]:
        t = self.start
        out: list[_Beat] = []
        if self.method == "password":
            t = self._password_login(dice, t, out)
        else:
            if dice.chance(0.04):
                out.append((t, AUTH_SSO_FAILED, "failure", dice.choice(_SSO_FAILURES), None))
                t += dice.pause(20, 120)
            if self.away:  # the identity provider steps up to MFA for an unknown country
                out.append((t, AUTH_MFA_CHALLENGED, "success", "okta_verify_push", None))
                t += dice.pause(4, 15)
            out.append((t, AUTH_SSO_SUCCEEDED, "success", None, None))
        for act in self.acts:
            t = _act_beats(act, dice, t + dice.pause(40, 300), out)
        busy = self.person.role in _BUSY_ASKERS
        for _ in range(dice.choice(_QUERIES_BUSY if busy else _QUERIES_OTHER)):
            t += dice.pause(45, 1500)
            out.append((t, ASSISTANT_QUERY_SUBMITTED, "success", None, None))
        if self.change_password or (self.method == "password" and dice.chance(0.02)):
            t += dice.pause(30, 300)
            out.append((t, AUTH_PASSWORD_CHANGED, "success", None, None))
        if dice.chance(0.55):
            t += dice.pause(60, 1800)
            out.append((t, AUTH_LOGOUT, "success", None, None))
        else:  # the sweeper that ends idle sessions runs every ninety seconds
            t += _IDLE_MINUTES * MINUTE + dice.pause(0, 90)
            out.append((t, AUTH_SESSION_EXPIRED, "success", "idle_timeout", None))
        return out

    def _password_login(self, dice: _Dice, t: int, out: list[_Beat]) -> int:
        draw = 0.0 if self.change_password else dice.random()
        for _ in range(0 if draw < 0.86 else 1 if draw < 0.97 else 2):  # mistyped passwords
            out.append((t, AUTH_LOGIN_ATTEMPTED, "pending", None, None))
            t += dice.pause(0.2, 0.9)
            out.append((t, AUTH_LOGIN_FAILED, "failure", "invalid_password", None))
            t += dice.pause(5, 40)
        out.append((t, AUTH_LOGIN_ATTEMPTED, "pending", None, None))
        t += dice.pause(0.3, 1.2)
        if dice.chance(0.04):
            out.append((t, AUTH_MFA_CHALLENGED, "failure", "totp", None))
            t += dice.pause(10, 60)
        out.append((t, AUTH_MFA_CHALLENGED, "success", "totp", None))
        t += dice.pause(3, 20)
        out.append((t, AUTH_LOGIN_SUCCEEDED, "success", None, None))
        return t

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        person = self.person
        place = self.away or _Place(person.office.location, person.ip)
        user_agent = _MOBILE_APP if self.method == "oidc" else person.user_agent
        session_id = f"sess_{self.seed:016x}"
        signed_in = False
        events = []
        for at, action, outcome, detail, _ in beats:
            signed_in = signed_in or action in _SIGNED_IN
            context = {"ip": place.ip, "user_agent": user_agent, "location": place.location}
            if signed_in:
                context["session_id"] = session_id
            context["request_id"] = f"req_{rng.getrandbits(64):016x}"
            if isinstance(detail, _Act):
                events.append(_act_event(at, action, detail, person, context))
            elif action == ASSISTANT_QUERY_SUBMITTED:
                events.append(_query_event(at, person, context, rng, org))
            else:
                said, metadata = self._auth_wording(action, outcome, detail)
                actor = _PLATFORM.actor() if action == AUTH_SESSION_EXPIRED else person.actor()
                parts = {"targets": [person.target()], "context": context}
                if metadata:
                    parts["metadata"] = metadata
                events.append(_event(at, action, outcome, actor, said, parts))
        return events

    def _auth_wording(self, action: str, outcome: str, detail: _Detail) -> tuple[str, dict[str, Any]]:
        """The description and metadata of a sign-in event."""
        who = self.person.name
        sso: dict[str, Any] = {"protocol": self.method, "idp": "okta"}
        protocol = self.method.upper()
        if action == AUTH_LOGIN_ATTEMPTED:
            return f"{who} submitted a password sign-in", {"method": "password"}
        if action == AUTH_LOGIN_FAILED:
            said = _REFUSED.format(email=self.person.email)
            return said, {"method": "password", "reason": "invalid_password"}
        if action == AUTH_LOGIN_SUCCEEDED:
            return f"{who} signed in with a password", {"method": "password"}
        if action == AUTH_SSO_SUCCEEDED:
            extra = {"new_country": True} if self.away else {}
            return f"{who} signed in through Okta ({protocol})", sso | extra
        if action == AUTH_SSO_FAILED:
            said = f"Okta {protocol} sign-in refused for {self.person.email}: {detail}"
            return said, sso | {"reason": str(detail)}
        if action == AUTH_MFA_CHALLENGED:
            result = "met" if outcome == "success" else "failed"
            metadata = {"factor": str(detail)}
            if self.away:
                metadata["reason"] = "new_country"
            return f"{who} was asked for a second factor ({detail}): {result}", metadata
        if action == AUTH_PASSWORD_CHANGED:
            return f"{who} changed their password", {}
        if action == AUTH_LOGOUT:
            return f"{who} signed out", {}
        # AUTH_SESSION_EXPIRED: the platform ends the session, not the person.
        said = f"Session of {who} expired after {_IDLE_MINUTES} idle minutes"
        return said, {"reason": "idle_timeout", "idle_minutes": _IDLE_MINUTES}


_REFUSED = "Password sign-in refused for {email}: invalid password"


def _act_beats(act: _Act, dice: _Dice, t: int, out: list[_Beat]) -> int:
    if isinstance(act, _Connect | _Revoke):
        connect = isinstance(act, _Connect)
        first = INTEGRATION_OAUTH_GRANTED if connect else INTEGRATION_OAUTH_REVOKED
        then = INTEGRATION_CONNECTED if connect else INTEGRATION_DISCONNECTED
        out.append((t, first, "success", act, act.connection.provider))
        t += dice.pause(1, 15)
        out.append((t, then, "success", act, act.connection.provider))
    elif isinstance(act, _SettingChange):
        out.append((t, CONFIG_CHANGED, "success", act, None))
    elif isinstance(act, _Invitation):
        out.append((t, USER_INVITED, "success", act, None))
    else:
        out.append((t, USER_ROLE_CHANGED, "success", act, None))
    return t


def _shown(value: str | int | bool | tuple[str, ...]) -> str | int | bool | list[str]:
    return list(value) if isinstance(value, tuple) else value


def _act_event(at: int, action: str, act: _Act, admin: _Person, context: dict[str, str]) -> Event:
    actor, who = admin.actor(), admin.name
    parts: Event = {"context": context}
    if isinstance(act, _SettingChange):
        # Secret values arrive masked (their last four characters): never recorded in clear.
        parts["targets"] = [{"type": "setting", "id": act.setting}]
        parts["metadata"] = {
            "setting": act.setting,
            "before": _shown(act.before),
            "after": _shown(act.after),
            "redacted": act.secret,
        }
        return _event(at, action, "success", actor, f"{who} changed {act.setting}", parts)
    if isinstance(act, _Invitation):
        invitee = act.invitee
        parts["targets"] = [invitee.target()]
        parts["metadata"] = {"role": invitee.role, "email": invitee.email}
        return _event(at, action, "success", actor, f"{who} invited {invitee.email} as {invitee.role}", parts)
    if isinstance(act, _RoleChange):
        parts["targets"] = [act.person.target()]
        parts["metadata"] = {"before": act.before, "after": act.after}
        said = f"{who} changed the role of {act.person.name} from {act.before} to {act.after}"
        return _event(at, action, "success", actor, said, parts)
    connection = act.connection
    title = connection.title
    parts |= {"targets": [connection.target()], "integration": connection.integration()}
    if action == INTEGRATION_OAUTH_GRANTED:
        said = f"{who} granted OAuth access to {title}"
        parts["metadata"] = {"scopes": list(connection.scopes)}
    elif action == INTEGRATION_CONNECTED:
        said = f"{who} connected {title}"
    elif action == INTEGRATION_OAUTH_REVOKED:
        said = f"{who} revoked the OAuth grant of {title}"
        parts["metadata"] = {"reason": act.reason if isinstance(act, _Revoke) else ""}
    else:  # INTEGRATION_DISCONNECTED after the revocation: the platform closes the connection
        actor = _PLATFORM.actor()
        said = f"{title} disconnected: its OAuth grant was revoked"
        parts["context"] = {"request_id": context["request_id"]}
        parts["metadata"] = {"reason": "oauth_grant_revoked"}
    return _event(at, action, "success", actor, said, parts)


def _query_event(at: int, person: _Person, context: dict[str, str], rng: random.Random, org: _Org) -> Event:
    question = _pick(rng, _QUESTIONS).format(account=_pick(rng, org.deals).account)
    metadata = {
        "question": question,
        "conversation_id": f"conv_{rng.getrandbits(48):012x}",
        "sources": list(_pick(rng, _SOURCE_CHOICES)),
        "latency_ms": 400 + int(rng.random() * 5000),
    }
    said = f"{person.name} asked the assistant: {question}"
    parts = {"context": context, "metadata": metadata}
    return _event(at, ASSISTANT_QUERY_SUBMITTED, "success", person.actor(), said, parts)


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

    def beats(self, dice: _Dice) -> list[_Beat]:
        t = self.start
        out: list[_Beat] = []
        if self.requested_by:
            out.append((t, WORKFLOW_TRIGGERED, "success", _TRIGGER, None))
            t += dice.pause(0.3, 2)
        out.append((t, WORKFLOW_STARTED, "success", _START, None))
        for step in self.workflow.steps:
            for _ in range(self.tasks if step.action == CRM_TASK_CREATED else 1):
                t += dice.pause(0.2, 6)
                if step.name == self.fail_step:
                    out.append((t, step.action, "failure", step, step.provider))
                    t += dice.pause(0.05, 1.5)
                    out.append((t, WORKFLOW_FAILED, "failure", step, None))
                    return out
                out.append((t, step.action, "success", step, step.provider))
        t += dice.pause(0.05, 1)
        out.append((t, WORKFLOW_COMPLETED, "success", _FINISH, None))
        return out

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        wf, deal, owner = self.workflow, self.deal, self.deal.owner
        failing = next(((b[1], b[4]) for b in beats if b[2] == "failure"), None)
        error = self.error or (_pick(rng, _STEP_ERRORS[failing]) if failing else "")
        subject = deal.target()
        if wf.subject == "lead":
            lead = f"{_pick(rng, _FIRST_NAMES)} {_pick(rng, _LAST_NAMES)} ({deal.account})"
            subject = {"type": "lead", "id": f"00Q{rng.getrandbits(48):012X}", "name": lead}
        name = subject["name"]
        trace_id = f"{rng.getrandbits(128):032x}"
        task = int(rng.random() * len(_TASK_TITLES))
        events = []
        for at, action, outcome, detail, provider in beats:
            step = detail if isinstance(detail, _Step) else _START
            actor = wf.agent.actor()
            targets = [subject]
            context = {"request_id": f"req_{rng.getrandbits(64):016x}", "trace_id": trace_id}
            metadata: dict[str, Any]
            if action == WORKFLOW_TRIGGERED:
                person = self.requested_by or owner
                actor = person.actor()
                targets = [{"type": "workflow", "id": wf.id, "name": wf.name}, subject]
                context |= {
                    "ip": person.ip,
                    "user_agent": person.user_agent,
                    "location": person.office.location,
                }
                said, metadata = f"{person.name} ran {wf.name} for {name}", {"source": "console"}
            elif action == WORKFLOW_STARTED:
                said, metadata = self._started(name, rng)
            elif action == WORKFLOW_COMPLETED:
                said = f"{wf.name} completed for {name}"
                metadata = {"duration_ms": (at - beats[0][0]) // 1000, "events": len(beats)}
            elif action == WORKFLOW_FAILED:
                said = f"{wf.name} failed at step {step.name}: {error}"
                metadata = {"signal": wf.signal, "step": step.name, "error": error}
            else:
                said, targets, metadata = _step_content(step, at, subject, owner, task, rng)
                task += action == CRM_TASK_CREATED
                if outcome == "failure":
                    said, metadata["error"] = f"{said}: failed, {error}", error
            parts: Event = {"targets": targets}
            if provider:
                parts["integration"] = org.connections[provider].integration()
            parts["workflow"] = {
                "run_id": self.run_id,
                "id": wf.id,
                "name": wf.name,
                "trigger": self.trigger,
                "step": step.name,
            }
            parts["context"] = context
            parts["metadata"] = metadata
            events.append(_event(at, action, outcome, actor, said, parts))
        return events

    def _started(self, name: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
        wf, deal = self.workflow, self.deal
        metadata: dict[str, Any] = {"stage": deal.stage, "amount": deal.amount}
        if self.requested_by:
            metadata["requested_by"] = self.requested_by.id
            return f"{wf.name} started for {name}: requested by {self.requested_by.name}", metadata
        metadata["signal"] = wf.signal
        if wf is _STALLED_DEAL:
            metadata["days_stalled"] = 14 + int(rng.random() * 12)
        return f"{wf.name} started for {name}: signal {wf.signal!r}", metadata


def _step_content(
    step: _Step, at: int, subject: dict[str, str], owner: _Person, task: int, rng: random.Random
) -> tuple[str, list[dict[str, str]], dict[str, Any]]:
    """The description, targets and metadata of one step's event (``task`` numbers the
    run's tasks, so that two of them never have the same title)."""
    action, name = step.action, subject["name"]
    if action == INTEGRATION_DATA_RETRIEVED:
        count = 1 + int(rng.random() * 12) if step.object_type == "Thread" else 1
        source = _TITLES[str(step.provider)]
        metadata: dict[str, Any] = {"provider": step.provider, "object_type": step.object_type}
        metadata["record_count"] = count
        return f"Read {count} {step.object_type} record(s) from {source} for {name}", [subject], metadata
    if action == CRM_TASK_CREATED:
        title = _TASK_TITLES[task % len(_TASK_TITLES)].format(owner=owner.name.split()[0])
        created = {"type": "task", "id": f"00T{rng.getrandbits(48):012X}", "name": title}
        metadata = {"owner_id": owner.id, "due_date": _timestamp(at + 2 * DAY)[:10]}
        return f"Created task {title!r} on {name} for {owner.name}", [created, subject], metadata
    if action == ALERT_SENT:
        channel = "email" if step.destination == "owner_email" else "slack"
        to = step.destination
        if to == "owner_email":
            to = owner.email
        elif to == "owner_dm":
            to = "@" + owner.email.partition("@")[0]
        metadata = {"channel": channel, "destination": to}
        return f"Alerted {to} by {channel} about {name}", [owner.target(), subject], metadata
    if action == AGENT_ACTION_TAKEN:
        said = _AGENT_SAYS[step.tool].format(subject=name, owner=owner.name)
        return said, [subject], {"tool": step.tool, "decision": step.name}
    # MEETING_SCHEDULED: two to four days ahead, in the afternoon (UTC)
    starts = (at // DAY + 2 + int(rng.random() * 3)) * DAY + (15 + int(rng.random() * 5)) * HOUR
    title = f"{name}: next steps"
    meeting = {"type": "meeting", "id": f"evt_{rng.getrandbits(64):016x}", "name": title}
    metadata = {
        "starts_at": _timestamp(starts),
        "duration_minutes": 30,
        "attendees": 2 + int(rng.random() * 4),
    }
    return f"Scheduled {title!r} with {owner.name}", [meeting, subject], metadata


# --- the platform's own jobs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sync:
    """A scheduled sync reads a few object types from one connected system."""

    start: int
    seed: int
    connection: _Connection
    reads: int

    def beats(self, dice: _Dice) -> list[_Beat]:
        provider, objects = self.connection.provider, self.connection.objects
        out: list[_Beat] = []
        t = self.start
        for _ in range(self.reads):
            out.append((t, INTEGRATION_DATA_RETRIEVED, "success", dice.choice(objects), provider))
            t += dice.pause(0.5, 20)
        return out

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        c = self.connection
        events = []
        for at, action, outcome, object_type, _ in beats:
            count = int(rng.paretovariate(1.2) * 12)  # mostly a few, now and then thousands
            said = f"Scheduled sync read {count} {object_type} records from {c.title}"
            metadata = {
                "provider": c.provider,
                "object_type": object_type,
                "record_count": count,
                "mode": "incremental",
            }
            parts = {
                "targets": [c.target()],
                "integration": c.integration(),
                "context": {"request_id": f"req_{rng.getrandbits(64):016x}"},
                "metadata": metadata,
            }
            events.append(_event(at, action, outcome, _SYNC_SERVICE.actor(), said, parts))
        return events


@dataclass(frozen=True, slots=True)
class _Refresh:
    """The platform exchanges a connection's refresh token for a new access token."""

    start: int
    seed: int
    connection: _Connection

    def beats(self, dice: _Dice) -> list[_Beat]:
        return [(self.start, INTEGRATION_OAUTH_REFRESHED, "success", None, self.connection.provider)]

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        c = self.connection
        events = []
        for at, action, outcome, _, _ in beats:
            metadata = {"expires_at": _timestamp(at + HOUR), "expires_in": 3600}
            parts = {
                "targets": [c.target()],
                "integration": c.integration(),
                "context": {"request_id": f"req_{rng.getrandbits(64):016x}"},
                "metadata": metadata,
            }
            said = f"Refreshed the {c.title} access token"
            events.append(_event(at, action, outcome, _TOKEN_SERVICE.actor(), said, parts))
        return events


@dataclass(frozen=True, slots=True)
class _BruteForce:
    """Password guesses against one account from one address, seconds apart."""

    start: int
    seed: int
    victim: _Person
    attempts: int

    def beats(self, dice: _Dice) -> list[_Beat]:
        out: list[_Beat] = []
        t = self.start
        for _ in range(self.attempts):
            out.append((t, AUTH_LOGIN_ATTEMPTED, "pending", None, None))
            t += dice.pause(0.15, 0.6)
            out.append((t, AUTH_LOGIN_FAILED, "failure", "invalid_password", None))
            t += dice.pause(1.5, 6)
        return out

    def render(self, beats: list[_Beat], rng: random.Random, org: _Org) -> list[Event]:
        victim = self.victim
        events = []
        for at, action, outcome, _, _ in beats:
            context = {
                "ip": _ATTACKER.ip,
                "user_agent": _ATTACKER_AGENT,
                "location": _ATTACKER.location,
                "request_id": f"req_{rng.getrandbits(64):016x}",
            }
            if action == AUTH_LOGIN_FAILED:
                said = _REFUSED.format(email=victim.email)
                metadata = {"method": "password", "reason": "invalid_password"}
            else:
                said, metadata = f"{victim.name} submitted a password sign-in", {"method": "password"}
            parts = {"targets": [victim.target()], "context": context, "metadata": metadata}
            events.append(_event(at, action, outcome, victim.actor(), said, parts))
        return events


# --- the facts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoFacts:
    """What the generator knows about the stream it makes, for tests and documentation.

    Times are in the stored form (``YYYY-MM-DDTHH:MM:SS.ffffffZ``); people are user ids
    (``usr_...``). Every count is exact: it is counted from the same scripts that the stream
    is rendered from.
    """

    tenant: str
    seed: int
    events: int
    id_prefix: str  # event ids are id_prefix followed by the 0-based position in the stream
    domain: str
    window_start: str  # inclusive
    window_end: str  # exclusive
    first_at: str
    last_at: str
    people: int
    people_by_role: Mapping[str, int]  # roles at the start of the window
    counts_by_action: Mapping[str, int]
    counts_by_category: Mapping[str, int]
    retrievals_by_provider: Mapping[str, int]  # successful integration.data.retrieved
    connections: Mapping[str, str]  # provider -> connection id
    brute_force_ip: str
    brute_force_target_user: str
    brute_force_target_email: str
    brute_force_count: int  # auth.login.failed from brute_force_ip; all of them are the burst
    brute_force_start: str  # the first attempt
    brute_force_end: str  # the last failure
    new_country_user: str
    new_country_location: str  # "City, CC"; nobody's events come from that country otherwise
    new_country_ip: str
    new_country_at: str  # the auth.sso.succeeded of that login
    revoked_provider: str
    revoked_connection_id: str
    revoked_by: str
    revoked_at: str  # integration.oauth.revoked
    disconnected_at: str  # the integration.disconnected that follows it
    workflow_runs: int
    failed_runs: tuple[str, ...]  # run ids ending in workflow.failed, oldest first
    example_run_id: str  # a stalled-deal run: signal, tasks, Slack and email alerts, meeting
    example_manual_run_id: str  # a run a person started by hand (workflow.triggered)


class _Tally:
    """Counts planned beats into facts."""

    def __init__(self) -> None:
        # (action, outcome, provider) -> events: one C-level update per episode
        self.kinds: Counter[tuple[str, str, str | None]] = Counter()
        self.first = _LATEST_START
        self.last = 0
        self.runs = 0
        self.failed_runs: list[tuple[int, str]] = []

    def add(self, episode: _Episode, beats: list[_Beat]) -> None:
        self.kinds.update([(action, outcome, provider) for _, action, outcome, _, provider in beats])
        self.first = min(self.first, beats[0][0])
        self.last = max(self.last, beats[-1][0])
        if isinstance(episode, _Run):
            self.runs += 1
            if beats[-1][1] == WORKFLOW_FAILED:
                self.failed_runs.append((episode.start, episode.run_id))

    def by(self, pick: Callable[[str, str, str | None], str | None]) -> Mapping[str, int]:
        """Events counted by what ``pick`` says of their kind (None: not counted), by name."""
        counts: Counter[str] = Counter()
        for (action, outcome, provider), count in self.kinds.items():
            key = pick(action, outcome, provider)
            if key is not None:
                counts[key] += count
        return MappingProxyType(dict(sorted(counts.items())))


# --- the plan -------------------------------------------------------------------------------


class _RunIds:
    """Run ids that look random and never repeat: a counter through a bijection of 64 bits
    (multiplying by an odd number modulo 2**64 can be undone, and so can xor)."""

    def __init__(self, rng: random.Random) -> None:
        self._salt = rng.getrandbits(64)
        self._next = itertools.count(1)

    def __call__(self) -> str:
        scrambled = ((next(self._next) * 0x9E3779B97F4A7C15) & _MASK64) ^ self._salt
        return f"run_{scrambled:016x}"


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
    seed = rng.getrandbits
    episodes: list[_Episode] = []

    def session(at: int, person: _Person, *acts: _Act, **how: Any) -> _Session:
        episode = _Session(at, seed(64), person, how.pop("method", "saml"), acts, **how)
        episodes.append(episode)
        return episode

    # Go-live: SSO enforced, the five systems connected, the pipeline signal tuned.
    session(
        org.go_live,
        first_admin,
        _SettingChange("auth.sso.enforced", False, True),
        _SettingChange("auth.session.idle_timeout_minutes", 60, _IDLE_MINUTES),
        *(_Connect(c) for c in org.connections.values()),
        _SettingChange("workflows.stalled_deal.threshold_days", 21, 14),
        _SettingChange("assistant.sources", ("salesforce",), _QUERY_SOURCES),
    )
    for i, hire in enumerate(p for p in org.people if p.invited_at is not None):
        session(hire.invited_at or 0, org.admins[i % 2], _Invitation(hire))
    sdrs = [p for p in org.people if p.role == "sdr" and p.invited_at is None]
    aes = [p for p in org.people if p.role == "account_executive" and p.invited_at is None]
    revops = next(p for p in org.people if p.role == "revops")
    session(
        _story_moment(rng, 8, 12, 17.5),
        first_admin,
        _RoleChange(sdrs[0], "sdr", "account_executive"),
        _RoleChange(sdrs[1], "sdr", "account_executive"),
    )
    session(
        _story_moment(rng, 22, 26, 17.5),
        second_admin,
        _RoleChange(aes[0], "account_executive", "sales_manager"),
        _RoleChange(revops, "revops", "admin"),
    )
    session(
        _story_moment(rng, 8, 11, 19.0),
        second_admin,
        _SettingChange("integrations.slack.signing_secret", _mask(rng), _mask(rng), True),
        _SettingChange("integrations.salesforce.client_secret", _mask(rng), _mask(rng), True),
    )

    # A night in week three: guesses at an account outside SSO. In the morning its owner
    # changes the password, and an administrator turns on lockout.
    victim = rng.choice([p for p in org.people if p.password_login])
    night = rng.choice([d for d in _WEEKDAYS if 14 <= d <= 17])
    brute_force = _BruteForce(
        night * DAY + 2 * HOUR + _pause(rng, 0, 3600), seed(64), victim, attempts=rng.randint(36, 60)
    )
    episodes.append(brute_force)
    morning = (night + 1) * DAY + int((8.5 - victim.office.utc_offset) * HOUR)
    session(morning, victim, method="password", change_password=True)
    session(morning + 2 * HOUR, first_admin, _SettingChange("auth.lockout.max_failed_attempts", 0, 10))

    # One sign-in from a country the traveller has never signed in from.
    travellers = [
        p
        for p in org.people
        if p.role == "account_executive"
        and p.office.location.endswith(", US")
        and not p.password_login
        and p.invited_at is None
    ]
    new_country = session(_story_moment(rng, 21, 25, 9.0), rng.choice(travellers), away=_TRAVEL)

    # HubSpot's grant is revoked; lead routing reads Salesforce from the next day.
    hubspot = org.connections[_REVOKED_PROVIDER]
    revocation = session(
        org.revocation, second_admin, _Revoke(hubspot, "HubSpot contract ends; leads move to Salesforce")
    )
    session(
        org.revocation + DAY,
        second_admin,
        _SettingChange("workflows.lead_routing.source", "hubspot", "salesforce"),
    )

    def run(first_day: int, utc_hour: float, deal: _Deal, **how: Any) -> _Run:
        at = _story_moment(rng, first_day, first_day + 4, utc_hour)
        episode = _Run(at, seed(64), run_ids(), _STALLED_DEAL, deal, **how)
        episodes.append(episode)
        return episode

    # Stalled deals: one run all the way to a meeting, one started by hand, two that fail.
    deals = org.deals
    example_run = run(7, 15.0, deals[0], tasks=2)
    manual_run = run(15, 16.0, deals[1], requested_by=deals[1].owner)
    run(12, 14.0, deals[2], fail_step="create_tasks", error=_RATE_LIMITED)
    run(19, 18.0, deals[3], fail_step="schedule_meeting", error=_NO_SLOT)
    return _Story(tuple(episodes), brute_force, new_country, revocation, example_run, manual_run)


def _refreshes(org: _Org, rng: random.Random, count: int) -> list[_Episode]:
    """About ``count`` token refreshes, evenly spaced per connection while it works."""
    lives = {
        provider: (
            org.open_from,
            org.revocation - 10 * MINUTE if provider == _REVOKED_PROVIDER else _LATEST_START,
        )
        for provider in org.connections
    }
    interval = sum(end - begin for begin, end in lives.values()) // count
    episodes: list[_Episode] = []
    for provider, (begin, end) in lives.items():
        at = begin + int(rng.random() * interval)
        while at < end:
            episodes.append(_Refresh(at, rng.getrandbits(64), org.connections[provider]))
            at += interval + _pause(rng, -60, 60)
    return episodes


# What everyday life is made of, by weight: sessions, signalled runs, runs by hand, syncs.
_KINDS = ("session",) * 15 + ("run",) * 14 + ("manual_run",) + ("sync",) * 20
_US_CENTRAL = -6  # signals are evaluated on the sales team's clock


def _background_episode(org: _Org, rng: random.Random, run_ids: _RunIds) -> _Episode:
    kind = _pick(rng, _KINDS)
    if kind == "session":
        person = _pick(rng, org.people)
        start = _working_moment(rng, person.office.utc_offset, person.active_from)
        method = "password" if person.password_login else "oidc" if rng.random() < 0.25 else "saml"
        return _Session(start, rng.getrandbits(64), person, method)
    if kind == "sync":
        return _sync(org, rng, reads=1 + int(rng.random() * 3))
    deal = _pick(rng, org.deals)
    seed = rng.getrandbits(64)
    tasks = 2 if rng.random() < 0.4 else 1
    if kind == "manual_run":
        start = _working_moment(rng, deal.owner.office.utc_offset, org.open_from)
        return _Run(start, seed, run_ids(), _STALLED_DEAL, deal, requested_by=deal.owner, tasks=tasks)
    workflow = _pick(rng, _SIGNALLED)
    start = _working_moment(rng, _US_CENTRAL, org.open_from)
    fail_step = _pick(rng, workflow.steps).name if rng.random() < 0.06 else None
    error = None
    if workflow is _LEAD_ROUTING and not org.usable(_REVOKED_PROVIDER, start):
        if start < org.revocation + DAY:  # until the switch, lead routing hits the revoked grant
            fail_step, error = "load_lead", _REVOKED_ERROR
        else:
            workflow = _LEAD_ROUTING_AFTER_REVOCATION
    return _Run(start, seed, run_ids(), workflow, deal, fail_step=fail_step, tasks=tasks, error=error)


def _sync(org: _Org, rng: random.Random, reads: int) -> _Sync:
    connections = tuple(org.connections.values())
    while True:
        start = org.open_from + int(rng.random() * (_LATEST_START - org.open_from))
        connection = _pick(rng, connections)
        if org.usable(connection.provider, start):
            return _Sync(start, rng.getrandbits(64), connection, reads)


@dataclass(frozen=True)
class _Plan:
    org: _Org
    episodes: list[_Episode]  # by start
    facts: DemoFacts
    render_seed: int


def _script(episode: _Episode) -> list[_Beat]:
    return episode.beats(_Dice(episode.seed))


def _plan(events: int, seed: int) -> _Plan:
    if isinstance(events, bool) or not isinstance(events, int) or events < MIN_EVENTS:
        raise InvalidArgument("events", f"the demo needs at least {MIN_EVENTS} events")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidArgument("seed", "must be an integer from 0 to 2**63 - 1")
    rng = random.Random(2 * seed)  # 2 * seed + 1 seeds the rendering
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

    told = {id(episode): _script(episode) for episode in story.episodes}
    for episode in story.episodes:
        take(episode, told[id(episode)])
    for episode in _refreshes(org, rng, max(3 * len(org.connections), events // 40)):
        take(episode, _script(episode))
    if remaining < 0:  # MIN_EVENTS is meant to prevent this
        raise InvalidArgument("events", f"the demo needs at least {events - remaining} events")
    while remaining > 0:
        episode = _background_episode(org, rng, run_ids)
        beats = _script(episode)
        if len(beats) > remaining:  # single reads fill whatever is left
            episode = _sync(org, rng, reads=1)
            beats = _script(episode)
        take(episode, beats)
    episodes.sort(key=lambda e: e.start)  # stable: ties keep the order they were planned in
    return _Plan(org, episodes, _facts(events, seed, org, story, told, tally), 2 * seed + 1)


def _facts(
    events: int,
    seed: int,
    org: _Org,
    story: _Story,
    told: Mapping[int, list[_Beat]],
    tally: _Tally,
) -> DemoFacts:
    burst = told[id(story.brute_force)]
    landing = next(b for b in told[id(story.new_country)] if b[1] == AUTH_SSO_SUCCEEDED)
    revocation = told[id(story.revocation)]
    revoked = next(b for b in revocation if b[1] == INTEGRATION_OAUTH_REVOKED)
    disconnected = next(b for b in revocation if b[1] == INTEGRATION_DISCONNECTED)
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
        people_by_role=MappingProxyType(dict(sorted(Counter(p.role for p in org.people).items()))),
        counts_by_action=tally.by(lambda action, _, __: action),
        counts_by_category=tally.by(lambda action, _, __: _CATEGORY[action]),
        retrievals_by_provider=tally.by(
            lambda action, outcome, provider: (
                provider if action == INTEGRATION_DATA_RETRIEVED and outcome == "success" else None
            )
        ),
        connections=MappingProxyType({p: c.id for p, c in org.connections.items()}),
        brute_force_ip=_ATTACKER.ip,
        brute_force_target_user=story.brute_force.victim.id,
        brute_force_target_email=story.brute_force.victim.email,
        brute_force_count=sum(b[1] == AUTH_LOGIN_FAILED for b in burst),
        brute_force_start=_timestamp(burst[0][0]),
        brute_force_end=_timestamp(burst[-1][0]),
        new_country_user=story.new_country.person.id,
        new_country_location=_TRAVEL.location,
        new_country_ip=_TRAVEL.ip,
        new_country_at=_timestamp(landing[0]),
        revoked_provider=_REVOKED_PROVIDER,
        revoked_connection_id=org.connections[_REVOKED_PROVIDER].id,
        revoked_by=story.revocation.person.id,
        revoked_at=_timestamp(revoked[0]),
        disconnected_at=_timestamp(disconnected[0]),
        workflow_runs=tally.runs,
        failed_runs=tuple(run_id for _, run_id in sorted(tally.failed_runs)),
        example_run_id=story.example_run.run_id,
        example_manual_run_id=story.manual_run.run_id,
    )


# --- the stream -----------------------------------------------------------------------------


def _stream(plan: _Plan) -> Iterator[Event]:
    """Renders the episodes in start order and merges their events by time.

    An episode's events are never earlier than its start, so once the next episode starts at
    ``s`` every event before ``s`` is final. Ties keep the order of rendering, which is fixed.
    The rendering's own chance (request ids, record counts, wording) is drawn in that order
    from one generator.
    """
    prefix, org = plan.facts.id_prefix, plan.org
    rng = random.Random(plan.render_seed)
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
        beats = _script(episode)
        for beat, event in zip(beats, episode.render(beats, rng, org), strict=True):
            heapq.heappush(heap, (beat[0], next(order), event))
    while heap:
        event = heapq.heappop(heap)[2]
        event["id"] = f"{prefix}{position}"
        position += 1
        yield event


def generate(events: int = 5000, seed: int = 7) -> tuple[Iterator[Event], DemoFacts]:
    """The demo organisation's events, oldest first, and the facts about them.

    Exactly ``events`` events, at least :data:`MIN_EVENTS`. Each is a fresh dict in the
    producer shape of CONTRACT section 2 whose ``id`` is ``facts.id_prefix`` and its position,
    so that writing the same stream twice stores it once. The facts are exact before the first
    event is drawn. Raises :class:`InvalidArgument` for fewer events than the minimum or a
    seed outside ``0 .. 2**63 - 1``.
    """
    plan = _plan(events, seed)
    return _stream(plan), plan.facts


class RecordsMany(Protocol):
    """What :func:`write_demo` needs of a log: ``AuditLog.record_later``, which validates a
    batch and queues it for the writer, all or nothing, its future resolving at the commit."""

    def record_later(self, tenant: str, events: Sequence[Mapping[str, Any]]) -> Future[Any]: ...


# Batches queued at once: the writer commits what is waiting together, so a deep queue means
# few, large commits, while the next batches are being generated.
IN_FLIGHT = 32


def write_demo(
    log: RecordsMany,
    *,
    events: int = 5000,
    seed: int = 7,
    tenant: str = TENANT,
    progress: Callable[[int], None] | None = None,
) -> DemoFacts:
    """Writes the demo organisation into ``tenant`` in batches of :data:`BATCH_SIZE`, calling
    ``progress`` with the number of events written after each batch; returns its facts."""
    stream, facts = generate(events, seed)
    written = 0
    queued: deque[tuple[Future[Any], int]] = deque()

    def settle(limit: int) -> None:
        nonlocal written
        while len(queued) > limit:
            future, size = queued.popleft()
            future.result()  # raises what the commit raised
            written += size
            if progress is not None:
                progress(written)

    while batch := list(itertools.islice(stream, BATCH_SIZE)):
        queued.append((log.record_later(tenant, batch), len(batch)))
        settle(IN_FLIGHT)
    settle(0)
    return replace(facts, tenant=tenant)
