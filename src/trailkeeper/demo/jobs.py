"""The platform's own jobs: scheduled syncs and token refreshes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from trailkeeper.catalogue import INTEGRATION_DATA_RETRIEVED, INTEGRATION_OAUTH_REFRESHED
from trailkeeper.demo.beats import Event, _Beat, _event
from trailkeeper.demo.chance import _Dice
from trailkeeper.demo.clock import HOUR, _timestamp
from trailkeeper.demo.connections import _Connection
from trailkeeper.demo.organisation import _Org
from trailkeeper.demo.people import _SYNC_SERVICE, _TOKEN_SERVICE


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
