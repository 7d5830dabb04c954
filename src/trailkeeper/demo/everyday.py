"""Everyday life around the stories: token refreshes, sessions, workflow runs and syncs."""

from __future__ import annotations

import random

from trailkeeper.demo.beats import _Episode
from trailkeeper.demo.chance import _pause, _pick, _working_moment
from trailkeeper.demo.clock import _LATEST_START, DAY, MINUTE
from trailkeeper.demo.connections import _REVOKED_PROVIDER
from trailkeeper.demo.jobs import _Refresh, _Sync
from trailkeeper.demo.organisation import _Org
from trailkeeper.demo.runs import _Run, _RunIds
from trailkeeper.demo.sessions import _Session
from trailkeeper.demo.workflows import (
    _LEAD_ROUTING,
    _LEAD_ROUTING_AFTER_REVOCATION,
    _REVOKED_ERROR,
    _SIGNALLED,
    _STALLED_DEAL,
)


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
