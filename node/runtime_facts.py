"""Read the facts an impact-assessment report states from a running node's settings and stores."""

from __future__ import annotations

from datetime import UTC, datetime

from compliance.pia_report import MechanismFact, PeerFact, ReportFacts
from compliance.rights import Step
from node.runtime import Node


def gather(node: Node, now: datetime | None = None) -> ReportFacts:
    """Everything :func:`compliance.pia_report.document` needs, as of ``now``."""
    now = now or datetime.now(UTC)
    s = node.settings
    store = node.consent.store
    notice = node.consent.current_notice_or_none()
    general, sensitive = node.xborder.counts(now.year)
    requests = store.requests()
    open_requests = [r for r in requests if r.state not in (Step.COMPLETED, Step.REFUSED)]
    return ReportFacts(
        generated_at=now,
        node_id=s.node_id,
        display_name=s.display_name,
        region=s.region,
        allowed_regions=tuple(s.allowed_regions),
        peers=tuple(PeerFact(p.node_id, p.region, p.url) for p in s.peers),
        notice_version=notice.version if notice else None,
        notice_sha256=notice.sha256() if notice else None,
        pipo_contact=(notice.handler.pipo_contact or None) if notice else None,
        members=store.member_count(),
        consents=store.consent_tally(),
        xborder_year=now.year,
        xborder_general=general,
        xborder_sensitive=sensitive,
        xborder_required=node.xborder.required(now.year),
        mechanisms=tuple(
            MechanismFact(m.country, m.mechanism, m.reference, f"{m.valid_until:%Y-%m-%d}")
            for m in node.mechanisms.all()
        ),
        assessments=tuple(node.pia.all()),
        switches=node.pia.switches(now),
        open_requests=len(open_requests),
        overdue_requests=sum(r.overdue(now.date()) for r in open_requests),
    )
