"""A member's own consents and receipts; withdrawing is the same call, with the same token, as granting."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from compliance.consent import ConsentAction
from node.routes.deps import Member, NodeDep

router = APIRouter(prefix="/v1/me", tags=["me"])


class ConsentState(BaseModel):
    """Whether one purpose may use the member's data now, and why."""

    purpose: str
    allowed: bool
    reason: str


class ConsentChange(BaseModel):
    """Grant, withdraw or renew some purposes: one record each, never bundled."""

    action: Literal["grant", "withdraw", "renew"]
    purposes: list[str] = Field(min_length=1, max_length=50)


class Receipt(BaseModel):
    """A consent receipt: a signed note verifiable offline with the node's key."""

    receipt: str


@router.get("/consents")
def consents(node: NodeDep, me: Member) -> list[ConsentState]:
    """The current state of every optional purpose (nothing optional is on by default)."""
    return [
        ConsentState(purpose=code, allowed=d.allowed, reason=d.reason.value)
        for code, d in node.consent.decisions(me.id).items()
    ]


@router.post("/consents")
def change_consents(node: NodeDep, me: Member, change: ConsentChange) -> Receipt:
    """Apply the change and return its signed receipt."""
    return Receipt(receipt=node.consent.change(me.id, change.purposes, ConsentAction(change.action)))


@router.get("/receipts")
def receipts(node: NodeDep, me: Member) -> list[Receipt]:
    """Every receipt issued to this member, oldest first."""
    member = node.keyring.pseudonym(me.id, create=False)
    return [Receipt(receipt=r) for r in node.consent.store.receipts(member)]
