"""API keys: what every store must keep of them (only the secret's hash), and how a key is
found again: by its secret when a request comes, by its id when a session is checked."""

from __future__ import annotations

from trailkeeper import AuditLog


def test_a_key_is_found_by_its_secret_and_by_its_id_until_revoked(log: AuditLog) -> None:
    key, secret = log.create_key("acme", ["events:read"], name="console")
    other, _ = log.create_key("beta", ["events:read", "events:write"])
    assert log.authenticate(secret) == key
    assert log.key(key.id) == key
    assert log.key(other.id) == other
    assert [k.id for k in log.keys("acme")] == [key.id]

    revoked = log.revoke_key(key.id)
    assert revoked.revoked_at is not None
    assert log.authenticate(secret) is None
    # Still found by id, as revoked: a session signed with it ends.
    assert log.key(key.id) == revoked


def test_an_unknown_key_id_is_none(log: AuditLog) -> None:
    assert log.key("key_000000000000") is None
