"""Recording: what every store must do when events are appended."""

from __future__ import annotations

import threading

import pytest

from trailkeeper import AuditLog, InvalidArgument, InvalidEvent

LOGIN = {
    "category": "authentication",
    "action": "auth.login.succeeded",
    "actor": {"type": "user", "id": "u_42"},
}


def test_record_returns_the_stored_record_with_server_fields(log: AuditLog) -> None:
    record = log.record("acme", **LOGIN, occurred_at="2026-11-03T10:15:00+01:00")
    assert record["tenant"] == "acme"
    assert record["seq"] == 0
    assert record["occurred_at"] == "2026-11-03T09:15:00.000000Z"
    assert record["outcome"] == "success"
    assert len(record["leaf_hash"]) == 64
    assert record["received_at"].endswith("Z")
    assert log.get("acme", record["id"]) == record


def test_fields_left_out_are_absent_not_null(log: AuditLog) -> None:
    record = log.record("acme", **LOGIN)
    stored = log.get("acme", record["id"])
    assert stored is not None
    for field in ("targets", "integration", "workflow", "context", "description", "metadata"):
        assert field not in stored


def test_seq_is_gap_free_per_tenant(log: AuditLog) -> None:
    for _ in range(3):
        log.record_many("acme", [LOGIN] * 7)
        log.record_many("globex", [LOGIN] * 2)
    acme = log.search("acme", limit=1000, order="asc").events
    globex = log.search("globex", limit=1000, order="asc").events
    assert [r["seq"] for r in acme] == list(range(21))
    assert [r["seq"] for r in globex] == list(range(6))


def test_batch_with_one_bad_event_stores_nothing(log: AuditLog) -> None:
    log.record("acme", **LOGIN)
    bad = {**LOGIN, "actor": {"type": "robot", "id": "r"}}
    with pytest.raises(InvalidEvent) as caught:
        log.record_many("acme", [LOGIN, LOGIN, bad, LOGIN])
    assert [(e.index, e.field) for e in caught.value.errors] == [(2, "actor.type")]
    assert log.tree_size("acme") == 1


def test_error_names_every_bad_field_by_path(log: AuditLog) -> None:
    bad = {
        "category": "authentication",
        "action": "auth.login",
        "actor": {"type": "user"},
        "targets": [{"type": "deal", "id": "d1"}] * 3 + [{"type": "deal"}],
        "colour": "blue",
    }
    with pytest.raises(InvalidEvent) as caught:
        log.record("acme", **bad)
    fields = {e.field for e in caught.value.errors}
    assert fields == {"actor.id", "targets[3].id", "colour"}
    assert "targets[3].id" in str(caught.value)


def test_repeated_id_returns_the_first_record_and_stores_nothing(log: AuditLog) -> None:
    first = log.record("acme", **LOGIN, id="evt-1", description="first")
    again = log.record("acme", **LOGIN, id="evt-1", description="second")
    assert again["seq"] == first["seq"]
    assert again["description"] == "first"
    assert log.tree_size("acme") == 1


def test_repeated_id_within_one_batch_is_stored_once(log: AuditLog) -> None:
    records = log.record_many(
        "acme", [{**LOGIN, "id": "same"}, {**LOGIN, "id": "other"}, {**LOGIN, "id": "same"}]
    )
    assert [r["seq"] for r in records] == [0, 1, 0]
    assert log.tree_size("acme") == 2


def test_same_id_in_two_tenants_is_two_events(log: AuditLog) -> None:
    log.record("acme", **LOGIN, id="shared")
    log.record("globex", **LOGIN, id="shared")
    assert log.tree_size("acme") == log.tree_size("globex") == 1


def test_bad_tenant_name_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidArgument, match="tenant"):
        log.record("Acme Corp", **LOGIN)


def test_strings_are_stored_exactly_as_sent(log: AuditLog) -> None:
    text = 'line\nbreak \x00 nul \u202e rtl <script>alert(1)</script> "quote" é 😀'
    record = log.record("acme", **LOGIN, description=text, metadata={"k\x07": [text, 1, True, None, 2.5]})
    stored = log.get("acme", record["id"])
    assert stored is not None
    assert stored["description"] == text
    assert stored["metadata"] == {"k\x07": [text, 1, True, None, 2.5]}


def test_concurrent_callers_share_commits_and_keep_seq_gap_free(log: AuditLog) -> None:
    def write() -> None:
        for _ in range(40):
            log.record("acme", **LOGIN)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = sorted(r["seq"] for r in log.iter_search("acme", log.filter()))
    assert seqs == list(range(320))
    # Group commit: waiting callers are committed together, not one transaction each.
    assert log._writer.commits < 320


def test_records_survive_reopening(store_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with AuditLog.open(store_url, key_dir=tmp_path / "keys") as log:
        record = log.record("acme", **LOGIN)
    with AuditLog.open(store_url, key_dir=tmp_path / "keys") as log:
        assert log.get("acme", record["id"]) == record
        assert log.record("acme", **LOGIN)["seq"] == 1
