"""Sessions: sign-ins (Okta over SAML or OIDC, or a password and a second factor), the work
done while signed in, and how a session ends; and the guesses at a password of a brute-force
burst.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from trailkeeper.catalogue import (
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
)
from trailkeeper.demo.administration import _act_beats, _act_event
from trailkeeper.demo.assistant import _query_event
from trailkeeper.demo.beats import Event, _Act, _Beat, _Detail, _event
from trailkeeper.demo.chance import _Dice
from trailkeeper.demo.clock import MINUTE
from trailkeeper.demo.organisation import _Org
from trailkeeper.demo.people import _ATTACKER, _ATTACKER_AGENT, _MOBILE_APP, _PLATFORM, _Person, _Place

_IDLE_MINUTES = 30  # the session idle timeout the go-live settings choose

_SSO_FAILURES = ("assertion_expired", "user_not_assigned_to_app", "clock_skew", "idp_timeout")
_BUSY_ASKERS = ("account_executive", "sdr", "sales_manager", "executive")
_QUERIES_BUSY = (0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6)  # assistant questions in one session
_QUERIES_OTHER = (0, 0, 0, 1, 1, 1, 2, 2, 3, 4)
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
