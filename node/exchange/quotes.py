"""Value-conserving exchange quotes: how many destination points a member gets, signed by the source.

Pure arithmetic in ``Decimal`` fen, exact (no binary floats, no rounding but the one below):

    value  = points_given × value_source                 (fen)
    fee    = value × fee_source
    net    = value − fee
    points_received = floor(net / value_destination)
    credited  = points_received × value_destination     (what the destination must honour)
    remainder = net − credited                           (0 ≤ remainder < value_destination)

so ``value == fee + credited + remainder`` exactly, and nothing is lost: the remainder is recorded
with the quote and settles with the fee. A quote is signed by the source node (Ed25519 over its
canonical JSON, domain-separated) and expires; the destination checks both before crediting.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, localcontext
from functools import cached_property

from ledger import note
from ledger.canonical import canonical_json
from node.core.refusals import Refused
from node.peers.registry import Brand

QUOTE_DOMAIN = b"alliance-quote/1\n"
DEFAULT_TTL = timedelta(seconds=60)
MAX_POINTS = 10**12  # more than any wallet holds; beyond this a request is absurd, not big
PRECISION = 60  # digits: exact for every product and quotient the limits above allow


class QuoteError(Refused):
    """A quote that cannot be made or accepted (``expired``, ``stale_rates``, ``bad_signature``…)."""


@dataclass(frozen=True)
class Quote:
    """One signed offer: ``points_given`` at the source for ``points_received`` at the destination."""

    quote_id: str
    source: str
    destination: str
    points_given: int
    points_received: int
    source_point_value_fen: Decimal
    destination_point_value_fen: Decimal
    fee_rate: Decimal
    value_fen: Decimal
    fee_fen: Decimal
    credited_fen: Decimal
    remainder_fen: Decimal
    issued_at: datetime
    expires_at: datetime

    def canonical(self) -> bytes:
        """The bytes the signature covers: canonical JSON, decimals and times as strings."""
        return self._canonical

    @cached_property
    def _canonical(self) -> bytes:
        # computed once: a quote is signed, checked, logged and sent several times per exchange
        data = {f.name: _text(getattr(self, f.name)) for f in fields(self)}
        return canonical_json(data)

    def to_json(self) -> dict[str, object]:
        """The quote as JSON-ready values (what goes on the wire)."""
        return json.loads(self.canonical())

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Quote:
        """Rebuild a quote from :meth:`to_json` output (strict: every field, right types)."""
        try:
            q = cls(
                quote_id=str(data["quote_id"]),
                source=str(data["source"]),
                destination=str(data["destination"]),
                points_given=int(data["points_given"]),  # type: ignore[call-overload]
                points_received=int(data["points_received"]),  # type: ignore[call-overload]
                source_point_value_fen=Decimal(str(data["source_point_value_fen"])),
                destination_point_value_fen=Decimal(str(data["destination_point_value_fen"])),
                fee_rate=Decimal(str(data["fee_rate"])),
                value_fen=Decimal(str(data["value_fen"])),
                fee_fen=Decimal(str(data["fee_fen"])),
                credited_fen=Decimal(str(data["credited_fen"])),
                remainder_fen=Decimal(str(data["remainder_fen"])),
                issued_at=datetime.fromisoformat(str(data["issued_at"])),
                expires_at=datetime.fromisoformat(str(data["expires_at"])),
            )
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise QuoteError("malformed_quote", f"not a quote: {exc}") from exc
        if data.keys() != _QUOTE_FIELDS:
            raise QuoteError("malformed_quote", "a quote has exactly the quote fields")
        return q


_QUOTE_FIELDS = frozenset(f.name for f in fields(Quote))  # not asdict per parse: its deep copies cost 0.1 ms


def _text(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def make_quote(
    points_given: int, source: Brand, destination: Brand, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> Quote:
    """Quote ``points_given`` source points in destination points (see the module for the formula)."""
    if isinstance(points_given, bool) or not isinstance(points_given, int) or not 0 < points_given <= MAX_POINTS:
        raise QuoteError("bad_amount", f"points must be a whole number from 1 to {MAX_POINTS:,}")
    if source.node_id == destination.node_id:
        raise QuoteError("same_brand", "an exchange goes to another brand")
    with localcontext() as ctx:
        ctx.prec = PRECISION
        value = points_given * source.point_value_fen
        fee = value * source.exchange_fee
        net = value - fee
        received = int((net / destination.point_value_fen).to_integral_value(rounding=ROUND_FLOOR))
        credited = received * destination.point_value_fen
        remainder = net - credited
    if received < 1:
        raise QuoteError("too_small", f"{points_given} points are worth less than one {destination.node_id} point")
    return Quote(
        quote_id=uuid.uuid4().hex,
        source=source.node_id,
        destination=destination.node_id,
        points_given=points_given,
        points_received=received,
        source_point_value_fen=source.point_value_fen,
        destination_point_value_fen=destination.point_value_fen,
        fee_rate=source.exchange_fee,
        value_fen=value,
        fee_fen=fee,
        credited_fen=credited,
        remainder_fen=remainder,
        issued_at=now,
        expires_at=now + ttl,
    )


def sign_quote(quote: Quote, signer: note.Signer) -> str:
    """The source's signature over the quote, base64."""
    if signer.name != quote.source:
        raise QuoteError("wrong_signer", f"{signer.name} cannot sign a quote of {quote.source}")
    return note.b64encode(signer.sign_raw(QUOTE_DOMAIN + quote.canonical()))


def accept_quote(quote: Quote, signature: str, source: Brand, destination: Brand, now: datetime) -> None:
    """Check a quote before acting on it, or raise :class:`QuoteError` saying why.

    The signature must be the source's registry key; the quote unexpired; its values the
    registry's; its arithmetic the formula's, to the last digit.
    """
    if (quote.source, quote.destination) != (source.node_id, destination.node_id):
        raise QuoteError("wrong_parties", "the quote names other brands")
    try:
        sig = note.b64decode(signature, "quote signature")
    except Exception as exc:
        raise QuoteError("bad_signature", "the quote signature is not base64") from exc
    if not source.verifier.verify(QUOTE_DOMAIN + quote.canonical(), sig):
        raise QuoteError("bad_signature", f"the quote is not signed by {source.node_id}'s registry key")
    if now >= quote.expires_at:
        raise QuoteError("expired", f"the quote expired at {quote.expires_at.isoformat()}")
    if (quote.source_point_value_fen, quote.destination_point_value_fen, quote.fee_rate) != (
        source.point_value_fen,
        destination.point_value_fen,
        source.exchange_fee,
    ):
        raise QuoteError("stale_rates", "the quote uses values that are not the registry's")
    expected = make_quote(quote.points_given, source, destination, quote.issued_at, quote.expires_at - quote.issued_at)
    fields = ("points_received", "value_fen", "fee_fen", "credited_fen", "remainder_fen")
    if any(getattr(expected, f) != getattr(quote, f) for f in fields):
        raise QuoteError("bad_arithmetic", "the quote's amounts do not follow from its values")
