"""Records of provision (PIPL Art. 23, N12, G9.1(f)): who received what about whom, when, on what basis.

A node keeps no separate table of provisions: every transfer of personal information to another
node is an audit event (``pi.provide``, or ``xborder.transfer`` abroad) written by the one egress
point before the data leaves, carrying the record's fields: time, recipient and its PIPL role,
purpose, legal basis, PI categories, number of individuals (and who, by pseudonym) and the digest
of the signed peer call that carried it. The audit log is append-only and never purged, so the
records are kept for at least the three years the law asks, and an audit bundle filtered on
:data:`PROVISION_ACTIONS` proves them offline. This module turns those events into the report.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from compliance.audit import AuditEvent, format_ts
from compliance.purposes import Purpose, catalogue

#: The audit actions that are records of provision.
PROVISION_ACTIONS = ("pi.provide", "xborder.transfer")

#: The reason an egress event records that a call it had recorded as a provision never reached the peer.
NOT_DELIVERED = "not_delivered"

#: The audit filter's action criterion selecting exactly them.
PROVISION_FILTER = ",".join(PROVISION_ACTIONS)


def purpose_for(purpose: str, recipient: str) -> Purpose:
    """The catalogue purpose a transfer to ``recipient`` for ``purpose`` falls under: a family that takes
    a recipient (``joint_modeling``) becomes the separate purpose for that brand (``joint_modeling:<brand>``)."""
    family = purpose.rstrip(":") + ":"
    code = f"{family}{recipient}" if family in catalogue().families else purpose
    return catalogue().purpose(code)


def signature_digest(signature: str) -> str:
    """What a record cites of the peer call that carried the data: the SHA-256 of its RFC 9421
    ``Signature`` header, which both nodes can compute (the recipient from the call it received)."""
    return hashlib.sha256(signature.encode()).hexdigest()


@dataclass(frozen=True)
class Provision:
    """One record of provision, as the report shows it."""

    at: str
    recipient: str
    recipient_role: str
    purpose: str
    legal_basis: str
    pi_categories: str
    individuals: int
    cross_border: bool
    mechanism: str
    signature_digest: str
    carried_by: str
    event_id: str
    ledger_index: int


def provision_of(index: int, event: AuditEvent) -> Provision:
    """The record an audit event of provision holds (``ValueError`` for any other event)."""
    if event.action not in PROVISION_ACTIONS or event.outcome != "ok" or event.recipient is None:
        raise ValueError(f"audit entry {index} ({event.action}) is not a record of provision")
    d = event.details
    return Provision(
        at=format_ts(event.ts_utc),
        recipient=event.recipient.id,
        recipient_role=event.recipient.role or "independent",
        purpose=event.purpose_code or "",
        legal_basis=event.legal_basis or "",
        pi_categories=";".join(event.pi_categories),
        individuals=event.subject_count if event.subject_count is not None else len(event.subject_pseudo_ids),
        cross_border=event.action == "xborder.transfer",
        mechanism=str(d.get("mechanism") or "none"),
        signature_digest=str(d.get("signature_digest") or ""),
        carried_by=str(d.get("carried_by") or "peer_call"),
        event_id=event.event_id,
        ledger_index=index,
    )


def report(events: Iterable[tuple[int, AuditEvent]]) -> list[Provision]:
    """The records of provision among ``events`` (others are skipped), oldest first, one per transfer.

    A transfer about more than 1,000 members is recorded as several events (an event names at most
    1,000), each with the transfer's total count and the same signature digest: they are one row.
    A transfer the egress point later found was never delivered (the connection could not be made)
    is left out."""
    rows: dict[tuple[str, ...], Provision] = {}
    undelivered: set[str] = set()
    for i, e in events:
        if e.action in PROVISION_ACTIONS and e.outcome == "error" and e.reason_code == NOT_DELIVERED:
            undelivered.add(str(e.details.get("signature_digest")))
        if e.action not in PROVISION_ACTIONS or e.outcome != "ok" or e.recipient is None:
            continue
        p = provision_of(i, e)
        key = (e.action, p.recipient, p.carried_by, p.signature_digest, p.pi_categories) if p.signature_digest else (
            p.event_id,
        )
        rows.setdefault(key, p)
    out = [p for p in rows.values() if p.carried_by != "peer_call" or p.signature_digest not in undelivered]
    return sorted(out, key=lambda p: (p.at, p.ledger_index))


COLUMNS = tuple(Provision.__dataclass_fields__)


def to_csv(rows: Iterable[Provision]) -> str:
    """The report as CSV (a header row, then one row per record) for a spreadsheet."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([getattr(r, c) for c in COLUMNS])
    return buf.getvalue()


def to_json(rows: Iterable[Provision]) -> str:
    """The report as a JSON array of records."""
    return json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False)
