"""Calls from other brands' nodes: exchange credit and cancel, link-code claims, joint handlers' notices.

Every request must carry an HTTP message signature (RFC 9421) by a brand in the alliance
registry; ``node.api.bodies`` checks it (digest, freshness, nonce) over the raw body before anything
parses it, and ``PeerCaller`` hands the handlers the node id it verified.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from compliance.joint import NoticeKind
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import NodeDep, PeerCaller
from node.api.problems import Problem
from node.exchange.batches import MAX_BATCH
from node.exchange.destination import PeerAnswer
from node.settlement.statements import Window, statement_to_json

router = APIRouter(prefix="/v1/peer", tags=["peer"], route_class=OffLoopJsonRoute)


class CreditRequest(BaseModel):
    """Credit the member behind ``link_id`` as the source's signed quote says."""

    quote: dict[str, Any]
    quote_sig: str = Field(max_length=200)
    link_id: str = Field(min_length=1, max_length=64)


class CancelRequest(BaseModel):
    """Cancel an exchange unless it was already credited."""

    exchange_id: str = Field(min_length=1, max_length=32)


class Answer(BaseModel):
    """The protocol's answer; a ``credited`` one carries the destination's signed receipt."""

    exchange_id: str
    outcome: str
    reason: str | None = None
    destination_sig: str | None = None


def _answer(a: PeerAnswer) -> Answer:
    return Answer(**a.to_json())


class BatchItem(BaseModel):
    """One exchange in a batch: a credit (quote, signature, link) or a cancel (exchange id)."""

    kind: Literal["credit", "cancel"]
    quote: dict[str, Any] | None = None
    quote_sig: str | None = Field(default=None, max_length=200)
    link_id: str | None = Field(default=None, min_length=1, max_length=64)
    exchange_id: str | None = Field(default=None, min_length=1, max_length=32)


class BatchRequest(BaseModel):
    """Credits and cancels from the calling node, each decided on its own."""

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class BatchAnswer(BaseModel):
    """One answer per item, in the items' order (``rejected``: not genuine, nothing recorded)."""

    results: list[Answer]


@router.post("/exchanges/credit")
def credit(node: NodeDep, caller: PeerCaller, body: CreditRequest) -> Answer:
    """Credit once per exchange id, or refuse for good (a tombstone)."""
    return _answer(node.exchange_destination.on_credit(caller, body.quote, body.quote_sig, body.link_id))


@router.post("/exchanges/batch")
def batch(node: NodeDep, caller: PeerCaller, body: BatchRequest) -> BatchAnswer:
    """Settle many exchanges in one transaction and one log append; one bad item never refuses the others."""
    items = [i.model_dump(exclude_none=True) for i in body.items]
    return BatchAnswer(results=[_answer(a) for a in node.exchange_destination.on_batch(caller, items)])


@router.post("/exchanges/cancel")
def cancel(node: NodeDep, caller: PeerCaller, body: CancelRequest) -> Answer:
    """A credit already made stands; otherwise leave a tombstone."""
    return _answer(node.exchange_destination.on_cancel(caller, body.exchange_id))


class ClaimRequest(BaseModel):
    """A link code the member typed at the calling brand, and the link id that brand proposes."""

    code: str = Field(min_length=4, max_length=40)
    link_id: str = Field(min_length=16, max_length=64, pattern=r"^[0-9a-f]+$")


class ClaimAnswer(BaseModel):
    """The link id both nodes now hold (an existing link's id if the member was linked already)."""

    link_id: str


@router.post("/links/claim")
def claim(node: NodeDep, caller: PeerCaller, body: ClaimRequest) -> ClaimAnswer:
    """Use a link code issued here for the calling brand and record the pairwise link."""
    return ClaimAnswer(link_id=node.linking.on_claim(caller, body.code, body.link_id))


class StatementRequest(BaseModel):
    """The caller's signed settlement statement for a window."""

    window_start: AwareDatetime  # with its zone: a naive time cannot be compared with an aware one
    window_end: AwareDatetime
    statement: dict[str, Any]
    signature: str = Field(max_length=200)


class StatementAnswer(BaseModel):
    """This node's signed statement for the same pair and window, and how the two compare."""

    statement: dict[str, Any]
    signature: str
    agreed: bool
    only_yours: list[str]
    only_mine: list[str]
    amount_differs: list[str]


@router.post("/settlement/statement")
def settlement_statement(node: NodeDep, caller: PeerCaller, body: StatementRequest) -> StatementAnswer:
    """Swap settlement statements: answer the caller's with ours for the same window."""
    if body.window_end <= body.window_start:
        raise Problem(422, "a settlement window ends after it starts")
    pair = node.settlement.on_statement(
        caller, Window(body.window_start, body.window_end), body.statement, body.signature
    )
    r = pair.reconciliation
    return StatementAnswer(
        statement=statement_to_json(pair.mine),
        signature=pair.my_sig,
        agreed=r.agreed,
        only_yours=list(r.only_theirs),
        only_mine=list(r.only_mine),
        amount_differs=list(r.amount_differs),
    )


class RecordsRequest(BaseModel):
    """What a records call asks for: every record with its proof, or only the pair's signed digest."""

    digest: bool = False


@router.post("/exchanges/records")
def exchange_records(node: NodeDep, caller: PeerCaller, body: RecordsRequest | None = None) -> dict[str, Any]:
    """The caller's exchanges on this node's exchange log: with ``digest``, one signed Merkle root of them;
    otherwise each entry with its inclusion proof. Both come with the signed checkpoint."""
    if body is not None and body.digest:
        return node.settlement.digest_for(caller)
    return node.settlement.records_for(caller)


# --- private set intersection for cross-brand runs (node.learning.alignment) ---------------------

Points = Field(max_length=6_000_000)  # a chunk of 32,768 points in base64, with room


class OpenAlignment(BaseModel):
    """A label holder opens a PSI run: its name and a commitment to the starter's half of the salt."""

    run: str = Field(min_length=3, max_length=200)
    commit: str = Field(min_length=64, max_length=64)
    minimum: int = Field(ge=1, le=10_000_000)


class AlignmentPoints(BaseModel):
    """A chunk of the starter's blinded points (the first also reveals its half of the salt)."""

    run: str = Field(min_length=3, max_length=200)
    chunk: int = Field(ge=0, le=10_000)
    chunks: int = Field(ge=1, le=10_000)
    points: str = Points
    salt: str | None = Field(default=None, max_length=64)


class AlignmentTheirs(BaseModel):
    """Ask for a chunk of this side's blinded points."""

    run: str = Field(min_length=3, max_length=200)
    chunk: int = Field(ge=0, le=10_000)


class AlignmentClose(BaseModel):
    """A chunk of this side's points as the starter blinded them again."""

    run: str = Field(min_length=3, max_length=200)
    chunk: int = Field(ge=0, le=10_000)
    chunks: int = Field(ge=1, le=10_000)
    reblinded: str = Points


@router.post("/alignment/open")
def alignment_open(node: NodeDep, caller: PeerCaller, body: OpenAlignment) -> dict[str, Any]:
    """Take part in the caller's PSI run: this side's half of the salt."""
    return node.alignment.on_open(caller, body.run, body.commit, body.minimum)


@router.post("/alignment/points")
def alignment_points(node: NodeDep, caller: PeerCaller, body: AlignmentPoints) -> dict[str, Any]:
    """The starter's points, blinded again here in the order received."""
    return node.alignment.on_points(caller, body.run, body.chunk, body.chunks, body.points, body.salt)


@router.post("/alignment/theirs")
def alignment_theirs(node: NodeDep, caller: PeerCaller, body: AlignmentTheirs) -> dict[str, Any]:
    """A chunk of this side's blinded points (through this node's egress check)."""
    return node.alignment.on_theirs(caller, body.run, body.chunk)


@router.post("/alignment/close")
def alignment_close(node: NodeDep, caller: PeerCaller, body: AlignmentClose) -> dict[str, Any]:
    """This side's points blinded again by the starter; the common count after the last chunk."""
    return node.alignment.on_close(caller, body.run, body.chunk, body.chunks, body.reblinded)


class JointNotice(BaseModel):
    """A member's withdrawal, correction or erasure at the calling brand, for a purpose both run jointly."""

    notice_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    kind: NoticeKind
    purpose: str = Field(pattern=r"^[a-z_.]{1,64}(:[A-Za-z0-9._:-]{1,200})?$")
    link_id: str = Field(min_length=1, max_length=64)
    fields: list[str] = Field(default_factory=list, max_length=10)
    due: date


class JointAnswer(BaseModel):
    """What this node recorded: ``completed``, ``open`` (a person finishes it) or ``not_linked``."""

    notice_id: str
    state: str
    due: date


@router.post("/joint/notices")
def joint_notice(node: NodeDep, caller: PeerCaller, body: JointNotice) -> JointAnswer:
    """Record and apply another joint handler's notice, once (a repeat gets the first answer)."""
    r = node.joint.on_notice(caller, body.model_dump(mode="json"))
    return JointAnswer(notice_id=r.notice_id, state=r.state.value, due=r.due)


class PortableData(BaseModel):
    """A member's portable data (``alliance-member-data/1``), sent at their request with the code this node
    issued them: one field per PI category, each optional."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40)
    format: Literal["alliance-member-data/1"]
    generated_at: str | None = Field(default=None, max_length=40)
    phone: str | None = Field(default=None, max_length=40)
    balance: int | None = None
    journal: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    purchases: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)


class PortabilityAnswer(BaseModel):
    """What this node kept of the data, and why it left the rest."""

    kept: list[str]
    skipped: dict[str, str]


@router.post("/portability")
def portability(node: NodeDep, caller: PeerCaller, body: PortableData) -> PortabilityAnswer:
    """Keep what this node's notice covers of a member's data, sent with a code it issued for the caller."""
    return PortabilityAnswer(**node.portability.on_receive(caller, body.model_dump(mode="json", exclude_unset=True)))
