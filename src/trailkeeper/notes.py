"""Signed checkpoints: C2SP ``signed-note`` and ``tlog-checkpoint``, with Ed25519 keys.

A checkpoint states a tenant log's size and root hash; the server signs it so that anyone
holding the tenant's verifier key can check proofs against it without trusting the server
later. The formats are those of https://c2sp.org/signed-note and
https://c2sp.org/tlog-checkpoint, so that any verifier of that ecosystem (for example Go's
``golang.org/x/mod/sumdb/note``) accepts our checkpoints:

    example.com/acme                  <- origin
    42                                <- tree size
    3q2+7w...=                        <- base64 root hash
                                      <- blank line
    — example.com/acme <base64(key hash || Ed25519 signature)>

Private keys live one per tenant in a directory, as unencrypted PKCS#8 PEM files readable by
their owner only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from trailkeeper.errors import TrailkeeperError, VerificationError

__all__ = [
    "Checkpoint",
    "KeyFileError",
    "SigningKey",
    "VerifierKey",
    "generate_signing_key",
    "load_key",
    "load_or_create_key",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint_body",
    "parse_note",
]

# signed-note, "Signature types": the identifier byte of Ed25519 signatures.
_ED25519_TYPE = 0x01
_KEY_HASH_SIZE = 4
_ED25519_PUBLIC_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_ROOT_HASH_SIZE = 32  # SHA-256, RFC 9162 section 2.1
_MAX_TREE_SIZE = 2**64 - 1

# signed-note, "Format": each signature line is em dash, space, key name, space, base64.
_SIGNATURE_PREFIX = "— "
# signed-note requires verifiers to accept at least 16 signatures; a bound keeps a hostile
# note from costing unbounded work.
_MAX_SIGNATURES = 100

_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
_KEY_HASH_HEX = re.compile(r"[0-9a-fA-F]{8}")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class KeyFileError(TrailkeeperError):
    """A signing key file is missing, unreadable, malformed or too widely readable."""

    status = 500
    code = "key_file"


# --- text rules ---------------------------------------------------------------------------


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be part of a note, or None.

    signed-note, "Format": notes are valid UTF-8 without ASCII control characters other
    than newline. Python strings may hold lone surrogates, which have no UTF-8 encoding.
    """
    for char in text:
        if char != "\n" and ord(char) < 0x20:
            return f"control character U+{ord(char):04X} is not allowed"
        if "\ud800" <= char <= "\udfff":
            return f"lone surrogate U+{ord(char):04X} is not valid UTF-8"
    return None


def _key_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid key name, or None.

    signed-note, "Format": key names are non-empty and contain no Unicode spaces and no
    plus, which separates the parts of a verifier key.
    """
    if not name:
        return "key name is empty"
    if any(char.isspace() for char in name):
        return f"key name {name!r} contains a space"
    if "+" in name:
        return f"key name {name!r} contains '+'"
    return _text_problem(name)


def _check_key_name(name: str) -> None:
    problem = _key_name_problem(name)
    if problem is not None:
        raise ValueError(problem)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode_canonical(text: str) -> bytes | None:
    """Standard base64 (RFC 4648 section 4), or None unless ``text`` is its only encoding.

    A lenient decoder ignores the padding bits of the last character, so two texts would
    decode to the same bytes; insisting on the canonical form means that any change to a
    signed note's text is a change to what it says.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if _b64encode(data) == text else None


def _ed25519_key_hash(name: str, public_key: bytes) -> bytes:
    """signed-note, "Ed25519 signatures": SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([_ED25519_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:_KEY_HASH_SIZE]


# --- checkpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement of a log's size and root hash (c2sp.org/tlog-checkpoint)."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _checkpoint_problem(self)
        if problem is not None:
            raise ValueError(problem)

    def body(self) -> str:
        """The note text: origin, tree size, base64 root hash, extension lines."""
        lines = [self.origin, str(self.tree_size), _b64encode(self.root_hash), *self.extensions]
        return "".join(f"{line}\n" for line in lines)


def _checkpoint_problem(checkpoint: Checkpoint) -> str | None:
    """tlog-checkpoint, "Note text": every line is non-empty and a single line."""
    if not checkpoint.origin:
        return "origin is empty"
    if "\n" in checkpoint.origin:
        return "origin contains a newline"
    if not 0 <= checkpoint.tree_size <= _MAX_TREE_SIZE:
        return f"tree size {checkpoint.tree_size} is not a 64-bit unsigned integer"
    if len(checkpoint.root_hash) != _ROOT_HASH_SIZE:
        return f"root hash is {len(checkpoint.root_hash)} bytes, expected {_ROOT_HASH_SIZE}"
    for extension in checkpoint.extensions:
        if not extension or "\n" in extension:
            return f"extension line {extension!r} is empty or contains a newline"
    for line in (checkpoint.origin, *checkpoint.extensions):
        problem = _text_problem(line)
        if problem is not None:
            return problem
    return None


def parse_checkpoint_body(body: str) -> Checkpoint:
    """The checkpoint written in ``body``, a note text; VerificationError if malformed."""
    if not body.endswith("\n"):
        raise VerificationError("malformed checkpoint: the text does not end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError(
            f"malformed checkpoint: {len(lines)} lines, expected origin, tree size and root hash"
        )
    origin, size_text, root_text, *extensions = lines
    # tlog-checkpoint: ASCII decimal with no leading zeroes. int() alone would also take
    # "+5", "1_0" and non-ASCII digits.
    if _TREE_SIZE.fullmatch(size_text) is None:
        raise VerificationError(f"malformed checkpoint: bad tree size {size_text!r}")
    root_hash = _b64decode_canonical(root_text)
    if root_hash is None:
        raise VerificationError(f"malformed checkpoint: root hash {root_text!r} is not base64")
    if len(root_hash) != _ROOT_HASH_SIZE:
        raise VerificationError(
            f"malformed checkpoint: root hash is {len(root_hash)} bytes, expected {_ROOT_HASH_SIZE}"
        )
    try:
        return Checkpoint(origin, int(size_text), root_hash, tuple(extensions))
    except ValueError as error:
        raise VerificationError(f"malformed checkpoint: {error}") from error


# --- signed notes -------------------------------------------------------------------------


def parse_note(note: str | bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (key name, signature blob) pairs.

    Nothing is verified here. signed-note, "Format": the text (with its final newline) is
    separated from the signature lines by the last blank line of the note; every signature
    blob is a 4-byte key hash followed by the signature proper.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as error:
            raise VerificationError("malformed note: not valid UTF-8") from error
    problem = _text_problem(note)
    if problem is not None:
        raise VerificationError(f"malformed note: {problem}")
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("malformed note: no blank line before the signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    if not signature_block.endswith("\n"):
        raise VerificationError("malformed note: no signature lines, or no final newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise VerificationError(f"malformed note: more than {_MAX_SIGNATURES} signatures")
    return text, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise VerificationError(f"malformed note: {line[:40]!r} is not a signature line")
    name, space, blob_text = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space or _key_name_problem(name) is not None:
        raise VerificationError(f"malformed note: bad key name in {line[:40]!r}")
    blob = _b64decode_canonical(blob_text)
    if blob is None or len(blob) <= _KEY_HASH_SIZE:
        raise VerificationError(f"malformed note: bad signature encoding for key {name!r}")
    return name, blob


def open_note(note: str | bytes, verifier: VerifierKey) -> str:
    """The text of ``note`` once a signature by ``verifier`` is checked.

    signed-note, "Signatures": lines of other keys are ignored, even if they share the
    name or the key hash (but not both) of the verifier; a line that matches both must
    verify, or the whole note is rejected.
    """
    text, signatures = parse_note(note)
    blobs = [
        blob[_KEY_HASH_SIZE:]
        for name, blob in signatures
        if name == verifier.name and blob[:_KEY_HASH_SIZE] == verifier.key_hash
    ]
    if not blobs:
        raise VerificationError(f"note has no signature by key {verifier.key_id}")
    public_key = Ed25519PublicKey.from_public_bytes(verifier.public_key)
    message = text.encode("utf-8")
    for signature in blobs:
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            raise VerificationError(f"bad signature by key {verifier.key_id}: wrong length")
        try:
            public_key.verify(signature, message)
        except InvalidSignature as error:
            raise VerificationError(f"bad signature by key {verifier.key_id}") from error
    return text


def open_checkpoint(note: str | bytes, verifier: VerifierKey, *, origin: str | None = None) -> Checkpoint:
    """The checkpoint of a signed note, once its signature by ``verifier`` is checked.

    With ``origin``, a checkpoint of another log (whatever its signature) is refused too.
    """
    checkpoint = parse_checkpoint_body(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    """A public key as signed-note verifiers know it: name, key hash and Ed25519 key."""

    name: str
    key_hash: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.public_key) != _ED25519_PUBLIC_KEY_SIZE:
            raise ValueError(
                f"public key is {len(self.public_key)} bytes, expected {_ED25519_PUBLIC_KEY_SIZE}"
            )
        expected = _ed25519_key_hash(self.name, self.public_key)
        if self.key_hash != expected:
            raise ValueError(
                f"key hash {self.key_hash.hex()} does not match the name and key (expected {expected.hex()})"
            )

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> VerifierKey:
        return cls(name, _ed25519_key_hash(name, public_key), public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``<name>+<8 hex digits of key hash>+<base64(0x01 || public key)>``.

        The key hash is recomputed and must match, so a mistyped key is caught here and
        not later as a failed signature. Surrounding whitespace (a trailing newline from
        a file or an HTTP body) is ignored; it cannot be part of a key.
        """
        parts = text.strip().split("+", 2)  # the base64 may itself contain '+'
        if len(parts) != 3:
            raise VerificationError("malformed verifier key: expected <name>+<hash>+<key>")
        name, hash_hex, key_text = parts
        problem = _key_name_problem(name)
        if problem is not None:
            raise VerificationError(f"malformed verifier key: {problem}")
        if _KEY_HASH_HEX.fullmatch(hash_hex) is None:
            raise VerificationError(f"malformed verifier key: key hash {hash_hex!r} is not 8 hex digits")
        key_data = _b64decode_canonical(key_text)
        if key_data is None or not key_data:
            raise VerificationError("malformed verifier key: the key is not base64")
        if key_data[0] != _ED25519_TYPE:
            raise VerificationError(
                f"unsupported verifier key: signature type 0x{key_data[0]:02x}, "
                f"only Ed25519 (0x{_ED25519_TYPE:02x}) is supported"
            )
        try:
            return cls(name, bytes.fromhex(hash_hex), key_data[1:])
        except ValueError as error:
            raise VerificationError(f"malformed verifier key: {error}") from error

    @property
    def key_id(self) -> str:
        """``<name>+<key hash>``, how messages name a key (as Go's note package does)."""
        return f"{self.name}+{self.key_hash.hex()}"

    def __str__(self) -> str:
        key_data = bytes([_ED25519_TYPE]) + self.public_key
        return f"{self.key_id}+{_b64encode(key_data)}"


@dataclass(frozen=True)
class SigningKey:
    """A named Ed25519 private key that signs checkpoints."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        _check_key_name(self.name)

    @property
    def public_key_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_hash(self) -> bytes:
        return _ed25519_key_hash(self.name, self.public_key_bytes)

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.key_hash, self.public_key_bytes)

    @property
    def verifier_key(self) -> str:
        """The verifier-key text to publish (``GET /v1/public-key``)."""
        return str(self.verifier)

    def sign_note(self, text: str) -> str:
        """The signed note of ``text``: text, blank line, one signature line."""
        if not text.endswith("\n"):
            raise ValueError("note text must end with a newline")
        problem = _text_problem(text)
        if problem is not None:
            raise ValueError(problem)
        signature = self.private_key.sign(text.encode("utf-8"))
        blob = _b64encode(self.key_hash + signature)
        return f"{text}\n{_SIGNATURE_PREFIX}{self.name} {blob}\n"

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note of ``checkpoint``, as served by ``GET /v1/checkpoint``."""
        return self.sign_note(checkpoint.body())


def generate_signing_key(name: str) -> SigningKey:
    return SigningKey(name, Ed25519PrivateKey.generate())


# --- key files ----------------------------------------------------------------------------


def load_key(path: Path, name: str) -> SigningKey:
    """The signing key in the PEM file at ``path``, under key name ``name``.

    Like ssh, a key file that its group or others may access is refused: the key is only
    as secret as its file.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise KeyFileError(f"cannot open key file {path}: {error.strerror}") from error
    with os.fdopen(fd, "rb") as key_file:
        # fstat on the open file, so the file checked is the file read.
        mode = os.fstat(key_file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if mode & 0o077:
            raise KeyFileError(
                f"permissions {stat.S_IMODE(mode):04o} of key file {path} are too open: "
                "it must be accessible by its owner only (chmod 600)"
            )
        pem = key_file.read()
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"key file {path} is not an unencrypted PEM private key") from error
    if not isinstance(private_key, Ed25519PrivateKey):
        raise KeyFileError(f"key file {path} does not hold an Ed25519 key")
    return SigningKey(name, private_key)


def load_or_create_key(directory: Path, tenant: str, name: str) -> SigningKey:
    """The signing key of ``tenant``, from ``<directory>/<tenant>.key``, created if absent.

    An existing key is never replaced: checkpoints signed with it must stay checkable.
    When several processes create the same tenant's key at once, one wins and all of
    them return the winner's key.
    """
    # The tenant becomes a file name: the contract's tenant syntax keeps it inside the
    # directory.
    if _TENANT.fullmatch(tenant) is None:
        raise ValueError(f"tenant {tenant!r} is not 1-63 characters of [a-z0-9_-]")
    _check_key_name(name)
    path = directory / f"{tenant}.key"
    if not path.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_key_file(path)
    return load_key(path, name)


def _create_key_file(path: Path) -> None:
    """Write a new private key at ``path`` unless a key is already there.

    The key is written and synced under a temporary name, then hard-linked to its final
    name: link() fails if the name exists, so the final name only ever holds a complete
    key, and a process that loses the race simply reads the winner's.
    """
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as key_file:
            key_file.write(pem)
            key_file.flush()
            os.fsync(key_file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
        _fsync_directory(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    """Make a new directory entry durable (a crash must not lose a key already used)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
