"""C2SP signed notes with Ed25519 keys, and keys in the text forms of Go's note package.

Verifier key: ``<name>+<key id hex>+<base64(type || public key)>``.
Signer key:   ``PRIVATE+KEY+<name>+<key id hex>+<base64(type || 32-byte seed)>``.
A note is its text (ending in a newline), a blank line, then lines ``— <name> <base64(id || sig)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import NoteError

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 64


def b64decode(text: str, what: str) -> bytes:
    """Strict, canonical standard base64 decoding that names ``what`` in its error."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    # Padding bits are ignored by decoders: without this check two texts would carry one value.
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as every C2SP format uses."""
    return base64.b64encode(data).decode("ascii")


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid note key name (non-empty, no spaces or '+'), as Go's note does."""
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"invalid key name {name!r}: it must be non-empty with no spaces or '+'")
    return name


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || alg || public key)[:4]`` as a big-endian integer."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return struct.unpack(">I", digest[:4])[0]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures of one signature type."""

    name: str
    public_key: bytes
    alg: int = ALG_ED25519

    @property
    def key_id(self) -> int:
        """The 4-byte key id identifying this key together with its name."""
        return key_id(self.name, self.alg, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def cosigner(self) -> Verifier:
        """The same key as a checker of tlog cosignatures (signature type 0x04)."""
        return Verifier(self.name, self.public_key, ALG_COSIGNATURE_V1)

    def to_vkey(self) -> str:
        """Return the ``name+id+base64`` verifier key text."""
        return f"{self.name}+{self.key_id:08x}+{b64encode(bytes([self.alg]) + self.public_key)}"

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        """Parse a verifier key text, checking that its key id matches its key."""
        if text.strip().startswith("PRIVATE+KEY+"):  # never quoted back: it is a secret
            raise NoteError(
                "this is a private signing key (node.key), not a verifier key: give the node's node.vkey,"
                " and keep node.key secret"
            )
        parts = text.strip().split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3:
            raise NoteError("a verifier key has the form <name>+<key id hex>+<base64 key>")
        name, hex_id, b64 = parts
        check_key_name(name)
        if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
            raise NoteError(f"verifier key id {hex_id!r} is not 8 hex digits")
        raw = b64decode(b64, "verifier key")
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError("verifier key is not an Ed25519 key (type 0x01 or 0x04, 32 bytes)")
        verifier = cls(name, raw[1:], raw[0])
        if verifier.key_id != int(hex_id, 16):
            raise NoteError(f"verifier key id {hex_id} does not match its name and key")
        return verifier


class Signer:
    """A named Ed25519 private key that signs note texts (signature type 0x01)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._key = private_key
        self.public_key = _raw_public(private_key.public_key())

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Create a signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    def verifier(self, alg: int = ALG_ED25519) -> Verifier:
        """The matching verifier (``alg`` 0x04 gives the witness cosignature verifier)."""
        return Verifier(self.name, self.public_key, alg)

    def sign_raw(self, message: bytes) -> bytes:
        """Return the raw 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The key itself, for protocols that sign through a library (HTTP message signatures)."""
        return self._key

    def signature_line(self, text: str) -> str:
        """Return the note signature line of this key over ``text``."""
        sig = struct.pack(">I", self.verifier().key_id) + self.sign_raw(text.encode())
        return f"{SIG_PREFIX}{self.name} {b64encode(sig)}\n"

    def to_skey(self) -> str:
        """Return the ``PRIVATE+KEY+name+id+base64(0x01 || seed)`` signer key text."""
        seed = self._key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id:08x}+{b64encode(bytes([ALG_ED25519]) + seed)}"

    @classmethod
    def from_skey(cls, text: str) -> Signer:
        """Parse a signer key text, checking its key id."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key has the form PRIVATE+KEY+<name>+<key id hex>+<base64 key>")
        name, hex_id, b64 = parts[2:]
        raw = b64decode(b64, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if f"{signer.verifier().key_id:08x}" != hex_id:
            raise NoteError(f"signer key id {hex_id} does not match its name and key")
        return signer


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes
    canonical: bool = True

    def line(self) -> str:
        """Render back to the exact signature line."""
        return f"{SIG_PREFIX}{self.name} {b64encode(struct.pack('>I', self.key_id) + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A parsed note: its text and every signature line on it (verified or not)."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        """Return the note in its wire form."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def sign(text: str, *signers: Signer) -> str:
    """Sign ``text`` (which must end in a newline) with every signer; return the note."""
    _check_text(text)
    if not signers:
        raise NoteError("a note needs at least one signer")
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end in a newline")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("note text must not contain control characters other than newline")


def parse(note: str) -> Note:
    """Split a note into text and signature lines without verifying anything."""
    if len(note) > 1_000_000:
        raise NoteError("note is too large")
    _check_text(note)
    sep = note.rfind("\n\n")
    if sep < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sig_block = note[: sep + 1], note[sep + 2 :]
    sigs: list[NoteSignature] = []
    # Only "\n" ends a line (str.splitlines would also split on U+2028 and friends, as Go does not).
    for line in sig_block[:-1].split("\n") if sig_block.endswith("\n") else [sig_block]:
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line[:40]!r}")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise NoteError(f"malformed signature line {line[:40]!r}")
        name, b64 = fields
        check_key_name(name)
        try:  # lenient like Go's decoder; open_note insists on canonical form for the keys it checks
            raw = base64.b64decode(b64.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise NoteError("note signature is not valid base64") from exc
        if len(raw) < 5:
            raise NoteError("note signature is too short")
        canonical = base64.b64encode(raw).decode("ascii") == b64
        sigs.append(NoteSignature(name, struct.unpack(">I", raw[:4])[0], raw[4:], canonical))
    if not sigs:
        raise NoteError("note has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(sigs))


def open_note(note: str, *verifiers: Verifier) -> Note:
    """Parse ``note`` and check it: every signature from a known key must verify, and at least one must.

    Signatures from unknown keys (name and key id not both matching) are ignored, as C2SP
    requires. Only type-0x01 verifiers are used here; cosignatures are checked by
    :mod:`ledger.cosignature`.
    """
    parsed = parse(note)
    known = {(v.name, v.key_id): v for v in verifiers if v.alg == ALG_ED25519}
    verified = 0
    for sig in parsed.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            continue
        # Two encodings of one signature would let a note change bytes and still verify.
        if not sig.canonical or not v.verify(parsed.text.encode(), sig.signature):
            raise NoteError(f"signature by {sig.name} ({sig.key_id:08x}) does not verify")
        verified += 1
    if not verified:
        signed_by = ", ".join(f"{sig.name} ({sig.key_id:08x})" for sig in parsed.signatures)
        trusted = ", ".join(f"{name} ({key_id:08x})" for name, key_id in known) or "none"
        raise NoteError(f"no signature on the note is from a trusted key: signed by {signed_by}; trusted: {trusted}")
    return parsed
