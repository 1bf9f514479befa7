"""The deletion attestation a decommissioned node leaves (PIPL Art. 21: delete when the entrustment ends).

A signed note (:mod:`ledger.note`, the node's own Ed25519 key) whose text says what was destroyed
and what the node's logs looked like at that moment, so that the brand can check it offline with
``node.vkey`` alone and hold the host to it::

    alliance-node deletion attestation v1
    node airline.alliance.example
    time 2026-12-01T08:00:00.000000Z
    contract HOST-2026-001
    data-key shredded
    member-keys 1204
    sealed-values 2911
    wal emptied
    log airline.alliance.example/audit 5021 <base64 root>
    log airline.alliance.example/exchange 377 <base64 root>

``contract`` is ``none`` for a node hosted under no recorded contract; ``data-key`` is ``absent``
when the key was already gone (a decommission resumed after a crash); ``wal`` is ``emptied``
(SQLite's write-ahead log checkpointed to zero bytes), ``in-use`` (another connection still held it:
SQLite empties it when that one closes) or ``server`` (PostgreSQL, whose WAL is the server's). The
``log`` lines are each log's size and root after the decommission was itself audited: the same
head a copy of the log the brand exported must reach.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ledger import note
from ledger.checkpoint import parse_tree_size
from ledger.errors import LedgerError

HEADER = "alliance-node deletion attestation v1"
#: Where a decommissioned node keeps its attestation; its presence is what makes the node refuse to open.
ATTESTATION_FILE = "decommissioned.note"

DataKey = Literal["shredded", "absent"]
Wal = Literal["emptied", "in-use", "server"]
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_WORD = r"[A-Za-z0-9._:/-]{1,200}"


class AttestationError(ValueError):
    """A note that is not a deletion attestation, or not this node's."""


@dataclass(frozen=True)
class LogHead:
    """One log's origin, size and root hash when the node was decommissioned."""

    origin: str
    size: int
    root: bytes


@dataclass(frozen=True)
class DeletionAttestation:
    """What a decommission destroyed, and the logs' heads after it (pure: no I/O)."""

    node_id: str
    at: datetime
    contract_id: str | None
    data_key: DataKey
    member_keys: int
    sealed_values: int
    wal: Wal
    logs: tuple[LogHead, ...]

    def text(self) -> str:
        """The note text, ending in a newline."""
        lines = [
            HEADER,
            f"node {self.node_id}",
            f"time {self.at.astimezone(UTC).strftime(_TIME)}",
            f"contract {self.contract_id or 'none'}",
            f"data-key {self.data_key}",
            f"member-keys {self.member_keys}",
            f"sealed-values {self.sealed_values}",
            f"wal {self.wal}",
            *(f"log {h.origin} {h.size} {note.b64encode(h.root)}" for h in self.logs),
        ]
        text = "\n".join(lines) + "\n"
        parse(text)  # what this writes, verify reads back: a word with a space would not be
        return text

    def sign(self, signer: note.Signer) -> str:
        """The attestation as a note signed by ``signer`` (the node's key)."""
        return note.sign(self.text(), signer)


_FIELDS = [
    ("node", _WORD),
    ("time", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"),
    ("contract", _WORD),
    ("data-key", "shredded|absent"),
    ("member-keys", r"\d{1,19}"),
    ("sealed-values", r"\d{1,19}"),
    ("wal", "emptied|in-use|server"),
]
_LOG = re.compile(r"log (\S{1,400}) (\d{1,19}) ([A-Za-z0-9+/=]{44})")  # an origin is one printable word here


def parse(text: str) -> DeletionAttestation:
    """Read an attestation's note text (the signatures are :func:`verify`'s), or :class:`AttestationError`."""
    if not text.endswith("\n"):
        raise AttestationError("an attestation's text ends in a newline")
    header, *lines = text[:-1].split("\n")
    if header != HEADER:
        raise AttestationError(f"not a deletion attestation: its first line is not {HEADER!r}")
    if len(lines) < len(_FIELDS):
        raise AttestationError("the attestation is missing lines")
    values: dict[str, str] = {}
    for (name, pattern), line in zip(_FIELDS, lines, strict=False):
        found = re.fullmatch(rf"{re.escape(name)} ({pattern})", line)
        if not found:
            raise AttestationError(f"the attestation's line {line[:60]!r} is not its {name!r} line")
        values[name] = found.group(1)
    logs = []
    for line in lines[len(_FIELDS) :]:
        found = _LOG.fullmatch(line)
        if not found:
            raise AttestationError(f"the attestation's line {line[:60]!r} is not a log line")
        try:
            root = note.b64decode(found.group(3), "a log root")
            size = parse_tree_size(found.group(2))
        except LedgerError as exc:
            raise AttestationError(str(exc)) from exc
        if len(root) != 32:
            raise AttestationError("a log root is 32 bytes")
        logs.append(LogHead(found.group(1), size, root))
    return DeletionAttestation(
        node_id=values["node"],
        at=datetime.strptime(values["time"], _TIME).replace(tzinfo=UTC),
        contract_id=None if values["contract"] == "none" else values["contract"],
        data_key=values["data-key"],  # type: ignore[arg-type]  # the pattern admits only the literals
        member_keys=int(values["member-keys"]),
        sealed_values=int(values["sealed-values"]),
        wal=values["wal"],  # type: ignore[arg-type]
        logs=tuple(logs),
    )


def verify(signed: str, verifier: note.Verifier) -> DeletionAttestation:
    """The attestation in ``signed`` if the node ``verifier`` names signed it (else :class:`ledger.errors.NoteError`
    or :class:`AttestationError`): what a brand runs offline with the node's ``node.vkey``."""
    attestation = parse(note.open_note(signed, verifier).text)
    if attestation.node_id != verifier.name:
        raise AttestationError(f"the attestation names node {attestation.node_id!r}, the key is {verifier.name!r}'s")
    return attestation
