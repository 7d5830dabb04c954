""":class:`DemoFacts`: what the generator knows of the stream it makes, counted from the
same beats the stream is rendered from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from trailkeeper.catalogue import (
    AUTH_LOGIN_FAILED,
    AUTH_SSO_SUCCEEDED,
    INTEGRATION_DATA_RETRIEVED,
    INTEGRATION_DISCONNECTED,
    INTEGRATION_OAUTH_REVOKED,
    WORKFLOW_FAILED,
)
from trailkeeper.demo.beats import _CATEGORY, _Beat, _Episode
from trailkeeper.demo.clock import _LATEST_START, DAY, WINDOW_DAYS, _timestamp
from trailkeeper.demo.connections import _REVOKED_PROVIDER
from trailkeeper.demo.organisation import DOMAIN, _Org
from trailkeeper.demo.people import _ATTACKER, _TRAVEL
from trailkeeper.demo.runs import _Run
from trailkeeper.demo.story import _Story

TENANT = "demo"


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
