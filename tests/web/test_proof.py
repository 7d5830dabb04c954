"""The event page's proof check, against a real log."""

from __future__ import annotations

from trailkeeper import AuditLog
from trailkeeper.web.proof import check_inclusion, leaf_hash_of


def _records(log: AuditLog, count: int) -> list[dict[str, object]]:
    return log.record_many(
        "acme",
        [
            {"category": "system", "action": "x.y", "actor": {"type": "user", "id": f"u{n}"}}
            for n in range(count)
        ],
    )


def test_a_stored_event_is_proven_in_the_latest_checkpoint(log: AuditLog) -> None:
    records = _records(log, 7)
    stored = log.get("acme", str(records[3]["id"]))
    assert stored is not None
    check = check_inclusion(log, "acme", stored)
    assert check.verified, check.reason
    assert check.tree_size == 7
    assert len(check.proof) == 3
    assert check.key_id.startswith("trailkeeper/acme+")


def test_an_event_whose_fields_were_changed_is_not_verified(log: AuditLog) -> None:
    records = _records(log, 3)
    stored = log.get("acme", str(records[1]["id"]))
    assert stored is not None
    stored["actor"] = {"type": "user", "id": "someone-else"}
    check = check_inclusion(log, "acme", stored)
    assert not check.verified
    assert "not to its stored leaf hash" in check.reason


def test_an_event_claiming_another_place_in_the_log_is_not_verified(log: AuditLog) -> None:
    records = _records(log, 4)
    stored = log.get("acme", str(records[1]["id"]))
    assert stored is not None
    other = log.get("acme", str(records[2]["id"]))
    assert other is not None
    # The fields and leaf hash of one event, at the position of another.
    stored["seq"] = 2
    stored["leaf_hash"] = leaf_hash_of(stored).hex()
    check = check_inclusion(log, "acme", stored)
    assert not check.verified
    assert "leads to root" in check.reason
