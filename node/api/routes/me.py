"""A member's own consents, receipts and rights requests; withdrawing is the same call, with the same token,
as granting. Every action here that the audit log records is counted against the member's budget
(``rate_limits``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from compliance.consent import ConsentAction
from compliance.portability_store import CODE_TTL
from compliance.rights import RightsRequest
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import Member, MemberWrite, NodeDep
from node.api.problems import Problem

router = APIRouter(prefix="/v1/me", tags=["me"], route_class=OffLoopJsonRoute)
RequestId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


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
def change_consents(node: NodeDep, me: MemberWrite, change: ConsentChange) -> Receipt:
    """Apply the change and return its signed receipt."""
    return Receipt(receipt=node.consent_changes.change(me.id, change.purposes, ConsentAction(change.action)))


@router.get("/receipts")
def receipts(node: NodeDep, me: Member) -> list[Receipt]:
    """Every receipt issued to this member, oldest first."""
    member = node.keyring.pseudonym(me.id, create=False)
    return [Receipt(receipt=r) for r in node.consent.store.receipts(member)]


class Correction(BaseModel):
    """Fields the member corrects."""

    birth_date: date | None = None
    phone: str | None = Field(default=None, min_length=1, max_length=40, examples=["138 0013 8000"])


class RequestState(BaseModel):
    """A rights request and where it stands."""

    id: str
    kind: str
    state: str
    received_at: datetime
    deadline: date


def _state(req: RightsRequest) -> RequestState:
    return RequestState(
        id=req.dsr_id, kind=req.kind.value, state=str(req.state), received_at=req.received_at, deadline=req.deadline
    )


class AccessResult(BaseModel):
    """An access request and its result: everything this node holds about the member (PIPL Art. 45)."""

    request: RequestState
    data: dict[str, Any]


@router.get(
    "/data",
    deprecated=True,
    responses={410: {"description": "moved: an access request is POST /v1/me/access-requests (reason_code moved)"}},
)
def my_data_moved(me: Member) -> None:
    """Moved: make an access request with ``POST /v1/me/access-requests`` (notices published before
    name this route; it answers 410 and records nothing, as a GET should)."""
    raise Problem(410, "an access request is now POST /v1/me/access-requests", reason_code="moved")


@router.post("/access-requests", status_code=201)
def request_access(node: NodeDep, me: MemberWrite) -> AccessResult:
    """Access and copy: make an access request (recorded in the audit log) and get its result at once.

    The result can be read again for a day at ``GET /v1/me/access-requests/{id}``, recording nothing.
    """
    req, data = node.rights.request_access(me.id)
    return AccessResult(request=_state(req), data=data)


@router.get("/access-requests/{request_id}")
def access_result(node: NodeDep, me: Member, request_id: RequestId) -> AccessResult:
    """The result of one of my completed access requests, read again (410 once it is a day old)."""
    try:
        req, data = node.rights.access_result(me.id, request_id)
    except LookupError as exc:
        raise Problem(404, f"you made no completed access request {request_id}") from exc
    return AccessResult(request=_state(req), data=data)


@router.post("/corrections")
def correct(node: NodeDep, me: MemberWrite, correction: Correction) -> RequestState:
    """Correct the member's own data (PIPL Art. 46)."""
    return _state(node.rights.correct(me.id, birth_date=correction.birth_date, phone=correction.phone))


class PortabilityCodeRequest(BaseModel):
    """The brand the member will send their data from (a node id of the alliance registry)."""

    sender: str = Field(alias="from", min_length=1, max_length=200)


class PortabilityCode(BaseModel):
    """A one-time code to give the sending brand, with the request it belongs to here."""

    code: str
    expires_in_minutes: int
    request: RequestState


class PortabilitySend(BaseModel):
    """The brand to send the member's data to, and the code it issued them."""

    to: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=40)


class PortabilityResult(BaseModel):
    """The request here, what the receiving brand kept, and why it left the rest."""

    request: RequestState
    kept: list[str]
    skipped: dict[str, str]


@router.post("/portability/codes", status_code=201)
def portability_code(node: NodeDep, me: MemberWrite, body: PortabilityCodeRequest) -> PortabilityCode:
    """Receive my data from another brand (PIPL Art. 45(3)): a one-time code to give that brand."""
    code, req = node.portability.expect(me.id, body.sender)
    return PortabilityCode(code=code, expires_in_minutes=int(CODE_TTL.total_seconds() // 60), request=_state(req))


@router.post("/portability")
def portability_send(node: NodeDep, me: MemberWrite, body: PortabilitySend) -> PortabilityResult:
    """Send my data to another brand of the alliance, with the code it gave me (verified there)."""
    req, answer = node.portability.send(me.id, body.to, body.code)
    return PortabilityResult(request=_state(req), kept=answer["kept"], skipped=answer["skipped"])


@router.post("/erasure")
def erase(node: NodeDep, me: MemberWrite) -> RequestState:
    """Erase the member: data and pseudonym key deleted; logs stay verifiable but unlinkable (Art. 47)."""
    return _state(node.rights.erase(me.id))


class PhoneNumber(BaseModel):
    """A phone number, in any usual form (stored as E.164; +86 assumed without a country code)."""

    phone: str = Field(min_length=1, max_length=40, examples=["138 0013 8000"])


class StoredPhone(BaseModel):
    """The number as this node stores it (sealed at rest; shared only under a cross-brand consent)."""

    phone: str | None


@router.get("/phone")
def my_phone(node: NodeDep, me: Member) -> StoredPhone:
    """The member's phone number on record, if any."""
    record = node.consent.store.member(me.id)
    return StoredPhone(phone=record.phone if record else None)


@router.put("/phone")
def set_phone(node: NodeDep, me: MemberWrite, body: PhoneNumber) -> StoredPhone:
    """Register or change the member's phone number: the identifier cross-brand models align on,
    and only for partners the member gave ``joint_modeling:<brand>`` consent."""
    return StoredPhone(phone=node.consent.set_phone(me.id, body.phone))


@router.delete("/phone", status_code=204)
def remove_phone(node: NodeDep, me: MemberWrite) -> None:
    """Remove the member's phone number: they are in no cross-brand run from the next one on."""
    node.consent.set_phone(me.id, None)


@router.get("/requests")
def my_requests(node: NodeDep, me: Member) -> list[RequestState]:
    """The member's rights requests with their state and deadline."""
    return [_state(r) for r in node.rights.requests(me.id)]
