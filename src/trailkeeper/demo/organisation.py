"""The organisation: Larkspur's people, connections and deals, and when it goes live."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from trailkeeper.demo.chance import _pause, _story_moment
from trailkeeper.demo.clock import HOUR, MINUTE
from trailkeeper.demo.connections import _PROVIDERS, _REVOKED_PROVIDER, _Connection
from trailkeeper.demo.people import (
    _BROWSERS,
    _FIRST_NAMES,
    _LAST_NAMES,
    _OFFICE_CUM_WEIGHTS,
    _OFFICES,
    _PEOPLE,
    _ROLES,
    _SELLERS,
    _Person,
)

DOMAIN = "larkspur.example"  # RFC 2606 reserves .example for names like this one

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
class _Deal:
    id: str
    name: str
    account: str
    stage: str
    amount: int
    owner: _Person

    def target(self) -> dict[str, str]:
        return {"type": "opportunity", "id": self.id, "name": self.name}


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
