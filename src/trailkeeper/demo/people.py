"""Who acts: the organisation's offices, people and roles, the places they sign in from, and
the agents, services and platform that act besides them.
"""

from __future__ import annotations

from dataclasses import dataclass


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
