"""Consent receipts after Kantara Consent Receipt v1.1, signed by the node, verifiable offline.

A receipt is a C2SP signed note whose text is one line of canonical JSON: anyone holding the
node's verifier key (``node.vkey``) can check it with any signed-note implementation.
"""

from __future__ import annotations

import json
from typing import Any

from compliance.consent import ConsentRecord
from compliance.notices import Notice
from compliance.purposes import catalogue
from ledger import note
from ledger.canonical import canonical_json
from ledger.errors import NoteError

RECEIPT_VERSION = "KI-CR-v1.1.0"


class ReceiptError(ValueError):
    """A receipt that is malformed or whose signature does not verify."""


def build_receipt(records: list[ConsentRecord], notice: Notice, node_id: str) -> dict[str, Any]:
    """The receipt of one consent change (one or more purposes, one record each)."""
    if not records:
        raise ReceiptError("a receipt covers at least one consent record")
    cat = catalogue()
    first = records[0]
    chinese = notice.language.lower().startswith("zh")  # the receipt speaks the notice's language
    purposes = []
    for r in records:
        p = cat.purpose(r.purpose_code)
        recipients = [x for x in notice.pi_shared if p.parameter and x.name == p.parameter]
        purposes.append(
            {
                "consentId": r.consent_id,
                "purpose": p.code,
                "purposeTitle": p.title_zh if chinese else p.title,
                "action": r.action.value,
                "consentType": "separate" if p.consent.value == "separate" else "explicit",
                "legalBasis": p.legal_basis.value,
                "piiCategory": list(p.pi_categories),
                "sensitive": any(c in cat.sensitive_categories() for c in p.pi_categories),
                "thirdPartyDisclosure": bool(p.parameter and "provision" in p.methods),
                "thirdPartyName": [x.name for x in recipients] or ([p.parameter] if p.parameter else []),
                "expiresAt": r.expires_at.isoformat() if r.expires_at else None,
            }
        )
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": "CN",
        "consentTimestamp": first.at.isoformat(),
        "collectionMethod": first.collection_method,
        "consentReceiptID": first.consent_id,
        "language": notice.language,
        "piiPrincipalId": first.member,
        "actor": first.actor,
        "piiControllers": [
            {"piiController": notice.handler.name, "contact": notice.handler.contact, "nodeId": node_id}
        ],
        "policy": {"noticeVersion": notice.version, "noticeSha256": notice.sha256()},
        "purposes": purposes,
    }


def sign_receipt(receipt: dict[str, Any], signer: note.Signer) -> str:
    """The receipt as a signed note (one line of canonical JSON, then the node's signature)."""
    text = canonical_json(receipt).decode("ascii") + "\n"  # a note's text ends with its newline
    return note.sign(text, signer)


def verify_receipt(signed: str, verifier: note.Verifier) -> dict[str, Any]:
    """Check a receipt's signature offline and return its content."""
    try:
        parsed = note.open_note(signed, verifier)
    except NoteError as exc:
        raise ReceiptError(f"receipt signature: {exc}") from exc
    try:
        receipt = json.loads(parsed.text)
    except ValueError as exc:
        raise ReceiptError("receipt text is not JSON") from exc
    if not isinstance(receipt, dict) or receipt.get("version") != RECEIPT_VERSION:
        raise ReceiptError(f"not a {RECEIPT_VERSION} receipt")
    return receipt
