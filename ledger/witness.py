"""A C2SP ``tlog-witness``: cosign a log's checkpoint only if it extends what was cosigned before.

Pure protocol logic; the latest cosigned tree head per origin lives in a
:class:`WitnessState` (in memory here, in the database in :mod:`ledger.storage`). The
check of the old size and the update of the record happen atomically through
``compare_and_set`` on the whole recorded head, so two racing submissions can never roll the
record back or have two different roots cosigned for one size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger import note
from ledger.checkpoint import Checkpoint, parse_tree_size
from ledger.cosignature import cosign
from ledger.errors import CheckpointError, LedgerError, NoteError, ProofError, TreeSizeError
from ledger.proof import verify_consistency
from ledger.rfc6962 import EMPTY_ROOT

MAX_PROOF_LINES = 63


class WitnessError(LedgerError):
    """A refused submission; ``status`` is the HTTP status tlog-witness assigns to it."""

    status = 400


class MalformedRequest(WitnessError):
    """The request body is not a valid add-checkpoint request (400)."""


class UnknownLog(WitnessError):
    """No trusted key is configured for the checkpoint's origin (404)."""

    status = 404


class UntrustedSignature(WitnessError):
    """No signature on the checkpoint verifies against the origin's trusted keys (403)."""

    status = 403


class SizeConflict(WitnessError):
    """The old size is not the size last cosigned, or a same-size checkpoint has another root (409)."""

    status = 409

    def __init__(self, message: str, latest_size: int) -> None:
        super().__init__(message)
        self.latest_size = latest_size


class SplitView(SizeConflict):
    """A checkpoint of the size last cosigned, with another root: the log forked (409)."""


class InconsistentCheckpoint(WitnessError):
    """The consistency proof does not verify: the log forked or rewrote history (422)."""

    status = 422


@dataclass(frozen=True)
class TreeHead:
    """The witness's record of one log: the latest cosigned size and root."""

    size: int
    root_hash: bytes


class WitnessState(Protocol):
    """Where a witness keeps the latest cosigned tree head of each origin."""

    def latest(self, origin: str) -> TreeHead | None:
        """The latest cosigned head of ``origin``, or None if never cosigned."""
        ...

    def compare_and_set(self, origin: str, expected: TreeHead | None, new: TreeHead) -> bool:
        """Record ``new`` only if the record is still exactly ``expected`` (None: no record); say if it did."""
        ...


class MemoryWitnessState:
    """A :class:`WitnessState` in a dict, for tests and tools."""

    def __init__(self) -> None:
        self._heads: dict[str, TreeHead] = {}

    def latest(self, origin: str) -> TreeHead | None:
        """See :class:`WitnessState`."""
        return self._heads.get(origin)

    def compare_and_set(self, origin: str, expected: TreeHead | None, new: TreeHead) -> bool:
        """See :class:`WitnessState`."""
        if self._heads.get(origin) != expected:
            return False
        self._heads[origin] = new
        return True


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: old size, consistency proof, signed checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def render(self) -> str:
        """The request body in its wire form."""
        lines = [f"old {self.old_size}", *(note.b64encode(p) for p in self.proof)]
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, body: str) -> AddCheckpoint:
        """Parse a request body, raising :class:`MalformedRequest` on any deviation."""
        head, sep, checkpoint = body.partition("\n\n")
        if not sep:
            raise MalformedRequest("request has no blank line before the checkpoint")
        lines = head.split("\n")
        first = lines[0]
        if not first.startswith("old "):
            raise MalformedRequest("first line must be 'old <size>'")
        try:
            old_size = parse_tree_size(first[4:])
        except CheckpointError as exc:
            raise MalformedRequest(f"old size: {exc}") from exc
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise MalformedRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            proof = tuple(note.b64decode(line, "consistency proof line") for line in lines[1:])
        except NoteError as exc:
            raise MalformedRequest(str(exc)) from exc
        return cls(old_size, proof, checkpoint)


TrustPolicy = Callable[[str], Sequence[note.Verifier]]


class Witness:
    """Cosigns checkpoints of trusted logs that are consistent with what it cosigned before."""

    def __init__(
        self,
        signer: note.Signer,
        trusted: TrustPolicy,
        state: WitnessState,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.trusted = trusted
        self.state = state
        self.clock = clock

    def verifier(self) -> note.Verifier:
        """The key that checks this witness's cosignatures (signature type 0x04)."""
        return self.signer.verifier(note.ALG_COSIGNATURE_V1)

    def add_checkpoint(self, request: AddCheckpoint) -> str:
        """Check ``request`` and return the cosignature line, or raise a :class:`WitnessError`."""
        try:
            parsed = note.parse(request.checkpoint)
            cp = Checkpoint.parse_text(parsed.text)
        except LedgerError as exc:
            raise MalformedRequest(f"checkpoint is malformed: {exc}") from exc
        keys = list(self.trusted(cp.origin))
        if not keys:
            raise UnknownLog(f"no trusted key for origin {cp.origin!r}")
        try:
            note.open_note(request.checkpoint, *keys)
        except NoteError as exc:
            raise UntrustedSignature(f"checkpoint of {cp.origin}: {exc}") from exc
        if request.old_size > cp.size:
            raise MalformedRequest(f"old size {request.old_size} is larger than checkpoint size {cp.size}")
        latest = self.state.latest(cp.origin)
        latest_size = latest.size if latest else 0
        if request.old_size != latest_size:
            raise SizeConflict(
                f"old size {request.old_size} is not the last cosigned size {latest_size} of {cp.origin}",
                latest_size,
            )
        self._check_consistency(cp, latest, request.proof)
        if not self.state.compare_and_set(cp.origin, latest, TreeHead(cp.size, cp.root_hash)):
            now = self.state.latest(cp.origin)
            raise SizeConflict(f"a concurrent submission for {cp.origin} won", now.size if now else 0)
        return cosign(parsed.text, self.signer, int(self.clock()))

    @staticmethod
    def _check_consistency(cp: Checkpoint, latest: TreeHead | None, proof: Sequence[bytes]) -> None:
        if latest is not None and latest.size == cp.size:
            if proof:
                raise InconsistentCheckpoint("the proof must be empty when the size did not change")
            if latest.root_hash != cp.root_hash:
                raise SplitView(
                    f"split view: {cp.origin} at size {cp.size} has root {cp.root_hash.hex()}, "
                    f"but {latest.root_hash.hex()} was cosigned",
                    latest.size,
                )
            return
        if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
            raise InconsistentCheckpoint(f"a tree of size 0 has the empty-tree root, not {cp.root_hash.hex()}")
        if latest is None or latest.size == 0:
            if proof:
                raise InconsistentCheckpoint("the proof must be empty when the old size is zero")
            return
        try:
            verify_consistency(latest.size, cp.size, latest.root_hash, cp.root_hash, proof)
        except (ProofError, TreeSizeError, LedgerError) as exc:
            raise InconsistentCheckpoint(
                f"split view: {cp.origin} at size {cp.size} is not consistent with the cosigned "
                f"size {latest.size} ({exc})"
            ) from exc
