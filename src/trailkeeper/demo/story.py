"""The planted stories: go-live, new hires and role changes, the brute-force night, the
sign-in from a new country, the revoked grant, and the stalled-deal runs the facts name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from trailkeeper.demo.assistant import _QUERY_SOURCES
from trailkeeper.demo.beats import _Act, _Connect, _Episode, _Invitation, _Revoke, _RoleChange, _SettingChange
from trailkeeper.demo.chance import _pause, _story_moment
from trailkeeper.demo.clock import _WEEKDAYS, DAY, HOUR
from trailkeeper.demo.connections import _REVOKED_PROVIDER
from trailkeeper.demo.organisation import _Deal, _Org
from trailkeeper.demo.people import _TRAVEL, _Person
from trailkeeper.demo.runs import _Run, _RunIds
from trailkeeper.demo.sessions import _IDLE_MINUTES, _BruteForce, _Session
from trailkeeper.demo.workflows import _NO_SLOT, _RATE_LIMITED, _STALLED_DEAL


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
