"""The source side of an exchange: the member's request, the hold, and driving it to an end.

The source checks the quote, the member's ``points_exchange:<brand>`` consent, the feature switch
and the link; holds the points (a wallet entry and a ``held`` record in one transaction); then
does what :func:`node.exchange.protocol.pending_action` says the recorded state calls for: send
``credit``, or ``cancel`` once the outcome is unknown, through :class:`node.peers.outbound.Outbound`
(egress-checked, signed, audited), until the exchange is confirmed or refunded, or the peer cannot
be reached (then recovery carries on). Refusals before the hold change nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from compliance.pia import Feature, PiaRefused
from compliance.pia_service import PiaService
from compliance.read_once import read_once
from compliance.service import ConsentDenied, ConsentService
from ledger import note
from node.core import faults
from node.core.refusals import Refused
from node.exchange.exchange_log import ExchangeLog
from node.exchange.links import LinkStore
from node.exchange.protocol import Action, SourceEvent, SourceState, pending_action
from node.exchange.quotes import Quote, accept_quote, make_quote, sign_quote
from node.exchange.records import receipt_valid
from node.exchange.store import Outgoing, SourceSide
from node.peers.outbound import EgressRefused, Outbound, Response
from node.peers.registry import RegistryFile

log = logging.getLogger(__name__)

CREDIT_PATH = "/v1/peer/exchanges/credit"
CANCEL_PATH = "/v1/peer/exchanges/cancel"
#: What a credit request carries, field by field (the egress check needs every field declared).
CREDIT_FIELDS = {"quote": "loyalty.transactions", "quote_sig": "non_pi", "link_id": "identity.pseudonym"}
CANCEL_FIELDS = {"exchange_id": "non_pi"}
_SENDS = {Action.SEND_CREDIT: CREDIT_PATH, Action.SEND_CANCEL: CANCEL_PATH}


@dataclass
class ExchangeSource:
    """Exchanges leaving this node, from the member's request to their end."""

    node_id: str
    registry: RegistryFile
    signer: note.Signer
    consent: ConsentService
    pia: PiaService
    links: LinkStore
    outgoing: SourceSide
    outbound: Outbound
    exchange_log: ExchangeLog
    _busy: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def quote(self, member_ref: str, to: str, points: int, now: datetime | None = None) -> tuple[Quote, str]:
        """A signed quote for moving ``points`` of the member's points to brand ``to``."""
        self.consent.member_pseudonym(member_ref)  # unknown or erased members get their own errors
        quote = make_quote(points, self.registry.own(self.node_id), self.registry.brand(to), now or datetime.now(UTC))
        return quote, sign_quote(quote, self.signer)

    def quote_and_start(self, member_ref: str, to: str, points: int) -> Outgoing:
        """Quote and carry out at once: the member accepts the current rate."""
        with read_once():
            quote, signature = self.quote(member_ref, to, points)
            return self.start(member_ref, quote, signature)

    def start(self, member_ref: str, quote: Quote, signature: str, now: datetime | None = None) -> Outgoing:
        """Carry out a quote the member accepted: check, hold, ask the destination, confirm or refund.

        Refusals before the hold change nothing (:class:`Refused`). After the hold the exchange
        always ends confirmed or refunded, now or through recovery.
        """
        with read_once():  # one view of the member's record, consent and switches for the whole exchange
            now = now or datetime.now(UTC)
            me = self.registry.own(self.node_id)
            if quote.source != me.node_id:
                raise Refused("wrong_parties", "this quote was not issued by this node")
            dest = self.registry.brand(quote.destination)
            accept_quote(quote, signature, me, dest, now)
            member = self.consent.member_pseudonym(member_ref)
            try:
                self.consent.check(member_ref, "points_exchange", recipient=dest.node_id, accessor="exchange")
            except ConsentDenied as exc:
                raise Refused(exc.reason.value, f"no consent to exchange with {dest.node_id}") from exc
            try:
                self.pia.require(Feature.POINTS_EXCHANGE)
            except PiaRefused as exc:
                raise Refused("feature_off", str(exc)) from exc
            link_id = self.links.link_of(member, dest.node_id)
            if link_id is None:
                raise Refused("not_linked", f"link your {dest.name} account first")
            with self._claim(quote.quote_id) as mine:
                if not mine:
                    raise Refused("in_progress", "this quote is already being carried out")
                faults.point("source.before_hold")
                out = self.outgoing.hold(member, quote, signature, link_id, now.date())  # or insufficient_points
                faults.point("source.after_hold")
                return self._drive(out)

    def status(self, member_ref: str, exchange_id: str) -> Outgoing:
        """The member's exchange (``LookupError`` if it is not theirs)."""
        out = self.outgoing.get(exchange_id)
        if out.member != self.consent.member_pseudonym(member_ref):
            raise LookupError(f"no outgoing exchange {exchange_id}")
        return out

    def resume(self, out: Outgoing) -> Outgoing | None:
        """Drive an unfinished exchange on (recovery); None if another thread is driving it now."""
        with self._claim(out.exchange_id) as mine:
            return self._drive(out) if mine else None

    @contextmanager
    def _claim(self, exchange_id: str) -> Iterator[bool]:
        # one thread drives an exchange at a time: the request that started it, or recovery
        with self._lock:
            mine = exchange_id not in self._busy
            self._busy.add(exchange_id)
        try:
            yield mine
        finally:
            if mine:
                with self._lock:
                    self._busy.discard(exchange_id)

    def _drive(self, out: Outgoing) -> Outgoing:
        """Send what the state calls for until the exchange is final or the peer cannot be reached."""
        for _ in range(4):  # held -> (timeout) cancelling -> answer: at most three calls
            action = pending_action(out.state)
            if action not in _SENDS:
                break
            before = out.state
            event, receipt = self._call(out, _SENDS[action])
            step, out = self.outgoing.apply_and_get(out.exchange_id, event, receipt, out.member)
            faults.point("source.after_apply")
            if Action.APPEND_LOG in step.actions:
                self.exchange_log.record_outgoing(out)
            if event is SourceEvent.TIMED_OUT and before is SourceState.CANCELLING:
                break  # the peer is unreachable: recovery tries again later
        return out

    def _call(self, out: Outgoing, path: str) -> tuple[SourceEvent, str | None]:
        """Send a credit or cancel request; translate the answer into a protocol event."""
        if path == CREDIT_PATH:
            body: dict[str, Any] = {"quote": out.quote.to_json(), "quote_sig": out.quote_sig, "link_id": out.link_id}
            member_ref = self.links.member_ref(out.link_id)
            if member_ref is None:
                raise LookupError(f"link {out.link_id} has no member reference")
            fields, purpose, members = CREDIT_FIELDS, "points_exchange", [member_ref]
        else:
            body, fields, purpose, members = {"exchange_id": out.exchange_id}, CANCEL_FIELDS, None, []
        step = path.rsplit("/", 1)[1]
        faults.point(f"source.before_{step}_call")
        try:
            response = self.outbound.post(  # credit and cancel are idempotent on the exchange id
                out.destination, path, json=body, fields=fields, purpose=purpose, members=members, idempotent=True
            )
        except EgressRefused:
            # the member withdrew consent or the switch went off since the hold: never send, cancel
            return SourceEvent.TIMED_OUT, None
        except Exception as exc:  # unreachable, reset, timed out: the outcome is unknown
            log.info("exchange %s: %s to %s failed: %s", out.exchange_id, path, out.destination, exc)
            return SourceEvent.TIMED_OUT, None
        faults.point(f"source.after_{step}_call")
        return self._event(out, response)

    def _event(self, out: Outgoing, response: Response) -> tuple[SourceEvent, str | None]:
        if response.status_code != 200:
            log.warning("exchange %s: %s answered %s", out.exchange_id, out.destination, response.status_code)
            return SourceEvent.TIMED_OUT, None
        try:
            answer = response.json()
            outcome, receipt = answer["outcome"], answer.get("destination_sig")
        except (ValueError, KeyError, TypeError):
            return SourceEvent.TIMED_OUT, None
        if outcome == "credited":
            if receipt and receipt_valid(out.quote, receipt, self.registry.brand(out.destination).verifier):
                return SourceEvent.CREDITED, receipt
            log.warning("exchange %s: %s claims a credit without a valid receipt", out.exchange_id, out.destination)
            return SourceEvent.TIMED_OUT, None
        return _OUTCOMES.get(outcome, SourceEvent.TIMED_OUT), None


_OUTCOMES = {"refused": SourceEvent.REFUSED, "tombstoned": SourceEvent.TOMBSTONED}
