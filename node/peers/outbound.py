"""The one way out of a node: every outbound call passes :meth:`Outbound.authorize` before it is sent.

It resolves the destination in the peer registry, declares each payload field as personal
information (a PI category) or not, and applies :class:`compliance.egress.EgressPolicy`:
region allowlist, the consent gate for the purpose and the recipient brand, and for another
country the separate cross-border consent, the approved impact assessment, and a recorded
transfer mechanism strong enough for this year's distinct-individual count. Refusals and
transfers of personal information are audited. ``tests/test_outbound.py`` checks that no other
module of ours imports an HTTP client.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from compliance.audit import Recipient
from compliance.egress import (
    NON_PI,
    CrossBorderCounter,
    Destination,
    EgressDecision,
    EgressPolicy,
    EgressReason,
    Mechanism,
    MechanismRegistry,
)
from compliance.pia import Feature, PiaRefused
from compliance.pia_service import PiaService
from compliance.provisions import NOT_DELIVERED, purpose_for, signature_digest
from compliance.purposes import catalogue
from compliance.service import ConsentDenied, ConsentService
from ledger import note
from node.core.audit import NodeAudit
from node.core.refusals import Refused
from node.core.settings import NodeSettings
from node.peers.inprocess import InProcess
from node.peers.registry import RegistryFile, UnknownBrandError
from node.peers.signing import answering_call, sign_request

#: Purpose families whose provision to another node needs a feature switched on under an assessment.
PURPOSE_FEATURES: dict[str, Feature] = {
    "points_exchange": Feature.POINTS_EXCHANGE,
    "joint_modeling": Feature.JOINT_MODELING,
    "personalization": Feature.PERSONALIZATION,
}


#: A peer's answer (callers read it without importing an HTTP client themselves).
Response = httpx.Response

#: What the first call on a keep-alive connection the peer has since closed fails with.
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError)


class EgressRefused(Refused):
    """The egress check refused this call; nothing was sent. ``reason`` is the decision's."""

    def __init__(self, decision: EgressDecision, message: str) -> None:
        super().__init__(decision.reason.value, message)
        self.decision = decision


class PeerUnavailable(Refused):
    """Another node could not be reached or failed to answer (HTTP 502); nothing changed here."""


class PeerRefused(Refused):
    """Another node refused what this one asked on a member's behalf: its reason passes through, and
    the member's request is answered 422 whatever that reason (the partner's statuses are its own)."""


@dataclass(frozen=True)
class Permit:
    """What :meth:`Outbound.authorize` allowed: where to send, and the decision to cite."""

    url: str | None  # None: a peer we only witness, with nowhere to send to
    decision: EgressDecision
    mechanism: tuple[Mechanism, str] | None = None
    recorded: tuple[str, ...] | None = None  # a record of provision was written, about these pseudonyms


@dataclass
class Outbound:
    """This node's egress point."""

    settings: NodeSettings
    registry: RegistryFile
    signer: note.Signer
    consent: ConsentService
    pia: PiaService
    xborder: CrossBorderCounter
    mechanisms: MechanismRegistry
    audit: NodeAudit
    timeout: float = 10.0
    _client: httpx.Client | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def client(self) -> httpx.Client:
        """One pooled client per node: peer calls reuse their connections."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, limits=httpx.Limits(max_keepalive_connections=32))
            return self._client

    def connect_in_process(self, apps: Mapping[str, Any]) -> None:
        """Send peer calls for the base URLs in ``apps`` (``http://host:port``) to those nodes' ASGI
        apps in this process: the same signing, egress check, routes, signature checks and handlers as
        over the network, without a server (``federate vertical --node DIR...`` opens every node here).
        """
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = httpx.Client(timeout=self.timeout, transport=InProcess(apps))

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @property
    def policy(self) -> EgressPolicy:
        """The node's localisation policy, from its settings."""
        s = self.settings
        return EgressPolicy(home_region=s.region, allowed_regions=frozenset(s.allowed_regions))

    def destination(self, peer_id: str) -> tuple[Destination, str | None] | None:
        """A configured peer's or, failing that, an alliance brand's region and URL; or None."""
        for peer in self.settings.peers:
            if peer.node_id == peer_id:
                return Destination(peer.node_id, peer.region), peer.url
        if self.registry.exists():
            try:
                brand = self.registry.brand(peer_id)
            except UnknownBrandError:
                return None
            return Destination(brand.node_id, brand.region), brand.url
        return None

    def authorize(
        self,
        peer_id: str,
        fields: Mapping[str, str],
        payload_fields: set[str],
        *,
        purpose: str | None = None,
        members: Sequence[str] = (),
        cohort: Sequence[str] | None = None,
        today: date | None = None,
        signature: str | None = None,
    ) -> Permit:
        """Decide one call, or raise :class:`EgressRefused` (audited).

        ``fields`` declares every field this kind of message may carry, mapped to its PI
        category or ``non_pi``; ``members`` are the brand references of the people the
        payload is about; ``purpose`` is why their data goes (the recipient is ``peer_id``).
        ``cohort`` instead names them by pseudonym, as the consent gate's cohort for this
        purpose and recipient selected them (a bulk call about thousands of members): their
        consent was decided by that selection, everything else is checked here as for ``members``.
        A transfer allowed is recorded (the record of provision, :mod:`compliance.provisions`) citing
        ``signature``, the digest of the signed call that carries it, or else the call it answers.
        """
        today = today or date.today()
        found = self.destination(peer_id)
        dest = found[0] if found else None
        pi_cats = sorted({fields[f] for f in payload_fields if f in fields and fields[f] != NON_PI})
        abroad = dest is not None and dest.region != self.policy.home_region
        pseudonyms: list[str] = []
        purpose_ok = cross_ok = True
        sensitive = False
        mechanism: tuple[Mechanism, str] | None = None
        needed = Mechanism.NONE
        if pi_cats and dest is not None:
            if not purpose or not (members or cohort):
                raise ValueError("personal information leaves only for a purpose and named members")
            outside = sorted(set(pi_cats) - set(_purpose_categories(purpose, peer_id)))
            if outside:
                # minimisation (PIPL Art. 6): a purpose carries only the categories it declares
                refused = EgressDecision(False, EgressReason.CATEGORY_OUTSIDE_PURPOSE, abroad, tuple(outside))
                self._audit_refusal(peer_id, purpose, [], pi_cats, refused, needed)
                raise EgressRefused(refused, f"{purpose!r} does not cover {', '.join(outside)}")
            if cohort is not None:
                pseudonyms = list(cohort)
                purpose_ok = self._feature_on(purpose)
            else:
                pseudonyms = [self.consent.member_pseudonym(m) for m in members]
                purpose_ok = self._consented(members, purpose, peer_id) and self._feature_on(purpose)
            if abroad:
                abroad_purpose = f"cross_border:{dest.region}"
                if not purpose_for(purpose, peer_id).needs_consent:
                    consented = True  # a legal obligation (a rights notice): no consent to ask; the rest applies
                elif cohort is not None:
                    consented = set(pseudonyms) <= set(self.consent.cohort(abroad_purpose))
                else:
                    consented = self._consented(members, abroad_purpose, None)
                cross_ok = consented and self._on(Feature.CROSS_BORDER)
                sensitive = any(catalogue().categories[c].sensitive for c in pi_cats if c in catalogue().categories)
                counter = self.xborder
                new = counter.new_among(set(pseudonyms), sensitive, today.year)
                needed = counter.required(today.year, *((0, new) if sensitive else (new, 0)))
                mechanism = self.mechanisms.in_force(dest.region, today)
        decision = self.policy.check(
            dest,
            fields,
            payload_fields,
            purpose_consented=purpose_ok,
            cross_border_consented=cross_ok,
            mechanism=mechanism[0] if mechanism else None,
            needed=needed,
        )
        if not decision.allowed:
            self._audit_refusal(peer_id, purpose, pseudonyms, pi_cats, decision, needed)
            raise EgressRefused(decision, f"call to {peer_id!r} refused: {decision.reason.value}")
        assert found is not None
        if pi_cats:
            if abroad:
                # counted before sending: a crash after this over-counts, which errs on the safe side
                self.xborder.add(set(pseudonyms), sensitive, today)
            carried = ("peer_call", signature) if signature else ("answer", answering_call.get())
            self._audit_transfer(peer_id, purpose, pseudonyms, pi_cats, decision, mechanism, carried)
            return Permit(found[1], decision, mechanism, tuple(pseudonyms))
        return Permit(found[1], decision, mechanism)

    def post(
        self,
        peer_id: str,
        path: str,
        *,
        content: bytes | str | None = None,
        json: Any = None,
        fields: Mapping[str, str],
        payload_fields: set[str] | None = None,
        purpose: str | None = None,
        members: Sequence[str] = (),
        cohort: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
        unwinding: tuple[str, Sequence[str]] | None = None,
    ) -> httpx.Response:
        """Authorize, then POST to the peer. ``payload_fields`` defaults to a JSON body's top-level keys.

        An ``idempotent`` call (the peer answers a repeat as it answered the first) is sent once
        more, freshly signed, when the pooled connection turns out to be dead: a peer that
        restarted closes its keep-alive connections, and the first call on one fails before the
        peer has read it. ``unwinding`` (purpose, pseudonyms) names members whose earlier provision the
        call undoes (an exchange's cancel): recorded with the call, never refused (they must be refunded).
        """
        if payload_fields is None:
            payload_fields = set(json if isinstance(json, dict) else fields)
        found = self.destination(peer_id)
        if found is not None and found[1] is None:  # before authorize, which counts and audits the transfer
            raise httpx.InvalidURL(f"peer {peer_id!r} has no URL configured: `alliance-node peers add --url`")
        if found is None:  # nowhere to send: the egress check refuses it, and audits the refusal
            self.authorize(peer_id, fields, payload_fields, purpose=purpose, members=members, cohort=cohort)
            raise AssertionError("the egress check lets nothing go to an unknown destination")
        url = f"{str(found[1]).rstrip('/')}{path}"

        def send_recorded() -> httpx.Response:
            # every peer call is signed (RFC 9421) with a fresh nonce; first, so that the record of
            # provision cites the very call that carries the data
            request = self.client.build_request("POST", url, content=content, json=json, headers=headers)
            request = sign_request(request, self.signer)
            digest = signature_digest(request.headers["signature"])
            permit = self.authorize(
                peer_id, fields, payload_fields, purpose=purpose, members=members, cohort=cohort, signature=digest
            )
            if unwinding is not None and unwinding[1]:
                self.record_provision(peer_id, unwinding[0], list(dict.fromkeys(unwinding[1])),
                                      ["loyalty.transactions"], carried=("peer_call", digest))
            try:
                return self.client.send(request)
            except httpx.ConnectError:
                self._not_delivered(peer_id, purpose, permit, digest)  # no connection: nothing left
                raise

        try:
            return send_recorded()
        except STALE_CONNECTION:
            if not idempotent:
                raise
            return send_recorded()  # a dead keep-alive connection: the peer read nothing; sent (and recorded) again

    def record_provision(
        self, peer_id: str, purpose: str, pseudonyms: list[str], pi_cats: list[str], carried: tuple[str, str | None]
    ) -> None:
        """Record a provision no gate decides here (a Flower message of a run whose cohort the consent gate
        selected, a cancel): ``carried`` names the channel and the digest of the message or call."""
        abroad = (found := self.destination(peer_id)) is not None and found[0].region != self.policy.home_region
        reason = EgressReason.CROSS_BORDER_OK if abroad else EgressReason.DOMESTIC_CONSENTED
        decision = EgressDecision(True, reason, abroad)
        self._audit_transfer(peer_id, purpose, pseudonyms, sorted(pi_cats), decision, None, carried)

    def _not_delivered(self, peer_id: str, purpose: str | None, permit: Permit, digest: str) -> None:
        if permit.recorded is None:
            return
        _audit_chunks(
            self.audit,
            "xborder.transfer" if permit.decision.cross_border else "pi.provide",
            list(permit.recorded),
            purpose_code=purpose,
            recipient=Recipient(id=peer_id),
            outcome="error",
            reason_code=NOT_DELIVERED,
            details={"signature_digest": digest},
        )

    # --- checks --------------------------------------------------------------------------

    def _consented(self, members: Sequence[str], purpose: str, recipient: str | None) -> bool:
        try:
            for m in members:
                self.consent.check(m, purpose, recipient=recipient, accessor="egress")
        except ConsentDenied:
            return False  # the gate audited the denial
        return True

    def _feature_on(self, purpose: str) -> bool:
        feature = PURPOSE_FEATURES.get(purpose.split(":", 1)[0])
        return feature is None or self._on(feature)

    def _on(self, feature: Feature) -> bool:
        try:
            self.pia.require(feature)
        except PiaRefused:
            return False  # the feature gate audited the denial
        return True

    # --- audit ---------------------------------------------------------------------------

    def _audit_refusal(
        self,
        peer_id: str,
        purpose: str | None,
        pseudonyms: list[str],
        pi_cats: list[str],
        decision: EgressDecision,
        needed: Mechanism,
    ) -> None:
        _audit_chunks(
            self.audit,
            "xborder.block" if decision.cross_border else "pi.provide.denied",
            pseudonyms,
            purpose_code=purpose,
            pi_categories=pi_cats,
            recipient=Recipient(id=peer_id),
            outcome="denied",
            reason_code=decision.reason.value,
            details={"needed_mechanism": needed.value, "fields": ",".join(decision.pi_fields)[:500] or None},
        )

    def _audit_transfer(
        self,
        peer_id: str,
        purpose: str | None,
        pseudonyms: list[str],
        pi_cats: list[str],
        decision: EgressDecision,
        mechanism: tuple[Mechanism, str] | None,
        carried: tuple[str, str | None],
    ) -> None:
        assert purpose is not None  # personal information leaves only for a purpose
        _audit_chunks(
            self.audit,
            "xborder.transfer" if decision.cross_border else "pi.provide",
            pseudonyms,
            purpose_code=purpose,
            legal_basis=purpose_for(purpose, peer_id).legal_basis.value,
            pi_categories=pi_cats,
            recipient=Recipient(id=peer_id, role=self.registry.role_of(peer_id, purpose, self.settings.node_id)),
            details={
                "mechanism": mechanism[0].value if mechanism else Mechanism.NONE.value,
                "mechanism_ref": mechanism[1] if mechanism else None,
                "reason": decision.reason.value,
                "carried_by": carried[0],
                "signature_digest": carried[1],
            },
        )


def _purpose_categories(purpose: str, recipient: str) -> tuple[str, ...]:
    return purpose_for(purpose, recipient).pi_categories


def _audit_chunks(audit: NodeAudit, action: str, pseudonyms: list[str], **fields: Any) -> None:
    # an event names at most 1000 subjects; a larger call is several events in one atomic batch
    chunks = [pseudonyms[i : i + 1000] for i in range(0, len(pseudonyms), 1000)] or [[]]
    audit.many([(action, {"subject_pseudo_ids": c, "subject_count": len(pseudonyms), **fields}) for c in chunks])


__all__ = ["EgressReason", "EgressRefused", "Outbound", "PeerRefused", "PeerUnavailable", "Permit", "Response"]
