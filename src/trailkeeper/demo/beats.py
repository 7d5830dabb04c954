"""Beats: what happens when. The acts of an administrator and the steps of a workflow, the
beat a script decides for each event, the episode that scripts them, and the event a beat
is rendered into.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from trailkeeper.catalogue import CATALOGUE, WORKFLOW_COMPLETED, WORKFLOW_STARTED, WORKFLOW_TRIGGERED
from trailkeeper.demo.chance import _Dice
from trailkeeper.demo.clock import _timestamp
from trailkeeper.demo.connections import _Connection
from trailkeeper.demo.organisation import _Org
from trailkeeper.demo.people import _Person

Event = dict[str, Any]


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


def _script(episode: _Episode) -> list[_Beat]:
    return episode.beats(_Dice(episode.seed))
