"""The RFC 6962 / RFC 9162 hasher: leaf and interior node hashes, nothing else."""

from __future__ import annotations

import hashlib

from ledger.errors import HashLengthError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Return ``SHA256(0x00 || data)``, the hash of a leaf holding ``data``."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA256(0x01 || left || right)``, the hash of an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def check_hash(value: bytes, what: str = "hash") -> bytes:
    """Return ``value`` if it is a 32-byte hash, else raise :class:`HashLengthError`."""
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise HashLengthError(f"{what} must be {HASH_SIZE} bytes, got {size}")
    return bytes(value)
