"""The log owner's side of witnessing: ask peers to cosign a checkpoint and keep what verifies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import httpx

from ledger import note
from ledger.cosignature import verify_cosignatures
from ledger.errors import LedgerError
from ledger.storage import Log
from ledger.witness import AddCheckpoint, SizeConflict, Witness, WitnessError
from node.peers.outbound import EgressRefused, Outbound

#: A witness request carries a signed checkpoint and a consistency proof: hashes, no personal information.
WITNESS_FIELDS = {"checkpoint": "non_pi"}


class WitnessUnavailableError(Exception):
    """A witness could not be reached or answered outside the protocol."""


class WitnessClient(Protocol):
    """Something that answers tlog-witness add-checkpoint requests."""

    name: str
    cosigner: note.Verifier

    def add_checkpoint(self, request: AddCheckpoint) -> str:
        """Return the cosignature line(s) or raise :class:`WitnessError`."""
        ...


@dataclass
class LocalWitness:
    """A witness in this process (the demo and tests)."""

    name: str
    witness: Witness

    @property
    def cosigner(self) -> note.Verifier:
        """The witness's cosignature key."""
        return self.witness.verifier()

    def add_checkpoint(self, request: AddCheckpoint) -> str:
        """Pass the request straight to the witness."""
        return self.witness.add_checkpoint(request)


@dataclass
class HttpWitness:
    """A peer's witness reached over HTTP (``POST {url}/v1/witness/add-checkpoint``), through egress."""

    name: str
    cosigner: note.Verifier
    outbound: Outbound

    def add_checkpoint(self, request: AddCheckpoint) -> str:
        """Send the request; map the protocol's statuses back to :class:`WitnessError`."""
        try:
            r = self.outbound.post(
                self.name, "/v1/witness/add-checkpoint", content=request.render(), fields=WITNESS_FIELDS
            )
        except EgressRefused as exc:
            raise WitnessUnavailableError(f"witness {self.name}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise WitnessUnavailableError(f"witness {self.name}: {exc}") from exc
        if r.status_code == 200:
            return r.text
        if r.status_code == 409 and r.headers.get("content-type", "").startswith("text/x.tlog.size"):
            size = r.text.strip()
            if not size.isdigit():
                raise WitnessUnavailableError(f"witness {self.name} sent a 409 without a size: {size[:40]!r}")
            raise SizeConflict(f"witness {self.name} last cosigned another size", int(size))
        err = WitnessError(f"witness {self.name} refused ({r.status_code}): {r.text[:300]}")
        err.status = r.status_code
        raise err


@dataclass(frozen=True)
class CosignOutcome:
    """What one witness said about one checkpoint."""

    witness: str
    size: int
    ok: bool
    detail: str


def request_cosignatures(log: Log, signer: note.Signer, witnesses: Iterable[WitnessClient]) -> list[CosignOutcome]:
    """Sign a checkpoint of ``log`` and collect each witness's cosignature.

    The first request uses the size this witness last cosigned according to our records; a
    409 tells the witness's real size and the request is repeated once from there.
    """
    signed = log.sign_checkpoint(signer)
    text = note.parse(signed).text
    size = int(text.split("\n")[1])
    outcomes = []
    for w in witnesses:
        old = log.last_cosigned_size(w.name, size)
        try:
            try:
                line = w.add_checkpoint(_request(log, old, size, signed))
            except SizeConflict as exc:
                line = w.add_checkpoint(_request(log, exc.latest_size, size, signed))
            mine = _cosignature_lines(text, line, w.cosigner)
            if not mine:
                raise WitnessUnavailableError(f"witness {w.name} answered without a cosignature from its key")
            log.add_cosignature(size, w.name, mine[0])
            outcomes.append(CosignOutcome(w.name, size, True, "cosigned"))
        except (WitnessError, WitnessUnavailableError, LedgerError) as exc:
            outcomes.append(CosignOutcome(w.name, size, False, str(exc)))
    return outcomes


def _cosignature_lines(text: str, response: str, cosigner: note.Verifier) -> list[str]:
    """The response lines that are valid cosignatures by ``cosigner`` (tlog-witness allows several
    lines and tells clients to ignore the ones from keys they do not know)."""
    found = []
    for line in response.split("\n"):
        if not line.startswith(note.SIG_PREFIX):
            continue
        try:
            if verify_cosignatures(f"{text}\n{line}\n", cosigner):
                found.append(line + "\n")
        except LedgerError:
            continue  # a malformed or failing line from this witness is not a cosignature
    return found


def _request(log: Log, old: int, size: int, signed: str) -> AddCheckpoint:
    proof = log.consistency_proof(old, size) if 0 < old <= size else []
    return AddCheckpoint(old if old <= size else 0, tuple(proof), signed)
