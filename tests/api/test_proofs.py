"""The verifiable log over HTTP: what a client fetches is enough to verify offline."""

from __future__ import annotations

import base64

import httpx
import pytest
from tests.api.helpers import event, record

from trailkeeper import merkle
from trailkeeper.errors import VerificationError
from trailkeeper.events import leaf_bytes
from trailkeeper.notes import Checkpoint, VerifierKey, open_checkpoint


def verified_checkpoint(client: httpx.Client, tenant: str) -> Checkpoint:
    verifier = VerifierKey.parse(client.get("/v1/public-key").text)
    response = client.get("/v1/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return open_checkpoint(response.text, verifier, origin=f"trailkeeper/{tenant}")


def hashes(proof: list[str]) -> list[bytes]:
    return [base64.b64decode(h) for h in proof]


def test_checkpoint_is_signed_by_the_tenants_public_key(client: httpx.Client, tenant: str) -> None:
    record(client, event())

    checkpoint = verified_checkpoint(client, tenant)

    assert checkpoint.tree_size >= 2  # the key's creation and the event


def test_checkpoint_of_one_tenant_does_not_verify_as_another(client: httpx.Client, api, tenant: str) -> None:  # type: ignore[no-untyped-def]
    other = api.client(tenant + "x")
    note = client.get("/v1/checkpoint").text

    with pytest.raises(VerificationError):
        open_checkpoint(note, VerifierKey.parse(other.get("/v1/public-key").text))


def test_inclusion_proof_verifies_against_the_checkpoint_root(client: httpx.Client, tenant: str) -> None:
    (ack,) = record(client, event(id="proved"), *(event() for _ in range(6)))[:1]
    checkpoint = verified_checkpoint(client, tenant)
    stored = client.get("/v1/events/proved").json()
    leaf_hash = merkle.leaf_hash(leaf_bytes(stored))
    assert leaf_hash.hex() == stored["leaf_hash"]

    response = client.get(
        "/v1/proofs/inclusion", params={"seq": ack["seq"], "tree_size": checkpoint.tree_size}
    )

    assert response.status_code == 200
    proof = response.json()
    assert (proof["leaf_index"], proof["tree_size"]) == (ack["seq"], checkpoint.tree_size)
    assert base64.b64decode(proof["leaf_hash"]) == leaf_hash
    merkle.verify_inclusion(
        leaf_hash, ack["seq"], checkpoint.tree_size, hashes(proof["hashes"]), checkpoint.root_hash
    )


def test_tampered_inclusion_proof_is_rejected(client: httpx.Client, tenant: str) -> None:
    (ack,) = record(client, *(event() for _ in range(5)))[:1]
    checkpoint = verified_checkpoint(client, tenant)
    proof = client.get(
        "/v1/proofs/inclusion", params={"seq": ack["seq"], "tree_size": checkpoint.tree_size}
    ).json()
    path = hashes(proof["hashes"])
    path[0] = bytes([path[0][0] ^ 1]) + path[0][1:]

    with pytest.raises(VerificationError):
        merkle.verify_inclusion(
            base64.b64decode(proof["leaf_hash"]), ack["seq"], checkpoint.tree_size, path, checkpoint.root_hash
        )


def test_consistency_proof_links_an_old_checkpoint_to_a_new_one(client: httpx.Client, tenant: str) -> None:
    record(client, *(event() for _ in range(3)))
    old = verified_checkpoint(client, tenant)
    record(client, *(event() for _ in range(9)))
    new = verified_checkpoint(client, tenant)
    assert new.tree_size > old.tree_size

    response = client.get("/v1/proofs/consistency", params={"from": old.tree_size, "to": new.tree_size})

    assert response.status_code == 200
    proof = response.json()
    assert (proof["from"], proof["to"]) == (old.tree_size, new.tree_size)
    merkle.verify_consistency(
        old.tree_size, new.tree_size, hashes(proof["hashes"]), old.root_hash, new.root_hash
    )


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/proofs/inclusion", {"seq": 5, "tree_size": 5}, "seq"),
        ("/v1/proofs/inclusion", {"seq": 0, "tree_size": 10**9}, "tree_size"),
        ("/v1/proofs/inclusion", {"seq": -1, "tree_size": 1}, "seq"),
        ("/v1/proofs/inclusion", {"seq": "one", "tree_size": 1}, "seq"),
        ("/v1/proofs/inclusion", {"seq": 0}, "tree_size"),
        ("/v1/proofs/consistency", {"from": 3, "to": 2}, "from"),
        ("/v1/proofs/consistency", {"from": 1, "to": 10**30}, "to"),
    ],
)
def test_impossible_proof_requests_are_400_naming_the_parameter(
    client: httpx.Client, path: str, params: dict[str, int | str], field: str
) -> None:
    record(client, *(event() for _ in range(4)))

    response = client.get(path, params=params)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field
