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
from collections.abc import Iterator, Mapping, Sequence
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
from node.core.auth import current_caller
from node.core.batching import Batcher
from node.core.refusals import Refused
from node.exchange.batches import BATCH_PATH, apply_outgoing
from node.exchange.exchange_log import ExchangeLog
from node.exchange.links import LinkStore
from node.exchange.protocol import Action, SourceEvent, SourceState, pending_action
from node.exchange.quotes import Quote, accept_quote, make_quote, sign_quote
from node.exchange.records import receipt_valid
from node.exchange.store import Hold, Outgoing, SourceSide
from node.peers.outbound import EgressRefused, Outbound, Response
from node.peers.registry import RegistryFile
from node.wallet.journal import WalletError

log = logging.getLogger(__name__)

#: What a batch item carries, field by field (the egress check needs every field declared).
BATCH_FIELDS = {
    "kind": "non_pi",
    "quote": "loyalty.transactions",
    "quote_sig": "non_pi",
    "link_id": "identity.pseudonym",
    "exchange_id": "non_pi",
}
_SENDS = {Action.SEND_CREDIT, Action.SEND_CANCEL}


@dataclass(frozen=True)
class _Send:
    """An exchange to send now, and for a credit whether the member's consent lets it leave."""

    out: Outgoing
    allowed: bool


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
    batch_max: int = 64
    batch_linger: float = 0.002
    _batchers: dict[str, Batcher[_Send, tuple[SourceEvent, Outgoing]]] = field(default_factory=dict, repr=False)
    _busy: set[str] = field(default_factory=set, repr=False)
    _holds: Batcher[Hold, Outgoing | WalletError] = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # holds from concurrent requests commit together (group commit: one transaction, one fsync)
        self._holds = Batcher(self._hold_batch, self.batch_max)

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
            with self._claim(quote.quote_id) as mine, self._batcher(dest.node_id).coming():
                if not mine:
                    raise Refused("in_progress", "this quote is already being carried out")
                held = self._holds.submit(Hold(member, quote, signature, link_id))
                if isinstance(held, WalletError):
                    raise held  # insufficient_points: nothing was written
                done = self._drive(held)
                # ids and states only: the member is never named in a log line
                log.info("exchange %s to %s: %s", done.exchange_id, done.destination, done.state.value)
                return done

    def status(self, member_ref: str, exchange_id: str) -> Outgoing:
        """The member's exchange (``LookupError`` if it is not theirs)."""
        out = self.outgoing.get(exchange_id)
        if out.member != self.consent.member_pseudonym(member_ref):
            raise LookupError(f"no outgoing exchange {exchange_id}")
        return out

    @contextmanager
    def _claim(self, exchange_id: str) -> Iterator[bool]:
        # one thread drives an exchange at a time: the request that started it, or recovery
        with self._claim_many([exchange_id]) as mine:
            yield exchange_id in mine

    def resume_many(self, outs: Sequence[Outgoing]) -> list[Outgoing]:
        """Drive many unfinished exchanges on in batches (recovery); those another thread drives are left out."""
        with self._claim_many([o.exchange_id for o in outs]) as mine:
            pending = [o for o in outs if o.exchange_id in mine]
            done: list[Outgoing] = []
            for _ in range(4):  # as in _drive: at most three calls per exchange
                sending = [o for o in pending if pending_action(o.state) in _SENDS]
                done += [o for o in pending if pending_action(o.state) not in _SENDS]
                pending = []
                for dest in sorted({o.destination for o in sending}):
                    group = [o for o in sending if o.destination == dest]
                    for k in range(0, len(group), self.batch_max):
                        chunk = [self._ready(o) for o in group[k : k + self.batch_max]]
                        for before, (event, out) in zip(chunk, self._send(dest, chunk), strict=True):
                            stuck = event is SourceEvent.TIMED_OUT and before.out.state is SourceState.CANCELLING
                            (done if stuck else pending).append(out)
            return done + pending

    @contextmanager
    def _claim_many(self, exchange_ids: Sequence[str]) -> Iterator[set[str]]:
        with self._lock:
            mine = {x for x in exchange_ids if x not in self._busy}
            self._busy |= mine
        try:
            yield mine
        finally:
            with self._lock:
                self._busy -= mine

    def _hold_batch(self, holds: Sequence[Hold]) -> list[Outgoing | WalletError]:
        faults.point("source.before_hold")
        held = self.outgoing.hold_many(holds, datetime.now(UTC).date())
        faults.point("source.after_hold")
        return held

    def _batcher(self, destination: str) -> Batcher[_Send, tuple[SourceEvent, Outgoing]]:
        with self._lock:
            if destination not in self._batchers:
                self._batchers[destination] = Batcher(
                    lambda sends: self._send(destination, sends), self.batch_max, self.batch_linger
                )
            return self._batchers[destination]

    def _drive(self, out: Outgoing) -> Outgoing:
        """Send what the state calls for until the exchange is final or the peer cannot be reached."""
        for _ in range(4):  # held -> (timeout) cancelling -> answer: at most three calls
            if pending_action(out.state) not in _SENDS:
                break
            before = out.state
            event, out = self._batcher(out.destination).submit(self._ready(out))
            if event is SourceEvent.TIMED_OUT and before is SourceState.CANCELLING:
                break  # the peer is unreachable: recovery tries again later
        return out

    def _ready(self, out: Outgoing) -> _Send:
        """The exchange with its egress consent decided here, in the requesting thread (whose read-once
        scope already holds the member's consent), rather than by whichever thread leads the batch."""
        if out.state is not SourceState.HELD:
            return _Send(out, True)  # a cancel carries nothing about the member
        member_ref = self.links.member_ref(out.link_id)
        return _Send(out, member_ref is not None and self._may_send(member_ref, out.destination))

    def _send(self, destination: str, sends: Sequence[_Send]) -> list[tuple[SourceEvent, Outgoing]]:
        """One batch call (credits and cancels to one destination), its answers recorded in one
        transaction and the confirmed exchanges logged in one append."""
        outs = [s.out for s in sends]
        acting = current_caller.set(None)  # a batch acts for the node, not for the member whose thread leads it
        try:
            answers = self._call(destination, sends)
            applied = apply_outgoing(self.outgoing, [(o, e, r) for o, (e, r) in zip(outs, answers, strict=True)])
            faults.point("source.after_apply")
            self.exchange_log.record_outgoing_many([o for step, o in applied if Action.APPEND_LOG in step.actions])
        finally:
            current_caller.reset(acting)
        return [(e, o) for (e, _), (_, o) in zip(answers, applied, strict=True)]

    def _call(self, destination: str, sends: Sequence[_Send]) -> list[tuple[SourceEvent, str | None]]:
        """Send the batch; translate each item's answer into a protocol event (TIMED_OUT: unknown)."""
        outs = [s.out for s in sends]
        answers: list[tuple[SourceEvent, str | None]] = [(SourceEvent.TIMED_OUT, None)] * len(outs)
        items, sent, pseudonyms, cancelled = [], [], [], []
        for k, (out, allowed) in enumerate((s.out, s.allowed) for s in sends):
            if out.state is SourceState.HELD:
                if not allowed:
                    continue  # never sent: the exchange will be cancelled
                item = {"kind": "credit", "quote": out.quote.to_json(), "quote_sig": out.quote_sig}
                items.append(item | {"link_id": out.link_id})
                pseudonyms.append(out.member)
            else:
                items.append({"kind": "cancel", "exchange_id": out.exchange_id})
                cancelled.append(out.member)
            sent.append(k)
        if not items:
            return answers
        kinds = sorted({i["kind"] for i in items})
        for kind in kinds:
            faults.point(f"source.before_{kind}_call")
        try:
            response = self.outbound.post(  # every item is idempotent on its exchange id
                destination,
                BATCH_PATH,
                json={"items": items},
                fields=BATCH_FIELDS,
                payload_fields={f for i in items for f in i},
                purpose="points_exchange" if pseudonyms else None,
                # the record of provision counts individuals: a member with two credits in the batch is one
                cohort=list(dict.fromkeys(pseudonyms)) or None,
                idempotent=True,
                unwinding=("points_exchange", cancelled),  # recorded, never refused: the member is refunded
            )
        except EgressRefused:
            return answers  # the switch went off since the holds: never send, cancel
        except Exception as exc:  # unreachable, reset, timed out: the outcome is unknown
            log.info("exchange batch of %d to %s failed: %s", len(items), destination, exc)
            return answers
        for kind in kinds:
            faults.point(f"source.after_{kind}_call")
        results = _results(response, len(items))
        if results is None:
            log.warning("exchange batch to %s: answer %s not understood", destination, response.status_code)
            return answers
        for k, result in zip(sent, results, strict=True):
            answers[k] = self._event(outs[k], result)
        return answers

    def _may_send(self, member_ref: str, destination: str) -> bool:
        # the egress check's consent gate, item by item: one member's withdrawal holds back only their item
        try:
            self.consent.check(member_ref, "points_exchange", recipient=destination, accessor="egress")
        except (ConsentDenied, LookupError):
            return False
        return True

    def _event(self, out: Outgoing, result: Mapping[str, Any]) -> tuple[SourceEvent, str | None]:
        outcome, receipt = result.get("outcome"), result.get("destination_sig")
        if result.get("exchange_id") != out.exchange_id:
            return SourceEvent.TIMED_OUT, None
        if outcome == "credited":
            verifier = self.registry.brand(out.destination).verifier
            if isinstance(receipt, str) and receipt_valid(out.quote, receipt, verifier):
                return SourceEvent.CREDITED, receipt
            log.warning("exchange %s: %s claims a credit without a valid receipt", out.exchange_id, out.destination)
            return SourceEvent.TIMED_OUT, None
        return _OUTCOMES.get(str(outcome), SourceEvent.TIMED_OUT), None


def _results(response: Response, count: int) -> list[Mapping[str, Any]] | None:
    """The per-item answers of a batch call, or None if the answer is not one."""
    if response.status_code != 200:
        return None
    try:
        results = response.json()["results"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(results, list) or len(results) != count or not all(isinstance(r, dict) for r in results):
        return None
    return results


_OUTCOMES = {"refused": SourceEvent.REFUSED, "tombstoned": SourceEvent.TOMBSTONED}
