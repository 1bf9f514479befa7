"""Points exchange between two brands' nodes: the source's member-facing steps, the destination's
answers to signed peer calls, the exchange log on both sides, and recovery after a crash.

The protocol's states and transitions are :mod:`node.exchange_protocol`; their database effects
are :mod:`node.exchange_store`. This module adds what crosses the network and the log:

* the source checks the quote, the member's consent and link, holds the points, then sends a
  signed ``credit`` through :class:`node.outbound.Outbound` (egress-checked and audited);
* the destination authenticates the call (RFC 9421, registry keys), checks the quote, the link
  and its own member's consent, credits or refuses for good, and answers with a signed receipt;
* both append the same entry, carrying both signatures, to their ``exchange`` log, recording the
  log position in the same commit as the append, so no entry is lost or written twice;
* :meth:`ExchangeService.recover` resends whatever the recorded state says is pending.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from compliance.pia import Feature, PiaRefused
from compliance.read_once import read_once
from compliance.service import ConsentDenied
from node.core import faults
from node.core.periodic import Periodic
from node.exchange.protocol import Action, DestinationState, SourceEvent, SourceState
from node.exchange.quotes import Quote, QuoteError, accept_quote, make_quote, sign_quote
from node.exchange.records import CommittedExchange, receipt_valid, sign_receipt
from node.exchange.store import DestinationSide, Incoming, Outgoing, SourceSide
from node.peers.registry import Brand, UnknownBrandError
from node.wallet.journal import WalletError
from node.wallet.tiers import add_months

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger(__name__)

CREDIT_PATH = "/v1/peer/exchanges/credit"
CANCEL_PATH = "/v1/peer/exchanges/cancel"
#: What a credit request carries, field by field (the egress check needs every field declared).
CREDIT_FIELDS = {"quote": "loyalty.transactions", "quote_sig": "non_pi", "link_id": "identity.pseudonym"}
CANCEL_FIELDS = {"exchange_id": "non_pi"}
CLAIM_PATH = "/v1/peer/links/claim"
CLAIM_FIELDS = {"code": "identity.pseudonym", "link_id": "identity.pseudonym"}
SEALED_REF = "member_link.ref"  # the field-cipher context of the member reference kept with a link
#: Quote failures that show the request itself is not genuine: refused without recording anything.
NOT_GENUINE = {"bad_signature", "wrong_parties", "malformed_quote"}


class ExchangeRefused(Exception):
    """An exchange request refused before anything changed; ``status`` and ``reason`` for the API."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


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
class RecoveryReport:
    """What one recovery pass did."""

    resumed: int = 0
    logged: int = 0
    still_pending: int = 0


class _AlreadyLogged(Exception):
    """Another thread logged this exchange first: the append is rolled back."""


@dataclass
class ExchangeService:
    """Exchange for one node."""

    node: Node
    _busy: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def source(self) -> SourceSide:
        """The source side's records."""
        return SourceSide(self.node.wallets)

    @property
    def destination(self) -> DestinationSide:
        """The destination side's records."""
        return DestinationSide(self.node.wallets)

    # --- registry -----------------------------------------------------------------------------

    def _me(self) -> Brand:
        try:
            return self.node.registry.brand(self.node.settings.node_id)
        except UnknownBrandError as exc:
            raise ExchangeRefused(503, "not_in_registry", f"this node is not in the alliance registry: {exc}") from exc

    def _brand(self, node_id: str) -> Brand:
        try:
            return self.node.registry.brand(node_id)
        except UnknownBrandError as exc:
            raise ExchangeRefused(404, "unknown_brand", str(exc)) from exc

    def expiry(self, earned_on: date) -> date:
        """When points earned on ``earned_on`` expire under this node's policy."""
        return add_months(earned_on, self.node.settings.points_expiry_months)

    # --- source: the member's side -------------------------------------------------------------

    def quote(self, member_ref: str, to: str, points: int, now: datetime | None = None) -> tuple[Quote, str]:
        """A signed quote for moving ``points`` of the member's points to brand ``to``."""
        self.node.consent.member_pseudonym(member_ref)  # unknown or erased members get their own errors
        me, dest = self._me(), self._brand(to)
        try:
            quote = make_quote(points, me, dest, now or datetime.now(UTC))
        except QuoteError as exc:
            raise ExchangeRefused(422, exc.reason, str(exc)) from exc
        return quote, sign_quote(quote, self.node.signer)

    def quote_and_start(self, member_ref: str, to: str, points: int) -> Outgoing:
        """Quote and carry out at once: the member accepts the current rate."""
        with read_once():
            quote, signature = self.quote(member_ref, to, points)
            return self.start(member_ref, quote, signature)

    def start(self, member_ref: str, quote: Quote, signature: str, now: datetime | None = None) -> Outgoing:
        """Carry out a quote the member accepted: check, hold, ask the destination, confirm or refund.

        Refusals before the hold change nothing (:class:`ExchangeRefused`). After the hold the
        exchange always ends confirmed or refunded, now or through :meth:`recover`.
        """
        with read_once():  # one view of the member's record, consent and switches for the whole exchange
            now = now or datetime.now(UTC)
            me = self._me()
            if quote.source != me.node_id:
                raise ExchangeRefused(422, "wrong_parties", "this quote was not issued by this node")
            dest = self._brand(quote.destination)
            try:
                accept_quote(quote, signature, me, dest, now)
            except QuoteError as exc:
                raise ExchangeRefused(422, exc.reason, str(exc)) from exc
            member = self.node.consent.member_pseudonym(member_ref)
            try:
                self.node.consent.check(member_ref, "points_exchange", recipient=dest.node_id, accessor="exchange")
            except ConsentDenied as exc:
                raise ExchangeRefused(403, exc.reason.value, f"no consent to exchange with {dest.node_id}") from exc
            try:
                self.node.pia.require(Feature.POINTS_EXCHANGE)
            except PiaRefused as exc:
                raise ExchangeRefused(403, "feature_off", str(exc)) from exc
            link_id = self.node.links.link_of(member, dest.node_id)
            if link_id is None:
                raise ExchangeRefused(409, "not_linked", f"link your {dest.name} account first")
            with self._claim(quote.quote_id) as mine:
                if not mine:
                    raise ExchangeRefused(409, "in_progress", "this quote is already being carried out")
                faults.point("source.before_hold")
                try:
                    out = self.source.hold(member, quote, signature, link_id, now.date())
                except WalletError as exc:
                    raise ExchangeRefused(409, exc.reason, str(exc)) from exc
                faults.point("source.after_hold")
                return self._drive(out)

    def status(self, member_ref: str, exchange_id: str) -> Outgoing:
        """The member's exchange (``LookupError`` if it is not theirs)."""
        out = self.source.get(exchange_id)
        if out.member != self.node.consent.member_pseudonym(member_ref):
            raise LookupError(f"no outgoing exchange {exchange_id}")
        return out

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
        state = out.state
        for _ in range(4):  # held -> (timeout) cancelling -> answer: at most three calls
            if state is SourceState.HELD:
                event, receipt = self._call(out, CREDIT_PATH)
            elif state is SourceState.CANCELLING:
                event, receipt = self._call(out, CANCEL_PATH)
            else:
                break
            before = state
            step, out = self.source.apply_and_get(out.exchange_id, event, receipt, out.member)
            faults.point("source.after_apply")
            state = step.state
            if Action.APPEND_LOG in step.actions:
                self._log_outgoing(out)
            if event is SourceEvent.TIMED_OUT and before is SourceState.CANCELLING:
                break  # the peer is unreachable: recovery tries again later
        return out

    def _call(self, out: Outgoing, path: str) -> tuple[SourceEvent, str | None]:
        """Send a credit or cancel request; translate the answer into a protocol event."""
        from node.peers.outbound import EgressRefused

        if path == CREDIT_PATH:
            body: dict[str, Any] = {"quote": out.quote.to_json(), "quote_sig": out.quote_sig, "link_id": out.link_id}
            fields, purpose, members = CREDIT_FIELDS, "points_exchange", [self._member_ref(out.link_id)]
        else:
            body, fields, purpose, members = {"exchange_id": out.exchange_id}, CANCEL_FIELDS, None, []
        faults.point(f"source.before_{path.rsplit('/', 1)[1]}_call")
        try:
            response = self.node.outbound.post(  # credit and cancel are idempotent on the exchange id
                out.destination, path, json=body, fields=fields, purpose=purpose, members=members, idempotent=True
            )
        except EgressRefused:
            # the member withdrew consent or the switch went off since the hold: never send, cancel
            return SourceEvent.TIMED_OUT, None
        except Exception as exc:  # unreachable, reset, timed out: the outcome is unknown
            log.info("exchange %s: %s to %s failed: %s", out.exchange_id, path, out.destination, exc)
            return SourceEvent.TIMED_OUT, None
        faults.point(f"source.after_{path.rsplit('/', 1)[1]}_call")
        return self._event(out, response)

    def _event(self, out: Outgoing, response: Any) -> tuple[SourceEvent, str | None]:
        if response.status_code != 200:
            log.warning("exchange %s: %s answered %s", out.exchange_id, out.destination, response.status_code)
            return SourceEvent.TIMED_OUT, None
        try:
            answer = response.json()
            outcome, receipt = answer["outcome"], answer.get("destination_sig")
        except (ValueError, KeyError, TypeError):
            return SourceEvent.TIMED_OUT, None
        if outcome == "credited":
            dest = self._brand(out.destination)
            if receipt and receipt_valid(out.quote, receipt, dest.verifier):
                return SourceEvent.CREDITED, receipt
            log.warning("exchange %s: %s claims a credit without a valid receipt", out.exchange_id, out.destination)
            return SourceEvent.TIMED_OUT, None
        if outcome == "refused":
            return SourceEvent.REFUSED, None
        if outcome == "tombstoned":
            return SourceEvent.TOMBSTONED, None
        return SourceEvent.TIMED_OUT, None

    def _member_ref(self, link_id: str) -> str:
        sealed = self.node.links.sealed_ref(link_id)
        if sealed is None:
            raise LookupError(f"link {link_id} has no member reference")
        return self.node.cipher.open(bytes.fromhex(sealed), SEALED_REF)

    def seal_ref(self, member_ref: str) -> str:
        """The member reference as kept with a link (hex of the sealed bytes)."""
        return self.node.cipher.seal(member_ref, SEALED_REF).hex()

    # --- destination: answering peers --------------------------------------------------------

    def on_credit(self, caller: str, quote_json: Any, quote_sig: str, link_id: str) -> PeerAnswer:
        """Answer a signed credit request from node ``caller`` (see :meth:`_on_credit`)."""
        with read_once():
            return self._on_credit(caller, quote_json, quote_sig, link_id)

    def _on_credit(self, caller: str, quote_json: Any, quote_sig: str, link_id: str) -> PeerAnswer:
        """Answer a signed credit request from node ``caller``.

        A request that is not genuine (not the caller's quote, not signed by it, not for this
        node) is refused with :class:`ExchangeRefused` and changes nothing. A genuine quote this
        node will not honour (expired, stale rates, unknown link, no consent, exchange switched
        off) is refused for good: a tombstone makes every later credit of it fail too.
        """
        try:
            quote = Quote.from_json(quote_json if isinstance(quote_json, dict) else {})
        except QuoteError as exc:
            raise ExchangeRefused(422, exc.reason, str(exc)) from exc
        if quote.source != caller:
            raise ExchangeRefused(403, "not_your_quote", f"{caller} cannot present a quote of {quote.source}")
        me, source = self._me(), self._brand(quote.source)
        reason: str | None = None
        try:
            accept_quote(quote, quote_sig, source, me, datetime.now(UTC))
        except QuoteError as exc:
            if exc.reason in NOT_GENUINE:
                raise ExchangeRefused(422, exc.reason, str(exc)) from exc
            reason = exc.reason
        faults.point("destination.before_credit")
        member = self.node.links.member_of(source.node_id, link_id)
        existing = self.destination.get(quote.quote_id)
        if existing is None and reason is None:
            reason = self._refusal(member, link_id, source.node_id)
        # a recorded answer stands whatever changed since (a retry of a credit hears "credited")
        acceptable = existing is None and reason is None
        now = datetime.now(UTC)
        today = now.date()
        answer = self.destination.credit(
            quote,
            member if acceptable else None,
            acceptable,
            today,
            self.expiry(today),
            quote_sig=quote_sig,
            link_id=link_id,
        )
        faults.point("destination.after_credit")
        if answer.answer is SourceEvent.CREDITED:
            incoming = existing or Incoming(
                quote.quote_id, source.node_id, member, DestinationState.CREDITED, quote, quote_sig, link_id, None, now
            )
            if incoming.logged_index is None:
                self._log_incoming(incoming)
            faults.point("destination.after_log")
            return PeerAnswer(quote.quote_id, "credited", None, sign_receipt(quote, self.node.signer))
        if answer.answer is SourceEvent.REFUSED:
            self.node.audit(
                "exchange.refused",
                subject_pseudo_ids=[member] if member else [],
                purpose_code=f"points_exchange:{source.node_id}",
                outcome="denied",
                reason_code=reason or "refused",
                details={"exchange_id": quote.quote_id, "source": source.node_id},
            )
            return PeerAnswer(quote.quote_id, "refused", reason)
        return PeerAnswer(quote.quote_id, "tombstoned")

    def _refusal(self, member: str | None, link_id: str, source: str) -> str | None:
        """Why this node will not credit the member the link names, or None if it will."""
        if member is None:
            return "not_linked"
        try:
            self.node.consent.check(self._member_ref(link_id), "points_exchange", recipient=source, accessor="exchange")
        except ConsentDenied as exc:
            return exc.reason.value
        except LookupError:  # erased since linking
            return "not_linked"
        try:
            self.node.pia.require(Feature.POINTS_EXCHANGE)
        except PiaRefused:
            return "feature_off"
        return None

    def on_cancel(self, caller: str, exchange_id: str) -> PeerAnswer:
        """Answer a signed cancel request: a credit already made stands, otherwise a tombstone."""
        existing = self.destination.get(exchange_id)
        if existing is not None and existing.source != caller:
            raise ExchangeRefused(403, "not_your_exchange", f"exchange {exchange_id} is not from {caller}")
        faults.point("destination.before_cancel")
        answer = self.destination.cancel(exchange_id, caller)
        faults.point("destination.after_cancel")
        if answer.answer is SourceEvent.CREDITED:
            incoming = self.destination.get(exchange_id)
            assert incoming is not None
            assert incoming.quote is not None
            if incoming.logged_index is None:
                self._log_incoming(incoming)
            return PeerAnswer(exchange_id, "credited", None, sign_receipt(incoming.quote, self.node.signer))
        return PeerAnswer(exchange_id, "tombstoned")

    # --- linking -------------------------------------------------------------------------------

    def link_code(self, member_ref: str, peer: str) -> str:
        """A one-time code the member types at ``peer`` to link their two accounts (needs consent here)."""
        member = self._linkable(member_ref, peer)
        return self.node.links.issue_code(member, peer, member_ref_sealed=self.seal_ref(member_ref))

    def link_with(self, member_ref: str, peer: str, code: str) -> str:
        """Link the member's account here with theirs at ``peer``, using the code ``peer`` issued them."""
        from node.exchange.links import LinkError, new_link_id
        from node.peers.outbound import EgressRefused

        member = self._linkable(member_ref, peer)
        if self.node.links.link_of(member, peer) is not None:
            raise LinkError("already_linked", f"this account is already linked with {peer}")
        try:
            response = self.node.outbound.post(
                peer,
                CLAIM_PATH,
                json={"code": code, "link_id": new_link_id()},
                fields=CLAIM_FIELDS,
                purpose="points_exchange",
                members=[member_ref],
            )
        except EgressRefused as exc:
            raise ExchangeRefused(403, exc.decision.reason.value, str(exc)) from exc
        except Exception as exc:
            raise ExchangeRefused(502, "peer_unreachable", f"{peer} could not be reached: {exc}") from exc
        if response.status_code != 200:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            reason = problem.get("reason_code") or "peer_refused"
            raise ExchangeRefused(422 if response.status_code < 500 else 502, reason, problem.get("detail") or reason)
        link_id = str(response.json()["link_id"])
        self.node.links.link(member, peer, link_id, member_ref_sealed=self.seal_ref(member_ref))
        self._audit_link(member, peer)
        return link_id

    def on_claim(self, caller: str, code: str, link_id: str) -> str:
        """Answer ``caller``'s claim of a link code issued here: record the link, return its id."""
        from node.exchange.links import LinkError

        member, sealed = self.node.links.claim(code, caller)
        if sealed is None:
            raise LinkError("unknown_code", "no such link code")
        member_ref = self.node.cipher.open(bytes.fromhex(sealed), SEALED_REF)
        self._linkable(member_ref, caller)  # consent may have been withdrawn since the code was issued
        existing = self.node.links.link_of(member, caller)
        if existing is not None:
            return existing  # linked before (the caller lost its side in a crash): adopt that id
        self.node.links.link(member, caller, link_id, member_ref_sealed=sealed)
        self._audit_link(member, caller)
        return link_id

    def _linkable(self, member_ref: str, peer: str) -> str:
        self._brand(peer)
        member = self.node.consent.member_pseudonym(member_ref)
        try:
            self.node.consent.check(member_ref, "points_exchange", recipient=peer, accessor="linking")
        except ConsentDenied as exc:
            raise ExchangeRefused(403, exc.reason.value, f"no consent to exchange with {peer}") from exc
        return member

    def _audit_link(self, member: str, peer: str) -> None:
        self.node.audit(
            "link.created",
            subject_pseudo_ids=[member],
            purpose_code=f"points_exchange:{peer}",
            outcome="ok",
            details={"peer": peer},
        )

    # --- the exchange log ------------------------------------------------------------------------

    def _log_outgoing(self, out: Outgoing) -> None:
        assert out.destination_sig is not None
        record = CommittedExchange(out.quote, out.link_id, out.quote_sig, out.destination_sig)
        self._append(record, "exchange_out", out.exchange_id)
        faults.point("source.after_log")

    def _log_incoming(self, incoming: Incoming) -> None:
        assert incoming.quote is not None
        assert incoming.quote_sig is not None
        assert incoming.link_id is not None
        receipt = sign_receipt(incoming.quote, self.node.signer)
        record = CommittedExchange(incoming.quote, incoming.link_id, incoming.quote_sig, receipt)
        self._append(record, "exchange_in", incoming.exchange_id)

    def _append(self, record: CommittedExchange, table: str, exchange_id: str) -> None:
        store = self.node.store
        p = store.placeholder
        sql = f"UPDATE {table} SET logged_index = {p} WHERE exchange_id = {p} AND logged_index IS NULL"

        def mark(cur: Any, first: int) -> None:
            cur.execute(sql, (first, exchange_id))
            if cur.rowcount != 1:
                raise _AlreadyLogged(exchange_id)

        # another thread appended it first: the rolled-back append left nothing behind
        with suppress(_AlreadyLogged):
            store.log("exchange").append([record.entry()], then=mark)

    # --- recovery ----------------------------------------------------------------------------

    def recover(self) -> RecoveryReport:
        """Resume every unfinished exchange and log every committed one not yet logged."""
        report = RecoveryReport()
        for out in self.source.unfinished():
            with self._claim(out.exchange_id) as mine:
                if not mine:
                    continue
                final = self._drive(out)
                report.resumed += 1
                report.still_pending += final.state in (SourceState.HELD, SourceState.CANCELLING)
        for out in self.source.unlogged():
            self._log_outgoing(out)
            report.logged += 1
        for incoming in self.destination.unlogged():
            self._log_incoming(incoming)
            report.logged += 1
        return report


class RecoveryLoop(Periodic):
    """Runs :meth:`ExchangeService.recover` at start and then every ``interval`` seconds, in a thread."""

    def __init__(self, service: ExchangeService, interval: float) -> None:
        self.service = service
        super().__init__("exchange-recovery", interval, self._pass, log)

    def _pass(self) -> None:
        report = self.service.recover()
        if report.resumed or report.logged:
            log.info("exchange recovery: %s", report)
