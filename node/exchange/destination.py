"""The destination side of an exchange: answering another node's signed credit and cancel calls.

The calling node is already authenticated (RFC 9421, registry keys) by the API. Here the
destination checks the quote, the link and its own member's consent, then credits once per
exchange id (a new lot and a ``credited`` record in one transaction) or refuses for good with a
tombstone, and answers with a receipt signed over the quote. A cancel finds a credit already made
standing; otherwise it leaves a tombstone, so a late credit can never land.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from compliance.pia import Feature, PiaRefused
from compliance.pia_service import PiaService
from compliance.read_once import read_once
from compliance.service import ConsentDenied, ConsentService
from ledger import note
from node.core import faults
from node.core.audit import NodeAudit
from node.core.refusals import Refused
from node.exchange.exchange_log import ExchangeLog
from node.exchange.links import LinkStore
from node.exchange.protocol import DestinationState, SourceEvent
from node.exchange.quotes import Quote, QuoteError, accept_quote
from node.exchange.records import sign_receipt
from node.exchange.store import DestinationSide, Incoming
from node.peers.registry import RegistryFile
from node.wallet.tiers import add_months

#: Quote failures that show the request itself is not genuine: refused without recording anything.
NOT_GENUINE = {"bad_signature", "wrong_parties", "malformed_quote"}


@dataclass(frozen=True)
class PeerAnswer:
    """The destination's answer to a credit or cancel request."""

    exchange_id: str
    outcome: str  # credited | refused | tombstoned
    reason: str | None = None
    destination_sig: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """The answer as it goes on the wire."""
        return {
            "exchange_id": self.exchange_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "destination_sig": self.destination_sig,
        }


@dataclass
class ExchangeDestination:
    """Exchanges arriving at this node from other brands."""

    node_id: str
    registry: RegistryFile
    signer: note.Signer
    consent: ConsentService
    pia: PiaService
    links: LinkStore
    incoming: DestinationSide
    exchange_log: ExchangeLog
    audit: NodeAudit
    expiry_months: int

    def on_credit(self, caller: str, quote_json: Any, quote_sig: str, link_id: str) -> PeerAnswer:
        """Answer a signed credit request from node ``caller``.

        A request that is not genuine (not the caller's quote, not signed by it, not for this
        node) is refused with :class:`Refused` and changes nothing. A genuine quote this node will
        not honour (expired, stale rates, unknown link, no consent, exchange switched off) is
        refused for good: a tombstone makes every later credit of it fail too.
        """
        with read_once():
            quote = Quote.from_json(quote_json if isinstance(quote_json, dict) else {})
            if quote.source != caller:
                raise Refused("not_your_quote", f"{caller} cannot present a quote of {quote.source}")
            source = self.registry.brand(quote.source)
            reason: str | None = None
            try:
                accept_quote(quote, quote_sig, source, self.registry.own(self.node_id), datetime.now(UTC))
            except QuoteError as exc:
                if exc.reason in NOT_GENUINE:
                    raise
                reason = exc.reason
            faults.point("destination.before_credit")
            member = self.links.member_of(source.node_id, link_id)
            existing = self.incoming.get(quote.quote_id)
            if existing is None and reason is None:
                reason = self._refusal(member, link_id, source.node_id)
            return self._answer(quote, quote_sig, link_id, member, existing, reason)

    def _answer(
        self,
        quote: Quote,
        quote_sig: str,
        link_id: str,
        member: str | None,
        existing: Incoming | None,
        reason: str | None,
    ) -> PeerAnswer:
        # a recorded answer stands whatever changed since (a retry of a credit hears "credited")
        acceptable = existing is None and reason is None
        now = datetime.now(UTC)
        today = now.date()
        expires_on = add_months(today, self.expiry_months)
        answer = self.incoming.credit(
            quote, member if acceptable else None, acceptable, today, expires_on, quote_sig=quote_sig, link_id=link_id
        )
        faults.point("destination.after_credit")
        if answer.answer is SourceEvent.CREDITED:
            incoming = existing or Incoming(
                quote.quote_id, quote.source, member, DestinationState.CREDITED, quote, quote_sig, link_id, None, now
            )
            if incoming.logged_index is None:
                self.exchange_log.record_incoming(incoming)
            faults.point("destination.after_log")
            return PeerAnswer(quote.quote_id, "credited", None, sign_receipt(quote, self.signer))
        if answer.answer is SourceEvent.REFUSED:
            self.audit(
                "exchange.refused",
                subject_pseudo_ids=[member] if member else [],
                purpose_code=f"points_exchange:{quote.source}",
                outcome="denied",
                reason_code=reason or "refused",
                details={"exchange_id": quote.quote_id, "source": quote.source},
            )
            return PeerAnswer(quote.quote_id, "refused", reason)
        return PeerAnswer(quote.quote_id, "tombstoned")

    def _refusal(self, member: str | None, link_id: str, source: str) -> str | None:
        """Why this node will not credit the member the link names, or None if it will."""
        member_ref = self.links.member_ref(link_id) if member is not None else None
        if member_ref is None:  # no such link, or the member was erased since linking
            return "not_linked"
        try:
            self.consent.check(member_ref, "points_exchange", recipient=source, accessor="exchange")
        except ConsentDenied as exc:
            return exc.reason.value
        except LookupError:  # erased since linking
            return "not_linked"
        try:
            self.pia.require(Feature.POINTS_EXCHANGE)
        except PiaRefused:
            return "feature_off"
        return None

    def on_cancel(self, caller: str, exchange_id: str) -> PeerAnswer:
        """Answer a signed cancel request: a credit already made stands, otherwise a tombstone."""
        existing = self.incoming.get(exchange_id)
        if existing is not None and existing.source != caller:
            raise Refused("not_your_exchange", f"exchange {exchange_id} is not from {caller}")
        faults.point("destination.before_cancel")
        answer = self.incoming.cancel(exchange_id, caller)
        faults.point("destination.after_cancel")
        if answer.answer is SourceEvent.CREDITED:
            incoming = self.incoming.get(exchange_id)
            assert incoming is not None
            assert incoming.quote is not None
            if incoming.logged_index is None:
                self.exchange_log.record_incoming(incoming)
            return PeerAnswer(exchange_id, "credited", None, sign_receipt(incoming.quote, self.signer))
        return PeerAnswer(exchange_id, "tombstoned")
