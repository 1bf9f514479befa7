"""Write the legacy canonical-JSON fixture: data signed and hashed by the code BEFORE ``ledger.canonical``.

Run once, against the old commit (see README.md), never against newer code: the point of the
fixture is that it was written by the encoders that existed before there was one canonical
function, so the tests in ``tests/test_canonical_json.py`` prove that data written then still
verifies now. Re-running it against new code would only prove that new code agrees with itself.

    git -C /work/main worktree add /tmp/canon-base <old commit>
    cd /tmp && PYTHONPATH=/tmp/canon-base /work/main/.venv/bin/python \\
        /work/main/tests/data/legacy/make_fixture.py /work/main/tests/data/legacy

It builds a throwaway node in a temporary directory (its private key never leaves it), publishes a
notice with Chinese text, registers a member who grants and withdraws consents (signed receipts),
records audit events with non-ASCII text, floats and awkward characters, submits an impact
assessment, appends two committed exchanges (signed quotes and receipts, one in each direction
with a second throwaway brand), signs a settlement statement, issues a member token, writes an
audit bundle and exports the ``audit`` and ``exchange`` logs.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import compliance
from compliance.audit import AuditFilter
from compliance.consent import ConsentAction
from compliance.notices import parse_notice
from compliance.pia import Assessment
from ledger import note
from ledger.export import export_log
from node.core.auth import issue_member_token
from node.core.datadir import init_node
from node.exchange.quotes import make_quote, sign_quote
from node.exchange.records import CommittedExchange, sign_receipt
from node.peers.registry import Brand
from node.runtime import Node
from node.settlement.statements import (
    Exchange,
    Window,
    bilateral_digest,
    sign_statement,
    statement,
    statement_to_json,
)

NODE_ID = "n.example"
PEER_ID = "p.example"
MEMBER = "m-0001"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
HANDLER = "\u5929\u7a7a\u822a\u7a7a\u80a1\u4efd\u6709\u9650\u516c\u53f8"  # a company name in Chinese
STAFF = "\u9648\u9759"  # a staff member named in Chinese
# Awkward text for the encoders: CJK, an accent, a BMP symbol with a variation selector, an astral
# character (a surrogate pair when escaped), U+2028, DEL, a quote and a backslash.
AWKWARD = '\u4e2d\u6587 caf\u00e9 \u2708\ufe0f \U0001d11e \u2028 \x7f " \\ </script>'

NOTICE = {
    "version": 1,
    "language": "zh-CN",
    "published_at": "2026-11-01T00:00:00+00:00",
    "handler": {"name": HANDLER, "contact": "privacy@airline.example", "uscc": "91310000MA1FL0000X"},
    "purposes": {
        "loyalty.core": {
            "description": "\u4fdd\u7559\u60a8\u7684\u91cc\u7a0b\uff1a"
            "\u7d2f\u79ef\u3001\u5151\u6362\u3001\u8fc7\u671f\u4e0e\u7b49\u7ea7\u3002",
            "pi_categories": ["identity.pseudonym", "loyalty.balance", "loyalty.transactions"],
            "methods": ["storage", "computation"],
            "retention": "\u8d26\u6237\u5b58\u7eed\u671f\u95f4\u53ca\u5176\u540e\u4e09\u5e74",
            "at_expiry": "\u5220\u9664\u6216\u533f\u540d\u5316\u7528\u4e8e\u7edf\u8ba1",
        },
        "points_exchange:": {
            "description": "\u5c06\u79ef\u5206\u8f6c\u5165\u60a8\u6307\u5b9a"
            "\u7684\u5408\u4f5c\u54c1\u724c \u2708\ufe0f",
            "pi_categories": ["identity.pseudonym", "loyalty.transactions"],
            "methods": ["provision"],
            "retention": "3 years after the exchange",
            "at_expiry": "deleted",
        },
        "joint_modeling": {
            "description": "Train alliance churn models without sharing raw data.",
            "pi_categories": ["identity.pseudonym", "loyalty.transactions"],
            "methods": ["fl_training"],
            "retention": "1 year",
            "at_expiry": "excluded from training and deleted",
        },
        "marketing": {
            "description": "\u65b0\u95fb\u4e0e\u4f18\u60e0\u4fe1\u606f \U0001d11e",
            "pi_categories": ["contact.basic"],
            "methods": ["contact"],
            "retention": "until you withdraw",
            "at_expiry": "deleted",
        },
    },
    "rights": {
        "access": "GET /v1/me/data",
        "get_copy": "GET /v1/me/data?format=json",
        "transfer": "POST /v1/me/transfer",
        "correct": "POST /v1/me/corrections",
        "delete": "POST /v1/me/erasure",
        "restrict": "POST /v1/me/consents (withdraw)",
        "close_account": "POST /v1/me/erasure",
        "withdraw_consent": "POST /v1/me/consents/withdraw",
        "complaint": "privacy@airline.example",
    },
    "pi_collected": ["identity.pseudonym", "contact.basic", "loyalty.balance", "loyalty.transactions"],
    "pi_shared": [],
    "changes": "\u9996\u7248",
}

ASSESSMENT = {
    "title": "\u79ef\u5206\u5151\u6362 Points exchange with partner brands",
    "features": ["points_exchange"],
    "purposes": ["points_exchange:"],
    "legitimacy": "\u6bcf\u4e2a\u63a5\u6536\u54c1\u724c\u5355\u72ec\u540c\u610f (PIPL Art. 23).",
    "necessity": "Only a pairwise pseudonym and the points moved are sent.",
    "impact": "Cross-brand linkage if exchange records were combined.",
    "likelihood": "low",
    "risk_level": "medium",
    "measures": ["Pairwise pseudonyms, the consent gate, audited transfers."],
}


def _brand(node_id: str, vkey: str, value: str, fee: str) -> Brand:
    return Brand(
        node_id=node_id,
        name=f"{node_id} \u54c1\u724c",
        vkey=vkey,
        url=f"https://{node_id}",
        point_value_fen=Decimal(value),
        exchange_fee=Decimal(fee),
    )


def _write_json(path: Path, obj: object) -> None:
    # the fixture's own index files: readable, not canonical (the canonical bytes are inside them)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def _exchanges(node: Node, peer: note.Signer, src: Brand, dst: Brand) -> list[Exchange]:
    """Two committed exchanges on the node's exchange log: one out to the peer, one in from it."""
    out_quote = make_quote(1000, src, dst, T0)
    out = CommittedExchange(out_quote, "lnk-0001", sign_quote(out_quote, node.signer), sign_receipt(out_quote, peer))
    in_quote = make_quote(333, dst, src, T0 + timedelta(minutes=5))
    inc = CommittedExchange(in_quote, "lnk-0002", sign_quote(in_quote, peer), sign_receipt(in_quote, node.signer))
    node.store.log("exchange").append([out.entry(), inc.entry()])
    return [
        Exchange(
            q.quote_id,
            q.source,
            q.destination,
            q.points_given,
            q.points_received,
            q.credited_fen,
            q.fee_fen,
            q.remainder_fen,
            q.issued_at,
        )
        for q in (out_quote, in_quote)
    ]


def main(out_dir: Path) -> None:
    """Build the node in a temporary directory and write the fixture files into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "node"
        init_node(data_dir, NODE_ID)
        node = Node.open(data_dir)
        peer = note.Signer.generate(PEER_ID)
        (out_dir / "node.vkey").write_text(node.signer.verifier().to_vkey() + "\n")
        (out_dir / "peer.vkey").write_text(peer.verifier().to_vkey() + "\n")

        # the notice (Chinese text) and consents pinned to it, each change with a signed receipt
        node.consent.publish_notice(parse_notice(NOTICE))
        (out_dir / "notice-v1.json").write_bytes(node.consent.store.notice_text(1).encode("utf-8"))
        pseudonym = node.consent.register_member(MEMBER)
        receipts = [
            node.consent.change(MEMBER, ["marketing", "joint_modeling"], ConsentAction.GRANT),
            node.consent.change(MEMBER, [f"points_exchange:{PEER_ID}"], ConsentAction.GRANT),
            node.consent.change(MEMBER, ["marketing"], ConsentAction.WITHDRAW),
        ]
        records = [
            {
                "consent_id": r.consent_id,
                "purpose_code": r.purpose_code,
                "action": r.action.value,
                "notice_version": r.notice_version,
                "notice_sha256": r.notice_sha256,
            }
            for r in node.consent.store.history(pseudonym)
        ]
        _write_json(out_dir / "consents.json", {"member": pseudonym, "records": records, "receipts": receipts})

        # audit events with awkward text, floats and a staff actor named in Chinese
        node.audit(
            "config.change",
            actor={"type": "staff", "id": STAFF, "role": "compliance"},
            reason_code="\u663e\u793a\u540d\u79f0",
            details={"setting": "display_name", "value": AWKWARD, "ratio": 0.1, "big": 1e16, "tiny": 1e-07},
        )
        node.audit("incident.detected", outcome="error", details={"note": "\U0001f600 \u8868\u60c5 \t tab", "count": 3})

        # an impact assessment: its hash is pinned by approvals and the audit trail
        assessment = Assessment.model_validate(ASSESSMENT)
        node.pia.submit(assessment, author=STAFF)
        pinned = {"assessment": assessment.model_dump(mode="json"), "sha256": assessment.sha256}
        _write_json(out_dir / "pia.json", pinned)

        # committed exchanges on the exchange log, and the statement settling them
        src = _brand(NODE_ID, node.signer.verifier().to_vkey(), "1.5", "0.02")
        dst = _brand(PEER_ID, peer.verifier().to_vkey(), "0.7", "0.05")
        exchanges = _exchanges(node, peer, src, dst)
        s = statement(NODE_ID, PEER_ID, exchanges, Window(T0 - timedelta(hours=8), T0 + timedelta(hours=16)))
        _write_json(
            out_dir / "statement.json",
            {
                "statement": statement_to_json(s),
                "signature": sign_statement(s, node.signer),
                "digest": s.digest,
                "bilateral_digest": bilateral_digest(s).hex(),
            },
        )

        # a member token (its claims are signed JSON); checked with now = its iat
        (out_dir / "member-token.txt").write_text(
            issue_member_token(node.signer, "\u4f1a\u5458-0001", now=T0.timestamp()) + "\n"
        )

        # the audit bundle first (it appends its own audit.export event), then the full log exports
        with open(out_dir / "audit-bundle.jsonl", "wb") as f:
            node.audit.export(AuditFilter(), f)
        for log_name in ("audit", "exchange"):
            with open(out_dir / f"{log_name}.export.jsonl", "wb") as f:
                export_log(node.store.log(log_name), node.signer, f)
        node.dispose()
    print(f"fixture written to {out_dir} by the code in {Path(compliance.__file__).parent.parent}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
