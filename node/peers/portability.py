"""Portability between brands (PIPL Art. 45(3)): a member's data sent, at their request, to a brand they name.

Both ends verify the member themselves: at the receiving brand the member (authenticated there)
asks for a one-time code naming the sender; at the sending brand the member (authenticated there)
asks to send with that code. The sender sends the portable part of its access export by a signed
peer call through the egress check (a record of provision); the receiver checks the code was issued
to that sender and is unused, keeps only what its notice covers for purposes the member may be
processed for there, and answers what it kept. Each end tracks a portability request with the
15-working-day clock, and both audit it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compliance.portability import FIELDS, PURPOSE, allowed_categories, plan_import, portable
from compliance.portability_store import CodeRefused, PortabilityStore
from compliance.rights import RequestKind, RightsRequest
from compliance.rights_service import RightsService
from compliance.service import ConsentService
from node.core.audit import NodeAudit
from node.core.refusals import Refused
from node.peers.outbound import EgressRefused, Outbound
from node.peers.registry import RegistryFile, UnknownBrandError

PATH = "/v1/peer/portability"


@dataclass
class Portability:
    """This node sending members' data to other brands, and receiving theirs."""

    node_id: str
    registry: RegistryFile
    rights: RightsService
    consent: ConsentService
    store: PortabilityStore
    outbound: Outbound
    audit: NodeAudit

    def _brand(self, node_id: str) -> None:
        if node_id == self.node_id:
            raise Refused("same_brand", "the data is already at this brand")
        if not self.registry.exists():  # a node in no alliance knows no brand to exchange data with
            raise UnknownBrandError(f"{node_id!r} is not a brand this node knows: it is in no alliance yet")
        self.registry.brand(node_id)  # unknown_brand for a node outside the alliance

    # --- the receiving brand ----------------------------------------------------------------------

    def expect(self, member_ref: str, sender: str) -> tuple[str, RightsRequest]:
        """Open a request to receive the member's data from ``sender``; return the one-time code for it."""
        self._brand(sender)
        req = self.rights.open_request(
            member_ref, RequestKind.PORTABILITY, details={"direction": "receive", "brand": sender}
        )
        return self.store.issue(req.member, member_ref, sender, req.dsr_id), req

    def on_receive(self, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        """Keep what may be kept of ``sender``'s export, if the code it presents is one issued for it."""
        code = str(body.get("code") or "")
        try:
            pending = self.store.pending(code, sender)
        except CodeRefused as exc:
            raise Refused(exc.reason, str(exc)) from exc
        allowed = allowed_categories(self.consent.current_notice_or_none(), self.consent.decisions(pending.member_ref))
        plan = plan_import(body, allowed)
        if not self.store.keep(code, pending, plan.kept, plan.skipped):
            raise Refused("used_code", "this portability code was used already")
        if "phone" in plan.kept:
            record = self.consent.store.member(pending.member_ref)
            if record is not None and record.phone is None:  # a number held here already is the member's to change
                self.consent.set_phone(pending.member_ref, str(plan.kept["phone"]))
        kept_cats = sorted({FIELDS[f] for f in plan.kept})
        self.audit(
            "pi.receive",
            subject_pseudo_ids=[pending.member],
            subject_count=1,
            purpose_code=PURPOSE,
            legal_basis="legal_obligation",
            pi_categories=kept_cats,
            dsr_id=pending.dsr_id,
            details={
                "from": sender,
                "kept": ",".join(sorted(plan.kept)) or None,
                "skipped": ",".join(sorted(plan.skipped)) or None,
            },
        )
        [req] = [r for r in self.rights.requests(pending.member_ref) if r.dsr_id == pending.dsr_id]
        self.rights.complete_request(req, details={"brand": sender, "kept": ",".join(sorted(plan.kept)) or None})
        return {"kept": sorted(plan.kept), "skipped": plan.skipped}

    # --- the sending brand --------------------------------------------------------------------------

    def send(self, member_ref: str, recipient: str, code: str) -> tuple[RightsRequest, dict[str, Any]]:
        """Send the member's portable data to ``recipient`` with the code it issued them; the request is
        completed with what it kept, or refused with the reason (the recipient's, if it refused)."""
        self._brand(recipient)
        req = self.rights.open_request(
            member_ref, RequestKind.PORTABILITY, details={"direction": "send", "brand": recipient}
        )
        body = portable(self.rights.export_for(member_ref, req), code)
        try:
            response = self.outbound.post(
                recipient, PATH, json=body, fields=FIELDS, purpose=PURPOSE, members=[member_ref]
            )
        except EgressRefused as exc:
            self.rights.refuse_request(req, exc.reason, f"the data may not go to {recipient}: {exc}")
            raise AssertionError("unreachable") from exc
        except Exception as exc:  # unreachable: the member may ask again
            self.rights.refuse_request(req, "peer_unreachable", f"{recipient} could not be reached: {exc}")
            raise AssertionError("unreachable") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if response.status_code != 200:
            reason = str(answer.get("reason_code") or "peer_refused")
            self.rights.refuse_request(req, reason, f"{recipient} refused the data: {answer.get('detail') or reason}")
        kept = [str(f) for f in answer.get("kept") or []]
        req = self.rights.complete_request(
            req,
            details={
                "brand": recipient,
                "sent": ",".join(sorted(f for f in body if FIELDS[f] != "non_pi")) or None,
                "kept": ",".join(kept) or None,
            },
        )
        return req, {"kept": kept, "skipped": answer.get("skipped") or {}}
