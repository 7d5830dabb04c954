"""Signed checkpoints: the C2SP signed-note and tlog-checkpoint formats, and key files."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.errors import VerificationError
from trailkeeper.notes import (
    Checkpoint,
    KeyFileError,
    SigningKey,
    VerifierKey,
    generate_signing_key,
    load_key,
    load_or_create_key,
    open_checkpoint,
    open_note,
    parse_checkpoint_body,
    parse_note,
)

ROOT = hashlib.sha256(b"a root").digest()

# Known-good vectors of golang.org/x/mod, sumdb/note/note_test.go (TestSign, TestOpen),
# the reference implementation of c2sp.org/signed-note. The private key text is
# "PRIVATE+KEY+<name>+<key hash>+base64(0x01 || Ed25519 seed)".
GO_PETER_PRIVATE = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_PETER_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH_VERIFIER = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_PETER_SIGNATURE = (
    "— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIGNATURE = (
    "— EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def go_peter_signing_key() -> SigningKey:
    *_, key_data = GO_PETER_PRIVATE.split("+", 4)
    seed = base64.b64decode(key_data)[1:]
    return SigningKey("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_signing_key("trailkeeper.example/acme")


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    return Checkpoint("trailkeeper.example/acme", 42, ROOT)


# --- the format ---------------------------------------------------------------------------


def test_signed_checkpoint_opens_with_its_verifier_key(key: SigningKey, checkpoint: Checkpoint) -> None:
    opened = open_checkpoint(key.sign(checkpoint), VerifierKey.parse(key.verifier_key))

    assert opened.origin == "trailkeeper.example/acme"
    assert opened.tree_size == 42
    assert opened.root_hash == ROOT
    assert opened == checkpoint


def test_signed_checkpoint_has_the_c2sp_layout(key: SigningKey, checkpoint: Checkpoint) -> None:
    note = key.sign(checkpoint)

    body, signature_line = note.split("\n\n")
    assert body.split("\n") == [
        "trailkeeper.example/acme",
        "42",
        base64.b64encode(ROOT).decode(),
    ]
    name_and_blob = re.fullmatch(r"— (\S+) ([A-Za-z0-9+/]+=*)\n", signature_line)
    assert name_and_blob is not None
    assert name_and_blob[1] == key.name
    blob = base64.b64decode(name_and_blob[2])
    assert len(blob) == 4 + 64
    assert blob[:4] == key.key_hash


def test_signature_covers_the_body_with_its_final_newline(key: SigningKey, checkpoint: Checkpoint) -> None:
    note = key.sign(checkpoint)
    signature = base64.b64decode(note.rsplit(" ", 1)[1])[4:]

    public_key = key.private_key.public_key()
    public_key.verify(signature, checkpoint.body().encode())
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, checkpoint.body().rstrip("\n").encode())


def test_changing_any_byte_of_a_signed_checkpoint_is_rejected(
    key: SigningKey, checkpoint: Checkpoint
) -> None:
    note = key.sign(checkpoint).encode()
    verifier = key.verifier

    for position in range(len(note)):
        for flip in (0x01, 0x20):
            tampered = bytearray(note)
            tampered[position] ^= flip
            with pytest.raises(VerificationError):
                open_checkpoint(bytes(tampered), verifier)


def test_truncated_or_extended_note_is_rejected(key: SigningKey, checkpoint: Checkpoint) -> None:
    note = key.sign(checkpoint)
    for broken in (note[:-1], note + "trailing\n", note.replace("\n\n", "\n"), "", "\n\n"):
        with pytest.raises(VerificationError):
            open_checkpoint(broken, key.verifier)


def test_other_key_under_the_same_name_is_rejected(key: SigningKey, checkpoint: Checkpoint) -> None:
    impostor = generate_signing_key(key.name)

    with pytest.raises(VerificationError, match="no signature by key"):
        open_checkpoint(impostor.sign(checkpoint), key.verifier)


def test_same_key_under_another_name_is_rejected(key: SigningKey, checkpoint: Checkpoint) -> None:
    renamed = SigningKey("trailkeeper.example/other", key.private_key)

    with pytest.raises(VerificationError, match="no signature by key"):
        open_checkpoint(renamed.sign(checkpoint), key.verifier)


def test_signature_under_a_forged_key_hash_is_a_bad_signature(
    key: SigningKey, checkpoint: Checkpoint
) -> None:
    # A signature line naming our key (name and key hash) but made by another key.
    forger = generate_signing_key(key.name)
    forged = forger.sign(checkpoint)
    body, line = forged.split("\n\n")
    blob = base64.b64decode(line.rsplit(" ", 1)[1])
    forged_line = f"— {key.name} {base64.b64encode(key.key_hash + blob[4:]).decode()}\n"

    with pytest.raises(VerificationError, match="bad signature"):
        open_checkpoint(f"{body}\n\n{forged_line}", key.verifier)


def test_note_with_extra_signatures_by_other_keys_still_opens(
    key: SigningKey, checkpoint: Checkpoint
) -> None:
    witness = generate_signing_key("witness.example/w1")
    lookalike = generate_signing_key(key.name)  # same name, another key hash
    lines = [signer.sign(checkpoint).split("\n\n")[1] for signer in (witness, lookalike)]
    note = key.sign(checkpoint) + "".join(lines)

    assert open_checkpoint(note, key.verifier) == checkpoint
    assert open_checkpoint(note, witness.verifier) == checkpoint
    assert len(parse_note(note)[1]) == 3


def test_checkpoint_of_another_origin_is_rejected_when_an_origin_is_expected(
    key: SigningKey, checkpoint: Checkpoint
) -> None:
    note = key.sign(checkpoint)

    assert open_checkpoint(note, key.verifier, origin=checkpoint.origin) == checkpoint
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(note, key.verifier, origin="trailkeeper.example/globex")


def test_extension_lines_are_kept(key: SigningKey) -> None:
    checkpoint = Checkpoint("log.example/x", 7, ROOT, ("— extension one", "ext two"))

    opened = open_checkpoint(key.sign(checkpoint), key.verifier)

    assert opened.extensions == ("— extension one", "ext two")
    assert key.sign(checkpoint).startswith(checkpoint.body())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("log\n42\n", "lines"),
        ("log\n042\n" + base64.b64encode(ROOT).decode() + "\n", "tree size"),
        ("log\n+42\n" + base64.b64encode(ROOT).decode() + "\n", "tree size"),
        ("log\n4_2\n" + base64.b64encode(ROOT).decode() + "\n", "tree size"),
        ("log\n٤٢\n" + base64.b64encode(ROOT).decode() + "\n", "tree size"),
        ("log\n-1\n" + base64.b64encode(ROOT).decode() + "\n", "tree size"),
        ("log\n18446744073709551616\n" + base64.b64encode(ROOT).decode() + "\n", "tree size"),
        ("log\n42\n" + base64.b64encode(ROOT[:31]).decode() + "\n", "31 bytes"),
        ("log\n42\nnot base64!\n", "not base64"),
        ("\n42\n" + base64.b64encode(ROOT).decode() + "\n", "origin"),
        ("log\n42\n" + base64.b64encode(ROOT).decode(), "newline"),
    ],
)
def test_malformed_checkpoint_body_is_rejected_with_the_reason(body: str, problem: str) -> None:
    with pytest.raises(VerificationError, match=problem):
        parse_checkpoint_body(body)


def test_largest_tree_size_is_accepted() -> None:
    body = f"log\n{2**64 - 1}\n{base64.b64encode(ROOT).decode()}\n"

    assert parse_checkpoint_body(body).tree_size == 2**64 - 1


def flip_padding_bit(encoded: str) -> str:
    """The same bytes in a non-canonical base64: a padding bit of the last digit set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = encoded.rstrip("=")
    last = alphabet[alphabet.index(data[-1]) ^ 1]
    flipped = data[:-1] + last + encoded[len(data) :]
    assert flipped != encoded
    assert base64.b64decode(flipped) == base64.b64decode(encoded)
    return flipped


def test_signature_in_non_canonical_base64_is_rejected(key: SigningKey, checkpoint: Checkpoint) -> None:
    note = key.sign(checkpoint)
    head, blob = note[:-1].rsplit(" ", 1)

    with pytest.raises(VerificationError, match="malformed note"):
        open_checkpoint(f"{head} {flip_padding_bit(blob)}\n", key.verifier)


def test_root_hash_in_non_canonical_base64_is_rejected() -> None:
    body = f"log\n42\n{flip_padding_bit(base64.b64encode(ROOT).decode())}\n"

    with pytest.raises(VerificationError, match="not base64"):
        parse_checkpoint_body(body)


def test_note_text_may_contain_blank_lines(key: SigningKey) -> None:
    # signed-note: the text ends at the last blank line of the note, not the first.
    text = "Ognuno sta solo sul cuor della terra\n\ned è subito sera.\n"

    assert open_note(key.sign_note(text), key.verifier) == text


def test_note_with_control_characters_is_rejected(key: SigningKey) -> None:
    note = key.sign(Checkpoint("log.example/x", 1, ROOT))

    with pytest.raises(VerificationError, match="control character"):
        open_checkpoint(note.replace("log.example", "log\x01example"), key.verifier)


# --- verifier keys ------------------------------------------------------------------------


def test_verifier_key_text_has_the_signed_note_format(key: SigningKey) -> None:
    name, key_hash, key_data = key.verifier_key.split("+", 2)

    assert name == key.name
    assert re.fullmatch(r"[0-9a-f]{8}", key_hash)
    assert bytes.fromhex(key_hash) == key.key_hash
    assert base64.b64decode(key_data) == b"\x01" + key.public_key_bytes


def test_verifier_key_text_round_trips(key: SigningKey) -> None:
    parsed = VerifierKey.parse(key.verifier_key)

    assert parsed == key.verifier
    assert str(parsed) == key.verifier_key
    assert VerifierKey.parse(key.verifier_key + "\n") == parsed


def test_key_hash_is_a_prefix_of_sha256_of_name_type_and_key(key: SigningKey) -> None:
    material = key.name.encode() + b"\n\x01" + key.public_key_bytes

    assert key.key_hash == hashlib.sha256(material).digest()[:4]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # short hash
        "PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # other name
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # not base64
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",  # 33 bytes
        # Go's own test: an unknown signature type, with the key hash adjusted to match.
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_key_is_rejected(text: str) -> None:
    with pytest.raises(VerificationError, match="verifier key"):
        VerifierKey.parse(text)


def test_every_substring_of_a_verifier_key_is_rejected() -> None:
    # The mangling check of Go's TestNewVerifier: no proper substring is a valid key.
    text = GO_PETER_VERIFIER
    for start in range(len(text)):
        for end in range(start + 1, len(text) + 1):
            if (start, end) != (0, len(text)) and text[start:end].strip() != text:
                with pytest.raises(VerificationError):
                    VerifierKey.parse(text[start:end])


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u2003b", "a\nb"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"key name|control"):
        generate_signing_key(name)


# --- interoperability with the reference implementation ------------------------------------


def test_key_hash_and_verifier_key_match_the_go_reference() -> None:
    peter = go_peter_signing_key()

    assert peter.key_hash.hex() == "c74f20a3"
    assert peter.verifier_key == GO_PETER_VERIFIER


def test_signed_note_matches_the_go_reference_byte_for_byte() -> None:
    # Ed25519 (RFC 8032) is deterministic, so the same key and text give the same note.
    assert go_peter_signing_key().sign_note(GO_TEXT) == GO_TEXT + "\n" + GO_PETER_SIGNATURE


def test_go_reference_note_opens_and_ignores_the_other_signature() -> None:
    note = GO_TEXT + "\n" + GO_PETER_SIGNATURE + GO_ENOCH_SIGNATURE

    assert open_note(note, VerifierKey.parse(GO_PETER_VERIFIER)) == GO_TEXT
    assert open_note(note, VerifierKey.parse(GO_ENOCH_VERIFIER)) == GO_TEXT
    tampered = note.replace("cryptography", "cryptographY")
    with pytest.raises(VerificationError, match="bad signature"):
        open_note(tampered, VerifierKey.parse(GO_PETER_VERIFIER))


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_PETER_SIGNATURE[:-1],
        "\x01" + GO_TEXT + "\n" + GO_PETER_SIGNATURE,
        b"\xff" + (GO_TEXT + "\n" + GO_PETER_SIGNATURE).encode(),
        GO_TEXT + "\n" + GO_PETER_SIGNATURE.replace("PeterNeumann", "Bad Name"),
        GO_TEXT + "\n" + GO_PETER_SIGNATURE + "Unexpected line.\n",
        GO_TEXT + "\n" + GO_PETER_SIGNATURE * 101,
    ],
)
def test_go_reference_malformed_notes_are_rejected(note: str | bytes) -> None:
    with pytest.raises(VerificationError, match="malformed note"):
        open_note(note, VerifierKey.parse(GO_PETER_VERIFIER))


# --- properties ---------------------------------------------------------------------------

origins = st.text(st.characters(min_codepoint=0x20, codec="utf-8"), min_size=1, max_size=80)


@settings(max_examples=100)
@given(origin=origins, tree_size=st.integers(0, 2**64 - 1), root=st.binary(min_size=32, max_size=32))
def test_any_checkpoint_round_trips_through_sign_and_open(
    key: SigningKey, origin: str, tree_size: int, root: bytes
) -> None:
    checkpoint = Checkpoint(origin, tree_size, root)

    assert open_checkpoint(key.sign(checkpoint), key.verifier) == checkpoint


@settings(max_examples=200)
@given(note=st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_input_either_opens_or_raises_verification_error(
    key: SigningKey, note: str | bytes
) -> None:
    with contextlib.suppress(VerificationError):
        open_checkpoint(note, key.verifier)


# --- key files ----------------------------------------------------------------------------


def test_key_file_is_created_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "keys"

    key = load_or_create_key(directory, "acme", "trailkeeper.example/acme")

    assert stat.S_IMODE((directory / "acme.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0
    assert (directory / "acme.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key.name == "trailkeeper.example/acme"
    assert [path.name for path in directory.iterdir()] == ["acme.key"]


def test_key_file_is_reused_on_the_second_call(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path, "acme", "trailkeeper.example/acme")
    second = load_or_create_key(tmp_path, "acme", "trailkeeper.example/acme")

    assert second.public_key_bytes == first.public_key_bytes
    assert load_key(tmp_path / "acme.key", "x").public_key_bytes == first.public_key_bytes


def test_each_tenant_has_its_own_key(tmp_path: Path) -> None:
    acme = load_or_create_key(tmp_path, "acme", "trailkeeper.example/acme")
    globex = load_or_create_key(tmp_path, "globex", "trailkeeper.example/globex")

    assert acme.public_key_bytes != globex.public_key_bytes


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    load_or_create_key(tmp_path, "acme", "trailkeeper.example/acme")
    os.chmod(tmp_path / "acme.key", mode)

    with pytest.raises(KeyFileError, match="too open"):
        load_or_create_key(tmp_path, "acme", "trailkeeper.example/acme")


def test_key_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "acme.key"
    path.write_bytes(b"not a key")
    os.chmod(path, 0o600)

    with pytest.raises(KeyFileError, match="not an unencrypted PEM"):
        load_key(path, "trailkeeper.example/acme")


def test_missing_key_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open"):
        load_key(tmp_path / "absent.key", "trailkeeper.example/acme")


@pytest.mark.parametrize("tenant", ["../etc", "", "Acme", "-acme", "a" * 64, "acme/x"])
def test_tenant_outside_the_contract_syntax_gets_no_key_file(tmp_path: Path, tenant: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        load_or_create_key(tmp_path, tenant, "trailkeeper.example/x")
    assert list(tmp_path.iterdir()) == []


def test_threads_racing_to_create_a_key_all_get_the_same_key(tmp_path: Path) -> None:
    threads_per_tenant = 8
    tenants = [f"tenant-{index}" for index in range(10)]
    start = threading.Barrier(threads_per_tenant * len(tenants))
    keys: dict[str, list[bytes]] = {tenant: [] for tenant in tenants}

    def create(tenant: str) -> None:
        start.wait()
        key = load_or_create_key(tmp_path, tenant, f"trailkeeper.example/{tenant}")
        keys[tenant].append(key.public_key_bytes)

    threads = [
        threading.Thread(target=create, args=(tenant,))
        for tenant in tenants
        for _ in range(threads_per_tenant)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for tenant in tenants:
        assert len(keys[tenant]) == threads_per_tenant
        stored = load_key(tmp_path / f"{tenant}.key", "x").public_key_bytes
        assert set(keys[tenant]) == {stored}
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{tenant}.key" for tenant in tenants)
