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

The work is split by what it is about: :mod:`~trailkeeper.demo.clock` and
:mod:`~trailkeeper.demo.chance` time and chance; :mod:`~trailkeeper.demo.people`,
:mod:`~trailkeeper.demo.connections` and :mod:`~trailkeeper.demo.organisation` the
organisation; :mod:`~trailkeeper.demo.beats` what an episode scripts; the episodes
themselves in :mod:`~trailkeeper.demo.sessions` (with :mod:`~trailkeeper.demo.administration`
and :mod:`~trailkeeper.demo.assistant`), :mod:`~trailkeeper.demo.runs` (of the
:mod:`~trailkeeper.demo.workflows`) and :mod:`~trailkeeper.demo.jobs`; the planted
:mod:`~trailkeeper.demo.story` and :mod:`~trailkeeper.demo.everyday` life around it, put
together by :mod:`~trailkeeper.demo.plan` with its :mod:`~trailkeeper.demo.facts`; and
:mod:`~trailkeeper.demo.stream`, which renders the plan and writes it.
"""

from __future__ import annotations

from trailkeeper.demo.clock import WINDOW_END, WINDOW_START
from trailkeeper.demo.facts import TENANT, DemoFacts
from trailkeeper.demo.plan import MIN_EVENTS
from trailkeeper.demo.stream import RecordsMany, generate, write_demo

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
