"""The answers of docs/investigations.md, checked on demo data against what the generator
knows about it (issue 7, point 5).

One demo of 3,000 events (seed 7) is written once into a SQLite file; each question is then
asked as the page asks it, through the Python API, the CLI (``python -m trailkeeper.cli``) or
the HTTP API, and the answer is compared with :class:`~trailkeeper.demo.DemoFacts` or with
the generator's own stream.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from trailkeeper import AuditLog
from trailkeeper.api.server import running
from trailkeeper.demo import DemoFacts, generate, write_demo
from trailkeeper.testing import recorded

EVENTS = 3000
SEED = 7
TENANT = "demo"
PAGE = Path(__file__).parent.parent / "docs" / "investigations.md"
# What docs/make_investigations.py writes the page from.
PAGE_EVENTS = 20_000
STALLED_DEAL_TRIGGER = "signal:deal_stalled_14_days"

Record = dict[str, Any]


@dataclass(frozen=True)
class Demo:
    url: str
    log: AuditLog
    facts: DemoFacts
    stream: list[Record]  # the generator's events, in the order it wrote them


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    url = f"sqlite:///{tmp_path_factory.mktemp('investigations')}/demo.db"
    with AuditLog.open(url) as log:
        facts = write_demo(log, events=EVENTS, seed=SEED)
        yield Demo(url, log, facts, list(generate(EVENTS, SEED)[0]))


@pytest.fixture(scope="module")
def api(demo: Demo) -> Iterator[httpx.Client]:
    """The HTTP API over the demo, with a key that may read."""
    _, key = demo.log.create_key(TENANT, ["events:read"])
    with (
        running(demo.log, rate_limit=None) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client,
    ):
        yield client


def cli_search(demo: Demo, query: str, *options: str) -> list[Record]:
    """``trailkeeper search --json`` in a process of its own: the stored records it prints."""
    command = [sys.executable, "-m", "trailkeeper.cli", "search", "--tenant", TENANT, "--db", demo.url]
    done = subprocess.run(
        [*command, "--json", "--limit", "1000", *options, query],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def ids(records: list[Record]) -> list[str]:
    return [record["id"] for record in records]


def stats(response: httpx.Response) -> dict[str, int]:
    response.raise_for_status()
    return {row["key"]: row["count"] for row in response.json()["counts"]}


# --- who accessed the platform, and when -------------------------------------------------------


def test_brute_force_burst_is_found_by_its_address_with_the_generated_count(demo: Demo) -> None:
    facts = demo.facts
    burst = recorded(demo.log, TENANT, f"action:auth.login.failed ip:{facts.brute_force_ip}")
    assert len(burst) == facts.brute_force_count
    assert {e["actor"]["id"] for e in burst} == {facts.brute_force_target_user}
    assert {t["id"] for e in burst for t in e["targets"]} == {facts.brute_force_target_user}
    assert facts.brute_force_start < burst[0]["occurred_at"]
    assert burst[-1]["occurred_at"] == facts.brute_force_end


def test_brute_force_burst_from_the_command_line_is_the_same(demo: Demo) -> None:
    query = f"action:auth.login.failed ip:{demo.facts.brute_force_ip}"
    printed = cli_search(demo, query, "--order", "asc")
    assert ids(printed) == ids(recorded(demo.log, TENANT, query))
    assert len(printed) == demo.facts.brute_force_count


def test_burst_address_is_the_one_with_the_most_failures(demo: Demo) -> None:
    failures = Counter(e["context"]["ip"] for e in recorded(demo.log, TENANT, "action:auth.login.failed"))
    assert failures.most_common(1) == [(demo.facts.brute_force_ip, demo.facts.brute_force_count)]


def test_busiest_hour_of_failures_is_the_burst(demo: Demo, api: httpx.Client) -> None:
    per_hour = stats(api.get("/v1/stats", params={"q": "action:auth.login.failed", "group_by": "hour"}))
    busiest = max(per_hour, key=lambda hour: per_hour[hour])
    assert busiest[:13] == demo.facts.brute_force_start[:13]
    assert per_hour[busiest] >= demo.facts.brute_force_count


def test_burst_counted_by_actor_over_http_is_one_account(demo: Demo, api: httpx.Client) -> None:
    facts = demo.facts
    query = {"q": f"action:auth.login.failed ip:{facts.brute_force_ip}", "group_by": "actor"}
    assert stats(api.get("/v1/stats", params=query)) == {
        facts.brute_force_target_user: facts.brute_force_count
    }


def test_new_country_login_is_found_by_its_location(demo: Demo) -> None:
    facts = demo.facts
    signed_in = recorded(demo.log, TENANT, "action:auth.sso.succeeded")
    locations = Counter(e["context"]["location"] for e in signed_in)
    assert locations[facts.new_country_location] == 1
    [landing] = [e for e in signed_in if e["context"]["location"] == facts.new_country_location]
    assert landing["actor"]["id"] == facts.new_country_user
    assert landing["occurred_at"] == facts.new_country_at
    assert landing["context"]["ip"] == facts.new_country_ip
    assert landing["metadata"]["new_country"] is True


def test_new_country_is_nowhere_else_in_the_log(demo: Demo) -> None:
    facts = demo.facts
    country = facts.new_country_location.rpartition(", ")[2]
    located = [e for e in recorded(demo.log, TENANT) if "location" in e.get("context", {})]
    from_there = [e for e in located if e["context"]["location"].endswith(f", {country}")]
    assert from_there == recorded(demo.log, TENANT, ip=facts.new_country_ip)
    assert {e["actor"]["id"] for e in from_there} <= {facts.new_country_user, "system"}


def test_new_country_step_up_is_found_by_its_reason(demo: Demo) -> None:
    [challenge] = recorded(demo.log, TENANT, '"new_country"')
    assert challenge["action"] == "auth.mfa.challenged"
    assert challenge["actor"]["id"] == demo.facts.new_country_user
    assert challenge["occurred_at"] < demo.facts.new_country_at


# --- integrations ------------------------------------------------------------------------------


def test_revocation_is_found_with_who_and_when(demo: Demo) -> None:
    facts = demo.facts
    [revoked] = recorded(demo.log, TENANT, "action:integration.oauth.revoked")
    assert revoked["integration"] == {
        "provider": facts.revoked_provider,
        "connection_id": facts.revoked_connection_id,
    }
    assert revoked["actor"]["id"] == facts.revoked_by
    assert revoked["occurred_at"] == facts.revoked_at
    [disconnected] = recorded(
        demo.log, TENANT, f"action:integration.disconnected integration:{facts.revoked_provider}"
    )
    assert disconnected["occurred_at"] == facts.disconnected_at


def test_nothing_is_read_from_the_revoked_connection_after_its_revocation(demo: Demo) -> None:
    facts = demo.facts
    query = f"action:integration.data.retrieved outcome:success integration:{facts.revoked_provider}"
    assert recorded(demo.log, TENANT, query, since=facts.revoked_at) == []
    assert recorded(demo.log, TENANT, query) != []


def test_retrievals_per_provider_equal_the_facts(demo: Demo) -> None:
    counts = demo.log.stats(
        TENANT, "action:integration.data.retrieved outcome:success", group_by="integration"
    )
    assert {row["key"]: row["count"] for row in counts["counts"]} == dict(demo.facts.retrievals_by_provider)


def test_retrievals_per_provider_over_http_equal_the_facts(demo: Demo, api: httpx.Client) -> None:
    query = {"q": "action:integration.data.retrieved outcome:success", "group_by": "integration"}
    assert stats(api.get("/v1/stats", params=query)) == dict(demo.facts.retrievals_by_provider)


def test_counts_by_action_equal_the_facts(demo: Demo) -> None:
    counts = demo.log.stats(TENANT, "-category:system", group_by="action")
    assert {row["key"]: row["count"] for row in counts["counts"]} == dict(demo.facts.counts_by_action)


# --- workflow runs -----------------------------------------------------------------------------


def test_example_run_goes_from_signal_to_meeting(demo: Demo) -> None:
    run = demo.log.workflow_run(TENANT, demo.facts.example_run_id)
    events = run["events"]
    kinds = [(e["action"], e.get("metadata", {}).get("channel")) for e in events]
    signal, tasks = kinds.index(("workflow.started", None)), kinds.index(("crm.task.created", None))
    slack, email = kinds.index(("alert.sent", "slack")), kinds.index(("alert.sent", "email"))
    meeting, completed = kinds.index(("meeting.scheduled", None)), kinds.index(("workflow.completed", None))
    assert signal < tasks < slack < email < meeting < completed == len(events) - 1
    started = events[signal]
    assert started["workflow"]["trigger"] == STALLED_DEAL_TRIGGER
    assert started["metadata"]["signal"] == "deal stalled 14 days"
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert run["summary"]["outcome"] == "success"
    assert run["summary"]["failures"] == []
    assert run["summary"]["trigger"] == STALLED_DEAL_TRIGGER


def test_example_run_over_http_is_the_same_run(demo: Demo, api: httpx.Client) -> None:
    response = api.get(f"/v1/workflow-runs/{demo.facts.example_run_id}")
    response.raise_for_status()
    run = response.json()
    assert ids(run["events"]) == ids(demo.log.workflow_run(TENANT, demo.facts.example_run_id)["events"])
    assert run["summary"]["outcome"] == "success"


def test_run_started_by_hand_names_the_person(demo: Demo) -> None:
    run = demo.log.workflow_run(TENANT, demo.facts.example_manual_run_id)
    first = run["events"][0]
    assert first["action"] == "workflow.triggered"
    assert first["actor"]["type"] == "user"
    assert run["summary"]["trigger"] == "manual"


def test_failed_runs_say_failure_and_where(demo: Demo) -> None:
    assert demo.facts.failed_runs
    for run_id in demo.facts.failed_runs:
        run = demo.log.workflow_run(TENANT, run_id)
        assert run["summary"]["outcome"] == "failure"
        last = run["events"][-1]
        assert last["action"] == "workflow.failed"
        assert last["metadata"]["error"]
        assert run["summary"]["failures"][-1]["step"] == last["workflow"]["step"]


def test_failed_runs_from_the_command_line_are_the_generated_ones(demo: Demo) -> None:
    printed = cli_search(demo, "action:workflow.failed", "--order", "asc")
    assert tuple(e["workflow"]["run_id"] for e in printed) == demo.facts.failed_runs


def test_workflow_run_count_equals_the_facts(demo: Demo) -> None:
    counts = demo.log.stats(TENANT, "action:workflow.started", group_by="action")
    assert counts["total"] == demo.facts.workflow_runs


# --- between two times -------------------------------------------------------------------------


def window_of(demo: Demo) -> tuple[str, str]:
    """The quarter of an hour the page looks at: the one of the revocation."""
    moment = datetime.fromisoformat(demo.facts.revoked_at)
    start = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    end = start + timedelta(minutes=15)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def placed_between(demo: Demo, since: str, until: str) -> list[str]:
    """The ids of the generator's events with ``since <= occurred_at < until``, in its order."""
    bounds = (datetime.fromisoformat(since), datetime.fromisoformat(until))
    return [e["id"] for e in demo.stream if bounds[0] <= datetime.fromisoformat(e["occurred_at"]) < bounds[1]]


def test_time_window_returns_exactly_the_events_placed_in_it(demo: Demo) -> None:
    since, until = window_of(demo)
    expected = placed_between(demo, since, until)
    assert expected
    found = demo.log.search(TENANT, since=since, until=until, order="asc", limit=1000)
    assert ids(found.events) == expected


def test_time_window_in_the_query_and_on_the_command_line_agree(demo: Demo) -> None:
    since, until = window_of(demo)
    expected = placed_between(demo, since, until)
    assert ids(recorded(demo.log, TENANT, f"after:{since} before:{until}")) == expected
    assert ids(cli_search(demo, "", "--since", since, "--until", until, "--order", "asc")) == expected


def test_window_includes_its_start_and_excludes_its_end(demo: Demo) -> None:
    facts = demo.facts
    between = recorded(demo.log, TENANT, since=facts.revoked_at, until=facts.disconnected_at)
    assert between[0]["action"] == "integration.oauth.revoked"
    assert "integration.disconnected" not in [e["action"] for e in between]
    assert ids(between) == placed_between(demo, facts.revoked_at, facts.disconnected_at)


def test_a_whole_day_holds_what_the_generator_put_in_it(demo: Demo, api: httpx.Client) -> None:
    day = demo.facts.brute_force_start[:10]
    after = (datetime.fromisoformat(day) + timedelta(days=1)).strftime("%Y-%m-%d")
    expected = placed_between(demo, f"{day}T00:00:00Z", f"{after}T00:00:00Z")
    counted = api.get("/v1/stats", params={"since": day, "until": after, "group_by": "day"})
    assert stats(counted) == {f"{day}T00:00:00.000000Z": len(expected)}


# --- the page itself ---------------------------------------------------------------------------


def test_page_agrees_with_the_demo_it_was_written_from() -> None:
    """docs/investigations.md is regenerated by docs/make_investigations.py; when the demo
    changes, this fails until it is."""
    page = PAGE.read_text(encoding="utf-8")
    facts = generate(PAGE_EVENTS, SEED)[1]
    burst = {"key": facts.brute_force_target_user, "count": facts.brute_force_count}
    expected = [
        f"trailkeeper demo --events {PAGE_EVENTS} --seed {SEED}",
        json.dumps(
            {"group_by": "actor", "total": facts.brute_force_count, "counts": [burst]}, separators=(",", ":")
        ),
        f"workflow_run:{facts.failed_runs[0]}",
        f"/v1/workflow-runs/{facts.example_run_id}",
        f"ip={facts.new_country_ip}",
        "integration.oauth.revoked",
        facts.revoked_connection_id,
        *(
            json.dumps({"key": provider, "count": count}, separators=(",", ":"))
            for provider, count in facts.retrievals_by_provider.items()
        ),
    ]
    missing = [text for text in expected if text not in page]
    assert missing == [], "docs/investigations.md is stale: run docs/make_investigations.py"


def test_page_answers_every_question() -> None:
    headings = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    assert headings == [
        "## Setting up",
        "## Who accessed the platform, and when",
        "## What did a given workflow run do?",
        "## Which integrations retrieved data, from which systems?",
        "## When did alerts, tasks and notifications fire?",
        "## What happened between two times?",
        "## Walk-through: one pipeline automation run, from signal to meeting",
        "## Proving it: verify the log, export a bundle",
    ]
