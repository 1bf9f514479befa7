"""Portability (PIPL Art. 45(3)): what a member's data looks like on its way to the brand they name,
and what the receiving brand may keep of it.

The member asks the receiving brand for a one-time code (authenticated there), then gives it to the
sending brand with the request (authenticated there too): each end verifies the member itself. The
sender sends the portable part of its ``alliance-member-data/1`` export, one top-level field per PI
category so that the egress check sees exactly what leaves; the receiver keeps a field only if its
current notice covers that category for a purpose the member may be processed for there (consented
to, or the programme's contract). Pure: no database, no peer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compliance.consent import Decision
from compliance.notices import Notice
from compliance.purposes import catalogue

FORMAT = "alliance-member-data/1"

#: The purpose a portable export travels under (a legal obligation: the member's own request).
PURPOSE = "rights.portability"

#: The portable fields and the PI category each carries; ``code`` and ``format`` carry none.
FIELDS: dict[str, str] = {
    "code": "non_pi",
    "format": "non_pi",
    "generated_at": "non_pi",
    "phone": "contact.basic",
    "balance": "loyalty.balance",
    "journal": "loyalty.transactions",
    "purchases": "purchase.history",
}


def new_code() -> str:
    """A code a person can type: 16 base32 characters in four groups (80 random bits)."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def code_hash(code: str) -> str:
    """What is stored instead of the code (case and dashes do not matter when typed)."""
    return hashlib.sha256(code.replace("-", "").strip().upper().encode()).hexdigest()


def portable(export: Mapping[str, Any], code: str) -> dict[str, Any]:
    """The portable part of an access export (``alliance-member-data/1``): the data the member gave or
    earned here (phone number, points, purchases), not this node's own records about them (consent
    history, audit events, pseudonyms, links), which mean nothing at another brand."""
    member = export.get("member") or {}
    wallet = export.get("wallet") or {}
    body: dict[str, Any] = {"code": code, "format": FORMAT, "generated_at": export.get("generated_at")}
    if member.get("phone"):
        body["phone"] = member["phone"]
    if wallet:
        body["balance"] = wallet.get("balance")
        body["journal"] = wallet.get("journal") or []
    if export.get("purchases"):
        body["purchases"] = export["purchases"]
    return body


@dataclass(frozen=True)
class Import:
    """What the receiver keeps of a portable export, and why it left the rest."""

    kept: dict[str, Any]
    skipped: dict[str, str]  # field -> reason


def allowed_categories(notice: Notice | None, decisions: Mapping[str, Decision]) -> set[str]:
    """The PI categories the receiver may hold for this member: those its current notice lists for a
    purpose the member may be processed for here now: one they consented to (``decisions``, by code; a
    family such as ``joint_modeling:`` through any of its brands), or one that needs no consent (the
    programme's contract)."""
    if notice is None:
        return set()
    allowed: set[str] = set()
    for code, terms in notice.purposes.items():
        if code.endswith(":"):
            ok = any(k.startswith(code) and d.allowed for k, d in decisions.items())
        elif code in decisions:
            ok = decisions[code].allowed
        else:
            ok = not catalogue().purpose(code).needs_consent
        if ok:
            allowed |= set(terms.pi_categories)
    return allowed


def plan_import(body: Mapping[str, Any], allowed: set[str]) -> Import:
    """Split a received export into what may be kept here and what may not (with the reason)."""
    kept: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for field, category in FIELDS.items():
        if category == "non_pi" or field not in body:
            continue
        if category in allowed:
            kept[field] = body[field]
        else:
            skipped[field] = f"{category} is not covered here: no notice purpose the member agreed to uses it"
    return Import(kept, skipped)
