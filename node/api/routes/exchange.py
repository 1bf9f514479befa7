"""Members' wallets, links with partner brands and exchanges; operators' purchase earnings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, model_validator

from compliance.pseudonyms import MemberErasedError
from compliance.service import UnknownMemberError
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import Member, MemberWrite, NodeDep, Operator
from node.api.problems import Problem
from node.api.routes.members import MemberRef
from node.exchange.quotes import MAX_POINTS, Quote
from node.exchange.store import Outgoing
from node.wallet.journal import Entry

router = APIRouter(tags=["exchange"], route_class=OffLoopJsonRoute)
BrandId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]
ExchangeId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]


class Wallet(BaseModel):
    """The wallet: balance derived from the journal, tier, lots with their expiry."""

    balance: int
    tier: str
    lots: list[dict[str, Any]]
    entries: int


class QuoteRequest(BaseModel):
    """How many of my points to move, and to which brand."""

    to: BrandId
    points: int = Field(gt=0, le=MAX_POINTS, strict=True)  # a JSON number: "10" is refused, not read as 10


class SignedQuote(BaseModel):
    """A quote signed by this node; hand it back to ``POST /v1/me/exchanges`` before it expires."""

    quote: dict[str, Any]
    signature: str


class ExchangeRequest(BaseModel):
    """Either a signed quote the member accepted, or ``to`` and ``points`` to quote and go at once."""

    quote: dict[str, Any] | None = None
    signature: str | None = Field(default=None, max_length=200)
    to: BrandId | None = None
    points: int | None = Field(default=None, gt=0, le=MAX_POINTS, strict=True)

    @model_validator(mode="after")
    def _one_form(self) -> ExchangeRequest:
        quoted = self.quote is not None and self.signature is not None
        direct = self.to is not None and self.points is not None
        if quoted == direct:
            raise ValueError("give either quote and signature, or to and points")
        return self


class ExchangeState(BaseModel):
    """An exchange and where it stands: confirmed, cancelled (refunded), or held/cancelling (pending)."""

    exchange_id: str
    state: str
    destination: str
    points_given: int
    points_received: int
    expires_at: datetime


class LinkCodeRequest(BaseModel):
    """The partner brand the member wants to link with."""

    brand: BrandId


class LinkCode(BaseModel):
    """Type this code into the partner brand's app within ten minutes."""

    code: str
    brand: str


class LinkRequest(BaseModel):
    """A link code the partner brand issued to the member."""

    brand: BrandId
    code: str = Field(min_length=4, max_length=40)


class Link(BaseModel):
    """The member's accounts at two brands are linked (peers know only this link id)."""

    brand: str
    link_id: str


class Purchase(BaseModel):
    """A purchase that earns points, once per ``purchase_id`` at this brand (unique across its tills)."""

    purchase_id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$")
    amount_fen: int = Field(gt=0, le=10**11, strict=True)  # money is a JSON integer: "100" is refused
    day: date | None = None


class Earned(BaseModel):
    """Points credited for a purchase."""

    entry_id: str
    points: int
    expires_on: date | None


MAX_BATCH = 1000


class TillPurchase(Purchase):
    """One purchase of a till's batch, with the member it earns for."""

    member_ref: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")


class PurchaseBatch(BaseModel):
    """Up to 1,000 purchases, each credited once per ``purchase_id`` (a retry gets its first answer)."""

    purchases: list[TillPurchase] = Field(min_length=1, max_length=MAX_BATCH)


class PurchaseResult(BaseModel):
    """What became of one purchase of a batch: its points, or why it earned none."""

    purchase_id: str
    status: Literal["earned", "refused"]
    entry_id: str | None = None
    points: int | None = None
    expires_on: date | None = None
    reason_code: str | None = None
    detail: str | None = None


class BatchResults(BaseModel):
    """One result per purchase, in the batch's order."""

    earned: int
    refused: int
    results: list[PurchaseResult]


def _result(purchase_id: str, outcome: Entry | Exception) -> PurchaseResult:
    if isinstance(outcome, Entry):
        expires = outcome.lot.expires_on if outcome.lot else None
        return PurchaseResult(
            purchase_id=purchase_id,
            status="earned",
            entry_id=outcome.entry_id,
            points=outcome.points,
            expires_on=expires,
        )
    reason = getattr(outcome, "reason", None)
    code = (
        str(reason)
        if isinstance(reason, str)
        else {UnknownMemberError: "unknown_member"}.get(
            type(outcome), "member_erased" if isinstance(outcome, MemberErasedError) else "refused"
        )
    )
    return PurchaseResult(purchase_id=purchase_id, status="refused", reason_code=code, detail=str(outcome)[:300])


@router.post("/v1/purchases:batch")
def purchase_batch(node: NodeDep, _: Operator, body: PurchaseBatch) -> BatchResults:
    """Credit a till's batch of purchases in one transaction, with a result per purchase (a refused
    one, for an unknown member or a reused id, never refuses the others)."""
    items = [(p.member_ref, p.purchase_id, p.amount_fen, p.day) for p in body.purchases]
    results = [
        _result(p.purchase_id, r) for p, r in zip(body.purchases, node.loyalty.earn_purchases(items), strict=True)
    ]
    earned = sum(r.status == "earned" for r in results)
    return BatchResults(earned=earned, refused=len(results) - earned, results=results)


def _state(out: Outgoing) -> ExchangeState:
    return ExchangeState(
        exchange_id=out.exchange_id,
        state=out.state.value,
        destination=out.destination,
        points_given=out.quote.points_given,
        points_received=out.quote.points_received,
        expires_at=out.quote.expires_at,
    )


@router.get("/v1/me/wallet")
def my_wallet(node: NodeDep, me: Member) -> Wallet:
    """My balance, tier and lots."""
    view = node.loyalty.view(me.id, datetime.now(UTC).date())
    return Wallet(balance=view.balance, tier=view.tier, lots=view.lots, entries=view.entries)


@router.post("/v1/me/exchange-quotes", status_code=201)
def quote(node: NodeDep, me: Member, body: QuoteRequest) -> SignedQuote:
    """Quote moving my points to another brand (valid 60 seconds)."""
    q, sig = node.exchange_source.quote(me.id, body.to, body.points)
    return SignedQuote(quote=q.to_json(), signature=sig)


@router.post("/v1/me/exchanges", status_code=201)
def exchange(node: NodeDep, me: MemberWrite, body: ExchangeRequest) -> ExchangeState:
    """Move my points: confirmed when the partner credited them, cancelled (refunded) when it refused.

    ``held`` or ``cancelling`` means the partner could not be reached yet: the node keeps trying
    and the exchange ends confirmed or refunded; ``GET /v1/me/exchanges/{id}`` tells which.
    """
    if body.quote is not None and body.signature is not None:
        return _state(node.exchange_source.start(me.id, Quote.from_json(body.quote), body.signature))
    assert body.to is not None
    assert body.points is not None
    return _state(node.exchange_source.quote_and_start(me.id, body.to, body.points))


@router.get("/v1/me/exchanges/{exchange_id}")
def my_exchange(node: NodeDep, me: Member, exchange_id: ExchangeId) -> ExchangeState:
    """One of my exchanges."""
    try:
        return _state(node.exchange_source.status(me.id, exchange_id))
    except LookupError as exc:
        raise Problem(404, f"you have no exchange {exchange_id}") from exc


@router.post("/v1/me/link-codes", status_code=201)
def link_code(node: NodeDep, me: MemberWrite, body: LinkCodeRequest) -> LinkCode:
    """A one-time code to type into ``brand``'s app (needs my consent to exchange with it)."""
    return LinkCode(code=node.linking.link_code(me.id, body.brand), brand=body.brand)


@router.post("/v1/me/links", status_code=201)
def link(node: NodeDep, me: MemberWrite, body: LinkRequest) -> Link:
    """Link my account here with mine at ``brand``, using the code ``brand`` gave me."""
    return Link(brand=body.brand, link_id=node.linking.link_with(me.id, body.brand, body.code))


@router.post("/v1/members/{member_ref}/purchases", status_code=201)
def purchase(node: NodeDep, _: Operator, member_ref: MemberRef, body: Purchase) -> Earned:
    """Credit the points a purchase earns."""
    entry = node.loyalty.earn_purchase(member_ref, body.purchase_id, body.amount_fen, body.day)
    return Earned(entry_id=entry.entry_id, points=entry.points, expires_on=entry.lot.expires_on if entry.lot else None)


@router.get("/v1/members/{member_ref}/wallet")
def member_wallet(node: NodeDep, _: Operator, member_ref: MemberRef) -> Wallet:
    """A member's balance, tier and lots, for the brand's support staff."""
    view = node.loyalty.view(member_ref, datetime.now(UTC).date())
    return Wallet(balance=view.balance, tier=view.tier, lots=view.lots, entries=view.entries)
