"""C2SP ``tlog-cosignature`` v1: timestamped Ed25519 cosignatures (signature type 0x04).

The signed message is ``cosignature/v1\\ntime <t>\\n`` followed by the whole checkpoint text;
the signature line carries ``key id || u64 timestamp || signature``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ledger import note
from ledger.errors import NoteError


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The exact bytes a cosigner signs for ``checkpoint_text`` at ``timestamp``."""
    if not 0 <= timestamp < 2**63:
        raise NoteError(f"cosignature timestamp {timestamp} is out of range")
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def cosign(checkpoint_text: str, signer: note.Signer, timestamp: int) -> str:
    """Return the cosignature line of ``signer`` over ``checkpoint_text``."""
    kid = signer.verifier(note.ALG_COSIGNATURE_V1).key_id
    sig = signer.sign_raw(cosigned_message(checkpoint_text, timestamp))
    body = struct.pack(">IQ", kid, timestamp) + sig
    return f"{note.SIG_PREFIX}{signer.name} {note.b64encode(body)}\n"


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: who cosigned, and when (POSIX seconds)."""

    name: str
    timestamp: int


def verify_cosignatures(signed: str, *witnesses: note.Verifier) -> list[Cosignature]:
    """Return the cosignatures on ``signed`` from the given witness keys (type 0x04).

    A cosignature from a known witness key that does not verify raises :class:`NoteError`;
    lines from unknown keys are ignored.
    """
    parsed = note.parse(signed)
    known = {(w.name, w.key_id): w for w in witnesses if w.alg == note.ALG_COSIGNATURE_V1}
    found: list[Cosignature] = []
    for sig in parsed.signatures:
        w = known.get((sig.name, sig.key_id))
        if w is None:
            continue
        if len(sig.signature) != 8 + 64 or not sig.canonical:
            raise NoteError(f"cosignature by {sig.name} has the wrong length")
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        if not w.verify(cosigned_message(parsed.text, timestamp), sig.signature[8:]):
            raise NoteError(f"cosignature by {sig.name} does not verify")
        found.append(Cosignature(sig.name, timestamp))
    return found
