"""The plan: the organisation, its stories and everyday episodes in start order, and the facts
about them, counted as they are planned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from trailkeeper.demo.beats import _Beat, _Episode, _script
from trailkeeper.demo.everyday import _background_episode, _refreshes, _sync
from trailkeeper.demo.facts import DemoFacts, _facts, _Tally
from trailkeeper.demo.organisation import _build_org, _Org
from trailkeeper.demo.runs import _RunIds
from trailkeeper.demo.story import _plan_story
from trailkeeper.errors import InvalidArgument

MIN_EVENTS = 500  # the planted stories take about three hundred events of their own


@dataclass(frozen=True)
class _Plan:
    org: _Org
    episodes: list[_Episode]  # by start
    facts: DemoFacts
    render_seed: int


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
