"""Generated events for the benchmarks: a revenue platform's mix, deterministic and fast to make.

Six weeks from 2026-09-30, 1,000 users, a dozen actions across the five categories, targets,
integrations, workflow runs and a little metadata: rows the size real events have.
"""

from __future__ import annotations

import random
from typing import Any

START_S = 1_789_948_800  # 2026-09-21T00:00:00Z
SPAN_S = 42 * 24 * 3600
WORDS = (
    "pipeline",
    "renewal",
    "risk",
    "forecast",
    "quarter",
    "stalled",
    "deal",
    "champion",
    "budget",
    "churn",
    "expansion",
    "meeting",
    "follow-up",
    "pricing",
    "discount",
    "legal",
    "security",
    "review",
    "onboarding",
    "usage",
)
ACTIONS = [
    ("authentication", "auth.login.succeeded", None),
    ("authentication", "auth.login.failed", None),
    ("authentication", "auth.sso.succeeded", None),
    ("user_activity", "assistant.query.submitted", None),
    ("user_activity", "config.changed", None),
    ("integration", "integration.data.retrieved", "salesforce"),
    ("integration", "integration.data.retrieved", "hubspot"),
    ("integration", "integration.oauth.refreshed", "gmail"),
    ("workflow", "crm.task.created", "salesforce"),
    ("workflow", "alert.sent", "slack"),
    ("workflow", "alert.sent", "gmail"),
    ("workflow", "meeting.scheduled", "google_calendar"),
]


def _time(rng: random.Random, n: int, total: int) -> str:
    # Spread evenly over six weeks, in order, with jitter: like a real log's arrival.
    from datetime import UTC, datetime

    seconds = START_S + SPAN_S * n // max(total, 1) + rng.randrange(60)
    return (
        datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{rng.randrange(10**6):06d}Z"
    )


def generate(start: int, count: int, total: int = 1_000_000) -> list[dict[str, Any]]:
    rng = random.Random(start)
    out = []
    for n in range(start, start + count):
        category, action, provider = ACTIONS[rng.randrange(len(ACTIONS))]
        user = rng.randrange(1000)
        event: dict[str, Any] = {
            "occurred_at": _time(rng, n, total),
            "category": category,
            "action": action,
            "outcome": "failure" if rng.random() < 0.04 else "success",
            "actor": {"type": "user", "id": f"user-{user:04d}", "name": f"User {user}"},
            "context": {
                "ip": f"10.{user % 250}.{rng.randrange(250)}.{rng.randrange(250)}",
                "user_agent": "Mozilla/5.0",
            },
            "description": " ".join(rng.choice(WORDS) for _ in range(6)),
        }
        if provider:
            event["integration"] = {"provider": provider, "connection_id": f"conn-{user % 40}"}
        if category == "workflow":
            event["actor"] = {"type": "agent", "id": f"agent-{user % 12}"}
            event["workflow"] = {"run_id": f"run-{n // 5}", "name": "Stalled deal follow-up", "step": action}
            deal = rng.randrange(20000)
            event["targets"] = [{"type": "deal", "id": f"deal-{deal}", "name": f"Deal{deal:05d}"}]
        if category == "integration":
            event["metadata"] = {"object_type": "Opportunity", "record_count": rng.randrange(500)}
        out.append(event)
    return out
