"""Field-level encryption of identifiers and sensitive fields at rest (PIPL Art. 51; checklist PIPL-SEC-01).

A node's database holds no member identifier in clear: each is stored sealed (AES-256-GCM, a
fresh nonce per value, the table and column as associated data so a sealed value cannot be moved
to another column) beside a blind index (HMAC-SHA256) that exact-match lookups use. Both keys are
derived (HKDF-SHA256) from one 32-byte data key kept in its own file, outside the database: a
stolen database or backup without that file reveals no identifier, birth date or guardian.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"


class FieldCryptError(ValueError):
    """A sealed value that does not open with this key and context (wrong key, moved or altered)."""


def _derive(key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"alliance-node/" + label).derive(key)


class FieldCipher:
    """Seal and open field values; compute blind indexes for lookups."""

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != KEY_BYTES:
            raise ValueError(f"a data key is {KEY_BYTES} bytes, not {len(data_key)}")
        self._aead = AESGCM(_derive(data_key, b"seal"))
        self._index_key = _derive(data_key, b"index")

    @classmethod
    def generate(cls) -> FieldCipher:
        """A cipher with a fresh random key (tests; nodes load theirs with :func:`load_or_create`)."""
        return cls(secrets.token_bytes(KEY_BYTES))

    def index(self, value: str) -> str:
        """The blind index of ``value``: equal values give equal indexes; nothing else is revealed."""
        return hmac.new(self._index_key, value.encode(), hashlib.sha256).hexdigest()

    def seal(self, value: str, context: str) -> bytes:
        """``value`` encrypted for the column named by ``context`` (e.g. ``member.ref``)."""
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, value.encode(), context.encode())

    def open(self, blob: bytes, context: str) -> str:
        """The value sealed in ``blob`` for ``context``, or :class:`FieldCryptError`."""
        blob = bytes(blob)
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != VERSION:
            raise FieldCryptError(f"not a sealed {context} value")
        try:
            return self._aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], context.encode()).decode()
        except InvalidTag as exc:
            raise FieldCryptError(f"a sealed {context} value does not open with this node's data key") from exc


def create_key_file(path: os.PathLike[str] | str) -> None:
    """Write a new random data key, readable by the node's user only; refuse to overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")


def shred_key_file(path: os.PathLike[str] | str) -> bool:
    """Overwrite the data key in place with random bytes, flush it to disk, then delete the file; return
    whether there was one. Every value sealed with it can no longer be opened, by anyone.

    Overwriting first means the file's blocks no longer hold the key once it is gone (on a
    filesystem that writes in place; a copy-on-write or journaling filesystem, a snapshot or a
    backup may keep older blocks: encrypted storage covers those).
    """
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.write(fd, secrets.token_bytes(max(size, 2 * KEY_BYTES + 1)))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    return True


def load_key_file(path: os.PathLike[str] | str) -> FieldCipher:
    """The cipher of the data key in ``path`` (hex), with a clear error if it is missing or malformed."""
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: without the data key the members' identifiers cannot be read; "
            "restore it from the backup kept apart from the database"
        ) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a hex data key") from None
    return FieldCipher(key)
