"""The assistant: the questions people ask it and the sources it reads to answer."""

from __future__ import annotations

import itertools
import random

from trailkeeper.catalogue import ASSISTANT_QUERY_SUBMITTED
from trailkeeper.demo.beats import Event, _event
from trailkeeper.demo.chance import _pick
from trailkeeper.demo.organisation import _Org
from trailkeeper.demo.people import _Person

_QUESTIONS = (
    "Which of my deals have had no activity in the last 14 days?",
    "Summarize the last three emails with {account}.",
    "What changed in the {account} opportunity this week?",
    "Who are the decision makers at {account}?",
    "Draft a follow-up to {account} after yesterday's call.",
    "What is the team's commit versus quota for this quarter?",
    "List renewals closing in the next 30 days over $50k.",
    "Which accounts opened the pricing email but did not reply?",
    "Prepare me for tomorrow's meeting with {account}.",
    "Show pipeline created by SDRs this month by source.",
    "Why did {account} push the close date?",
    "Which open opportunities have no next meeting booked?",
)
_QUERY_SOURCES = ("salesforce", "gmail", "google_calendar", "slack")
_SOURCE_CHOICES = tuple(sources for n in (1, 2, 3) for sources in itertools.combinations(_QUERY_SOURCES, n))


def _query_event(at: int, person: _Person, context: dict[str, str], rng: random.Random, org: _Org) -> Event:
    question = _pick(rng, _QUESTIONS).format(account=_pick(rng, org.deals).account)
    metadata = {
        "question": question,
        "conversation_id": f"conv_{rng.getrandbits(48):012x}",
        "sources": list(_pick(rng, _SOURCE_CHOICES)),
        "latency_ms": 400 + int(rng.random() * 5000),
    }
    said = f"{person.name} asked the assistant: {question}"
    parts = {"context": context, "metadata": metadata}
    return _event(at, ASSISTANT_QUERY_SUBMITTED, "success", person.actor(), said, parts)
