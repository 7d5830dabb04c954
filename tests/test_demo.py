"""The demo organisation (issue 7, point 3): deterministic, exactly the size asked for, well
formed, and faithful to the facts it reports about itself."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from trailkeeper import AuditLog, catalogue
from trailkeeper.demo import MIN_EVENTS, WINDOW_END, WINDOW_START, DemoFacts, generate, write_demo
from trailkeeper.errors import InvalidArgument
from trailkeeper.events import event_errors

Event = dict[str, Any]
SIZE = 5000
STORED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@pytest.fixture(scope="module")
def demo() -> tuple[list[Event], DemoFacts]:
    stream, facts = generate(SIZE, seed=7)
    return list(stream), facts


@pytest.fixture(scope="module")
def events(demo: tuple[list[Event], DemoFacts]) -> list[Event]:
    return demo[0]


@pytest.fixture(scope="module")
def facts(demo: tuple[list[Event], DemoFacts]) -> DemoFacts:
    return demo[1]


def digest(events: Iterable[Event]) -> str:
    sha = hashlib.sha256()
    for event in events:
        sha.update(json.dumps(event, ensure_ascii=False).encode())
        sha.update(b"\n")
    return sha.hexdigest()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def run_of(events: Sequence[Event], run_id: str) -> list[Event]:
    return [e for e in events if e.get("workflow", {}).get("run_id") == run_id]


def country(location: str) -> str:
    return location.rpartition(", ")[2]


# --- determinism and size -------------------------------------------------------------------


def test_same_seed_and_size_give_a_byte_identical_stream() -> None:
    assert digest(generate(1000, seed=11)[0]) == digest(generate(1000, seed=11)[0])


def test_another_seed_gives_another_organisation() -> None:
    first, first_facts = generate(1000, seed=11)
    second, second_facts = generate(1000, seed=12)
    assert digest(first) != digest(second)
    assert first_facts.brute_force_target_user != second_facts.brute_force_target_user


def test_stream_does_not_depend_on_string_hash_randomisation() -> None:
    program = (
        "import hashlib, json; from trailkeeper.demo import generate; sha = hashlib.sha256()\n"
        "for e in generate(600, seed=3)[0]:\n"
        "    sha.update(json.dumps(e, ensure_ascii=False).encode()); sha.update(b'\\n')\n"
        "print(sha.hexdigest())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    digests = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={**env, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert digests == {digest(generate(600, seed=3)[0])}


@pytest.mark.parametrize("size", [MIN_EVENTS, MIN_EVENTS + 1, 1234, 3001])
def test_stream_holds_exactly_the_number_of_events_asked_for(size: int) -> None:
    stream, facts = generate(size, seed=5)
    assert sum(1 for _ in stream) == size
    assert sum(facts.counts_by_action.values()) == size == facts.events


@pytest.mark.parametrize(("size", "seed"), [(MIN_EVENTS - 1, 7), (0, 7), (5000, -1), (5000, 2**63)])
def test_size_below_the_minimum_or_seed_out_of_range_is_refused(size: int, seed: int) -> None:
    with pytest.raises(InvalidArgument):
        generate(size, seed)


# --- shape ----------------------------------------------------------------------------------


def test_events_come_oldest_first(events: list[Event]) -> None:
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)


def test_ids_are_the_prefix_and_the_position(events: list[Event], facts: DemoFacts) -> None:
    assert [e["id"] for e in events] == [f"{facts.id_prefix}{i}" for i in range(SIZE)]
    assert all(EVENT_ID.fullmatch(e["id"]) for e in events)


def test_every_event_passes_the_event_schema(events: list[Event]) -> None:
    problems = [error for i, e in enumerate(events) for error in event_errors(e, i)]
    assert problems == []


def test_every_event_is_small_and_stored_in_utc(events: list[Event]) -> None:
    for event in events:
        assert STORED_TIME.fullmatch(event["occurred_at"])
        assert len(event.get("targets", [])) <= 32
        assert len(event["description"]) <= 1000
        assert len(json.dumps(event.get("metadata", {}))) <= 2048
        assert None not in event.values()


def has_field(event: Mapping[str, Any], dotted: str) -> bool:
    value: Any = event
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def test_every_event_carries_what_the_catalogue_requires(events: list[Event]) -> None:
    for event in events:
        spec = catalogue.lookup(event["action"])
        assert spec is not None, event["action"]
        assert event["category"] == spec.category
        target_types = {t["type"] for t in event.get("targets", [])}
        assert set(spec.required_targets) <= target_types, event
        assert all(has_field(event, f) for f in spec.required_fields), event
        assert set(spec.required_metadata) <= set(event.get("metadata", {})), event


def test_every_platform_action_of_the_catalogue_appears(facts: DemoFacts) -> None:
    platform = {a for a, spec in catalogue.CATALOGUE.items() if spec.category != "system"}
    assert set(facts.counts_by_action) == platform


def test_stream_spans_six_weeks(events: list[Event], facts: DemoFacts) -> None:
    window = WINDOW_END - WINDOW_START
    assert window == timedelta(weeks=6)
    assert (moment(facts.window_start), moment(facts.window_end)) == (WINDOW_START, WINDOW_END)
    assert events[0]["occurred_at"] == facts.first_at
    assert events[-1]["occurred_at"] == facts.last_at
    assert moment(facts.first_at) - WINDOW_START < timedelta(days=1)
    assert WINDOW_END - moment(facts.last_at) < timedelta(days=3)
    assert facts.window_start <= facts.first_at
    assert facts.last_at < facts.window_end


def test_about_fifty_people_with_roles_at_the_demo_domain(events: list[Event], facts: DemoFacts) -> None:
    users = {e["actor"]["id"]: e["actor"]["email"] for e in events if e["actor"]["type"] == "user"}
    assert facts.people == 50 == sum(facts.people_by_role.values())
    assert {"admin", "sales_manager", "account_executive", "sdr", "revops"} <= set(facts.people_by_role)
    assert 45 <= len(users) <= facts.people
    assert all(email.endswith(f"@{facts.domain}") for email in users.values())


# --- the facts match the stream -------------------------------------------------------------


def test_counts_match_the_stream(events: list[Event], facts: DemoFacts) -> None:
    assert Counter(e["action"] for e in events) == facts.counts_by_action
    assert Counter(e["category"] for e in events) == facts.counts_by_category
    retrievals = Counter(
        e["integration"]["provider"]
        for e in events
        if e["action"] == "integration.data.retrieved" and e["outcome"] == "success"
    )
    assert retrievals == facts.retrievals_by_provider
    assert facts.workflow_runs == facts.counts_by_action["workflow.started"]
    assert facts.workflow_runs == len({e["workflow"]["run_id"] for e in events if "workflow" in e})


def test_brute_force_burst_is_every_failure_from_its_address(events: list[Event], facts: DemoFacts) -> None:
    from_ip = [e for e in events if e.get("context", {}).get("ip") == facts.brute_force_ip]
    failures = [e for e in from_ip if e["action"] == "auth.login.failed"]
    assert len(failures) == facts.brute_force_count >= 30
    assert {e["actor"]["id"] for e in failures} == {facts.brute_force_target_user}
    assert {e["actor"]["email"] for e in failures} == {facts.brute_force_target_email}
    assert all(facts.brute_force_start <= e["occurred_at"] <= facts.brute_force_end for e in from_ip)
    assert failures[-1]["occurred_at"] == facts.brute_force_end
    burst = moment(facts.brute_force_end) - moment(facts.brute_force_start)
    assert burst < timedelta(minutes=10)
    assert {e["outcome"] for e in from_ip} <= {"pending", "failure"}


def test_victim_changes_the_password_after_the_burst(events: list[Event], facts: DemoFacts) -> None:
    changes = [
        e
        for e in events
        if e["action"] == "auth.password.changed" and e["actor"]["id"] == facts.brute_force_target_user
    ]
    assert changes
    assert changes[0]["occurred_at"] > facts.brute_force_end


def test_one_login_comes_from_a_new_country(events: list[Event], facts: DemoFacts) -> None:
    new = country(facts.new_country_location)
    there = [e for e in events if country(e.get("context", {}).get("location", "")) == new]
    assert {e["actor"]["id"] for e in there if e["actor"]["type"] == "user"} == {facts.new_country_user}
    logins = [e for e in there if e["action"] in ("auth.sso.succeeded", "auth.login.succeeded")]
    assert len(logins) == 1
    (login,) = logins
    assert login["occurred_at"] == facts.new_country_at
    assert login["context"]["ip"] == facts.new_country_ip
    assert login["context"]["location"] == facts.new_country_location
    earlier_countries = {
        country(e["context"]["location"])
        for e in events
        if e["actor"]["id"] == facts.new_country_user
        and e["action"] in ("auth.sso.succeeded", "auth.login.succeeded")
        and e["occurred_at"] < facts.new_country_at
    }
    assert earlier_countries
    assert new not in earlier_countries


def test_one_revocation_then_a_disconnection_then_silence(events: list[Event], facts: DemoFacts) -> None:
    revocations = [e for e in events if e["action"] == "integration.oauth.revoked"]
    assert len(revocations) == 1
    (revoked,) = revocations
    assert revoked["integration"] == {
        "provider": facts.revoked_provider,
        "connection_id": facts.revoked_connection_id,
    }
    assert revoked["occurred_at"] == facts.revoked_at
    assert revoked["actor"]["id"] == facts.revoked_by
    disconnections = [e for e in events if e["action"] == "integration.disconnected"]
    assert [e["occurred_at"] for e in disconnections] == [facts.disconnected_at]
    assert facts.revoked_at < facts.disconnected_at
    afterwards = [
        e
        for e in events
        if e.get("integration", {}).get("connection_id") == facts.revoked_connection_id
        and e["occurred_at"] > facts.disconnected_at
    ]
    assert all(e["outcome"] == "failure" for e in afterwards)


def test_failed_runs_are_exactly_the_runs_that_failed(events: list[Event], facts: DemoFacts) -> None:
    failures = [e for e in events if e["action"] == "workflow.failed"]
    assert [e["workflow"]["run_id"] for e in failures] == list(facts.failed_runs)
    assert len(facts.failed_runs) >= 2
    for failure in failures:
        run = run_of(events, failure["workflow"]["run_id"])
        assert run[-1] is failure
        assert "workflow.completed" not in {e["action"] for e in run}
        assert failure["outcome"] == "failure"
        assert failure["workflow"]["step"] == failure["metadata"]["step"]
        assert failure["metadata"]["error"]
        assert failure["workflow"]["trigger"] == run[0]["workflow"]["trigger"]


def test_example_run_goes_from_signal_to_meeting(events: list[Event], facts: DemoFacts) -> None:
    run = run_of(events, facts.example_run_id)
    actions = [e["action"] for e in run]
    assert actions[0] == "workflow.started"
    assert actions[-1] == "workflow.completed"
    started = run[0]
    assert started["actor"]["type"] == "agent"
    assert started["workflow"]["trigger"] == "signal:deal_stalled_14_days"
    assert started["metadata"]["signal"] == "deal stalled 14 days"
    channels = [e["metadata"]["channel"] for e in run if e["action"] == "alert.sent"]
    assert sorted(channels) == ["email", "slack"]
    first_task = actions.index("crm.task.created")
    first_alert = actions.index("alert.sent")
    meeting = actions.index("meeting.scheduled")
    assert 0 < first_task < first_alert < meeting < len(actions) - 1
    titles = [e["targets"][0]["name"] for e in run if e["action"] == "crm.task.created"]
    assert len(titles) == len(set(titles)) == 2
    assert all(e["outcome"] == "success" for e in run)
    times = [e["occurred_at"] for e in run]
    assert times == sorted(times)


def test_manual_run_begins_with_a_person_triggering_it(events: list[Event], facts: DemoFacts) -> None:
    run = run_of(events, facts.example_manual_run_id)
    triggered, started = run[0], run[1]
    assert triggered["action"] == "workflow.triggered"
    assert triggered["category"] == "user_activity"
    assert triggered["actor"]["type"] == "user"
    assert started["action"] == "workflow.started"
    assert started["workflow"]["trigger"] == "manual"
    assert started["metadata"]["requested_by"] == triggered["actor"]["id"]


def test_secret_settings_are_recorded_masked(events: list[Event]) -> None:
    secrets = [
        e["metadata"] for e in events if e["action"] == "config.changed" and e["metadata"]["redacted"] is True
    ]
    assert secrets
    assert all(re.fullmatch(r"\*{4}[0-9a-f]{4}", m["before"]) for m in secrets)
    assert all(re.fullmatch(r"\*{4}[0-9a-f]{4}", m["after"]) for m in secrets)


# --- writing --------------------------------------------------------------------------------


class BatchRecorder:
    """A log that keeps what it is given, batch by batch, each committed at once."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[Event]]] = []

    def record_later(self, tenant: str, events: Sequence[Mapping[str, Any]]) -> Future[list[Event]]:
        batch = [dict(event) for event in events]
        self.batches.append((tenant, batch))
        done: Future[list[Event]] = Future()
        done.set_result(batch)
        return done


def test_write_demo_writes_batches_of_a_thousand_and_reports_progress() -> None:
    log = BatchRecorder()
    progress: list[int] = []
    facts = write_demo(log, events=2500, seed=4, tenant="acme", progress=progress.append)
    assert [len(batch) for _, batch in log.batches] == [1000, 1000, 500]
    assert {tenant for tenant, _ in log.batches} == {"acme"}
    assert progress == [1000, 2000, 2500]
    written = [event for _, batch in log.batches for event in batch]
    assert digest(written) == digest(generate(2500, seed=4)[0])
    assert facts == replace(generate(2500, seed=4)[1], tenant="acme")


def test_writing_the_demo_twice_into_an_audit_log_stores_it_once(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path / 'demo.db'}", key_dir=tmp_path) as log:
        facts = write_demo(log, events=MIN_EVENTS, seed=9)
        again = write_demo(log, events=MIN_EVENTS, seed=9)
        assert again == facts
        assert log.tree_size("demo") == MIN_EVENTS
        query = f"action:auth.login.failed ip:{facts.brute_force_ip}"
        burst = log.search("demo", query, limit=1000).events
        assert len(burst) == facts.brute_force_count


def test_writing_the_demo_puts_the_collector_thresholds_back(tmp_path: Path) -> None:
    import gc

    before = gc.get_threshold()
    with AuditLog.open(f"sqlite:///{tmp_path}/demo.db") as log:
        write_demo(log, events=MIN_EVENTS)
    assert gc.get_threshold() == before
