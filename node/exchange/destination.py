"""The destination side of an exchange: answering another node's signed credit and cancel calls.

The calling node is already authenticated (RFC 9421, registry keys) by the API. Calls come as
batches (:mod:`node.exchange.batches`); a single credit or cancel is a batch of one. For each credit
the destination checks the quote, the link and its own member's consent, then credits once per
exchange id (a new lot and a ``credited`` record) or refuses for good with a tombstone, and answers
with a receipt signed over the quote. A cancel finds a credit already made standing; otherwise it
leaves a tombstone, so a late credit can never land. A batch's writes are one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
from node.exchange.batches import CancelItem, CreditItem, incoming_many, settle_incoming
from node.exchange.exchange_log import ExchangeLog
from node.exchange.links import LinkStore
from node.exchange.protocol import Answer, SourceEvent
from node.exchange.quotes import Quote, QuoteError, accept_quote
from node.exchange.records import sign_receipt
from node.exchange.store import DestinationSide, Incoming
from node.peers.registry import RegistryFile
from node.wallet.tiers import add_months

#: Quote failures that show the request itself is not genuine: refused without recording anything.
NOT_GENUINE = {"bad_signature", "wrong_parties", "malformed_quote"}

log = logging.getLogger(__name__)
LOGGED_IDS = 16  # a batch's line names this many exchanges: enough to follow one, short enough to read


@dataclass(frozen=True)
class PeerAnswer:
    """The destination's answer to a credit or cancel request."""

    exchange_id: str
    outcome: str  # credited | refused | tombstoned | rejected (not genuine: nothing recorded)
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
        """Answer a signed credit request from node ``caller`` (a batch of one).

        A request that is not genuine (not the caller's quote, not signed by it, not for this
        node) is refused with :class:`Refused` and changes nothing. A genuine quote this node will
        not honour (expired, stale rates, unknown link, no consent, exchange switched off) is
        refused for good: a tombstone makes every later credit of it fail too.
        """
        item = {"kind": "credit", "quote": quote_json, "quote_sig": quote_sig, "link_id": link_id}
        return _alone(self.on_batch(caller, [item]))

    def on_cancel(self, caller: str, exchange_id: str) -> PeerAnswer:
        """Answer a signed cancel request: a credit already made stands, otherwise a tombstone."""
        return _alone(self.on_batch(caller, [{"kind": "cancel", "exchange_id": exchange_id}]))

    def on_batch(self, caller: str, items: Sequence[Mapping[str, Any]]) -> list[PeerAnswer]:
        """Answer a batch of credits and cancels from ``caller``: one answer per item, in order.

        Each item is decided alone, as :meth:`on_credit` and :meth:`on_cancel` describe, and an
        item that is not genuine is answered ``rejected`` without recording anything. The items
        accepted or refused for good are settled in one transaction and logged in one append.
        """
        with read_once():
            now = datetime.now(UTC)
            recorded = {r.exchange_id: r for r in incoming_many(self.incoming, [_claimed_id(i) for i in items])}
            decided: list[CreditItem | CancelItem | PeerAnswer] = []
            for item in items:
                try:
                    decided.append(self._decide(caller, item, recorded, now))
                except Refused as exc:
                    decided.append(PeerAnswer(_claimed_id(item), "rejected", exc.reason))
            settle = [d for d in decided if not isinstance(d, PeerAnswer)]
            kinds = sorted({"credit" if isinstance(d, CreditItem) else "cancel" for d in settle})
            for kind in kinds:
                faults.point(f"destination.before_{kind}")
            today = now.date()
            answers = iter(settle_incoming(self.incoming, settle, today, add_months(today, self.expiry_months)))
            for kind in kinds:
                faults.point(f"destination.after_{kind}")
            settled = [(d, None if isinstance(d, PeerAnswer) else next(answers)) for d in decided]
            credited = [_item_id(d) for d, a in settled if a is not None and a.answer is SourceEvent.CREDITED]
            found = {i.exchange_id: i for i in incoming_many(self.incoming, credited)}
            unlogged = [found[x] for x in dict.fromkeys(credited) if found[x].logged_index is None]
            self.exchange_log.record_incoming_many(unlogged)
            if credited:
                faults.point("destination.after_log")
            self._audit_refusals([d for d, a in settled if a is not None and a.answer is SourceEvent.REFUSED])
            answers_out = [self._answer(d, a, found) for d, a in settled]
            log.info(
                "exchange batch of %d from %s: %s",
                len(items),
                caller,
                ", ".join(f"{x.exchange_id} {x.outcome}" for x in answers_out[:LOGGED_IDS])
                + (f" and {len(answers_out) - LOGGED_IDS} more" if len(answers_out) > LOGGED_IDS else ""),
            )
            return answers_out

    def _decide(
        self, caller: str, item: Mapping[str, Any], recorded: Mapping[str, Incoming], now: datetime
    ) -> CreditItem | CancelItem:
        if item.get("kind") == "cancel":
            exchange_id = str(item.get("exchange_id") or "")
            existing = recorded.get(exchange_id)
            if existing is not None and existing.source != caller:
                raise Refused("not_your_exchange", f"exchange {exchange_id} is not from {caller}")
            return CancelItem(exchange_id, caller)
        quote_json, quote_sig, link_id = item.get("quote"), str(item.get("quote_sig")), str(item.get("link_id"))
        quote = Quote.from_json(quote_json if isinstance(quote_json, dict) else {})
        if quote.source != caller:
            raise Refused("not_your_quote", f"{caller} cannot present a quote of {quote.source}")
        source = self.registry.brand(quote.source)
        reason: str | None = None
        try:
            accept_quote(quote, quote_sig, source, self.registry.own(self.node_id), now)
        except QuoteError as exc:
            if exc.reason in NOT_GENUINE:
                raise
            reason = exc.reason
        member = self.links.member_of(source.node_id, link_id)
        if quote.quote_id not in recorded and reason is None:
            reason = self._refusal(member, link_id, source.node_id)
        return CreditItem(quote, member, quote_sig, link_id, reason)

    def _answer(
        self, decided: CreditItem | CancelItem | PeerAnswer, answer: Answer | None, found: Mapping[str, Incoming]
    ) -> PeerAnswer:
        # a recorded answer stands whatever changed since (a retry of a credit hears "credited")
        if isinstance(decided, PeerAnswer):
            return decided
        assert answer is not None
        exchange_id = _item_id(decided)
        if answer.answer is SourceEvent.CREDITED:
            quote = found[exchange_id].quote
            assert quote is not None
            return PeerAnswer(exchange_id, "credited", None, sign_receipt(quote, self.signer))
        if answer.answer is SourceEvent.REFUSED:
            assert isinstance(decided, CreditItem)
            return PeerAnswer(exchange_id, "refused", decided.reason or "refused")
        return PeerAnswer(exchange_id, "tombstoned")

    def _audit_refusals(self, refused: list[CreditItem | CancelItem]) -> None:
        events = []
        for item in refused:
            assert isinstance(item, CreditItem)
            q = item.quote
            event = {
                "subject_pseudo_ids": [item.member] if item.member else [],
                "purpose_code": f"points_exchange:{q.source}",
                "outcome": "denied",
                "reason_code": item.reason or "refused",
                "details": {"exchange_id": q.quote_id, "source": q.source},
            }
            events.append(("exchange.refused", event))
        if events:
            self.audit.many(events)

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


def _alone(answers: list[PeerAnswer]) -> PeerAnswer:
    # a single call keeps its contract: a request that is not genuine is refused outright
    (answer,) = answers
    if answer.outcome == "rejected":
        raise Refused(answer.reason or "rejected", f"exchange {answer.exchange_id} was not accepted")
    return answer


def _claimed_id(item: Mapping[str, Any]) -> str:
    """The exchange id an item names (unchecked: for lookups and for answering a rejected item)."""
    quote = item.get("quote")
    claimed = item.get("exchange_id") or (quote.get("quote_id") if isinstance(quote, dict) else None)
    return str(claimed or "")[:64]


def _item_id(item: CreditItem | CancelItem) -> str:
    return item.quote.quote_id if isinstance(item, CreditItem) else item.exchange_id
