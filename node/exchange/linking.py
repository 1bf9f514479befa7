"""Linking a member's accounts at two brands, over a signed call, with a one-time code.

Brand A issues a code to its member (needs their ``points_exchange:B`` consent); the member types
it at brand B, whose node claims it from A in a signed peer call; A checks the code and the
consent again, and both nodes record the same random link id. Withdrawing the consent ends the
link (:func:`unlink_on_withdrawal`). The records themselves are :class:`node.exchange.links.LinkStore`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from compliance.consent import ConsentAction, ConsentRecord
from compliance.service import ConsentDenied, ConsentService
from node.core.audit import NodeAudit
from node.core.refusals import Refused
from node.exchange.links import LinkError, LinkStore, new_link_id
from node.peers.outbound import EgressRefused, Outbound, PeerRefused, PeerUnavailable
from node.peers.registry import RegistryFile

CLAIM_PATH = "/v1/peer/links/claim"
CLAIM_FIELDS = {"code": "identity.pseudonym", "link_id": "identity.pseudonym"}


@dataclass
class Linking:
    """Link codes issued here, links made with other brands, and claims from them."""

    registry: RegistryFile
    consent: ConsentService
    links: LinkStore
    outbound: Outbound
    audit: NodeAudit

    def link_code(self, member_ref: str, peer: str) -> str:
        """A one-time code the member types at ``peer`` to link their two accounts (needs consent here)."""
        member = self._linkable(member_ref, peer)
        return self.links.issue_code(member, peer, member_ref=member_ref)

    def link_with(self, member_ref: str, peer: str, code: str) -> str:
        """Link the member's account here with theirs at ``peer``, using the code ``peer`` issued them."""
        member = self._linkable(member_ref, peer)
        if self.links.link_of(member, peer) is not None:
            raise LinkError("already_linked", f"this account is already linked with {peer}")
        try:
            response = self.outbound.post(
                peer,
                CLAIM_PATH,
                json={"code": code, "link_id": new_link_id()},
                fields=CLAIM_FIELDS,
                purpose="points_exchange",
                members=[member_ref],
            )
        except EgressRefused:
            raise  # the egress check said no: nothing was sent
        except Exception as exc:
            raise PeerUnavailable("peer_unreachable", f"{peer} could not be reached: {exc}") from exc
        if response.status_code != 200:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            problem = problem if isinstance(problem, dict) else {}
            reason = str(problem.get("reason_code") or "peer_refused")
            detail = str(problem.get("detail") or reason)
            # the partner's reason reaches the member as it is (a 422 here); its failure is a 502
            raise PeerRefused(reason, detail) if response.status_code < 500 else PeerUnavailable(reason, detail)
        link_id = str(response.json()["link_id"])
        self.links.link(member, peer, link_id, member_ref=member_ref)
        self._audit_link(member, peer)
        return link_id

    def on_claim(self, caller: str, code: str, link_id: str) -> str:
        """Answer ``caller``'s claim of a link code issued here: record the link, return its id."""
        member, member_ref = self.links.claim(code, caller)
        if member_ref is None:
            raise LinkError("unknown_code", "no such link code")
        self._linkable(member_ref, caller)  # consent may have been withdrawn since the code was issued
        existing = self.links.link_of(member, caller)
        if existing is not None:
            return existing  # linked before (the caller lost its side in a crash): adopt that id
        self.links.link(member, caller, link_id, member_ref=member_ref)
        self._audit_link(member, caller)
        return link_id

    def _linkable(self, member_ref: str, peer: str) -> str:
        self.registry.brand(peer)
        member = self.consent.member_pseudonym(member_ref)
        try:
            self.consent.check(member_ref, "points_exchange", recipient=peer, accessor="linking")
        except ConsentDenied as exc:
            raise Refused(exc.reason.value, f"no consent to exchange with {peer}") from exc
        return member

    def _audit_link(self, member: str, peer: str) -> None:
        self.audit(
            "link.created",
            subject_pseudo_ids=[member],
            purpose_code=f"points_exchange:{peer}",
            outcome="ok",
            details={"peer": peer},
        )


def unlink_on_withdrawal(links: LinkStore) -> Callable[[Sequence[ConsentRecord]], None]:
    """The consent service's after-change hook: withdrawing ``points_exchange:<brand>`` ends the
    member's link with that brand."""

    def after_change(records: Sequence[ConsentRecord]) -> None:
        for r in records:
            if r.action is ConsentAction.WITHDRAW and r.purpose_code.startswith("points_exchange:"):
                links.unlink(r.member, r.purpose_code.split(":", 1)[1])

    return after_change
