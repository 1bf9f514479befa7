"""The demo's compliance phase: a notice per brand, members onboarded, a realistic consent mix,
one rights request of each kind, a refused provision, and audit bundles verified offline."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime

from compliance.audit import AuditFilter
from compliance.audit_bundle import verify_bundle
from compliance.consent import ConsentAction
from compliance.notices import Notice, parse_notice
from compliance.pia import Feature, PiaRefused, example_assessment
from compliance.service import ConsentChange, ConsentDenied
from node.core.auth import Caller, Role, current_caller
from node.peers.outbound import EgressRefused
from node.runtime import Node

# Share of members who opt in to each optional purpose (the rest decline: no record, nothing on).
CONSENT_MIX: dict[str, int] = {"joint_modeling": 60, "personalization": 45, "marketing": 20, "points_exchange:": 35}
WITHDRAW_MODELING = 3  # percent of members who later withdraw joint_modeling
BATCH = 1000


def _roll(member_ref: str, purpose: str) -> int:
    """A stable pseudo-random percentile for this member and purpose."""
    return int.from_bytes(hashlib.sha256(f"{member_ref}|{purpose}".encode()).digest()[:4], "big") % 100


#: The example notice's words, in Chinese (what members read) and in English (kept as an option).
#: Per purpose: (description, retention, at expiry); then the two kinds of provision to partners.
NOTICE_TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "zh-CN": {
        "loyalty.core": ("运营会员积分计划", "账户存续期间，注销后再保留 3 年", "删除或匿名化"),
        "points_exchange:": ("将积分转至您指定的合作品牌", "3 年", "删除"),
        "joint_modeling": ("以联邦学习和差分隐私训练联盟会员流失预测模型", "1 年", "不再用于训练"),
        "joint_modeling:": (
            "与您指定的合作品牌共同训练流失预测模型，覆盖双方共同的会员：您的手机号以隐私集合求交方式匹配"
            "（任何一方都无法得知对方还有哪些会员），双方的特征在差分隐私保护下合并",
            "训练期间；评分保留 1 年",
            "每次训练后删除匹配结果；评分删除",
        ),
        "personalization": ("为您挑选优惠", "1 年", "删除标签"),
        "marketing": ("向您发送优惠信息", "直至您撤回同意", "删除"),
        "shared": ("积分兑换", "基于双方共同会员的联合建模"),
    },
    "en": {
        "loyalty.core": (
            "Run the loyalty programme",
            "while the account is open, then 3 years",
            "deleted or anonymised",
        ),
        "points_exchange:": ("Move points to a partner brand you name", "3 years", "deleted"),
        "joint_modeling": (
            "Alliance churn models by federated learning with differential privacy",
            "1 year",
            "excluded from training",
        ),
        "joint_modeling:": (
            "A churn model trained with a partner brand you name, over members of both: your phone "
            "number is matched by private set intersection (neither brand learns who else is a member "
            "there), then each brand's features are combined under differential privacy",
            "for the run; scores 1 year",
            "alignment dropped after each run; scores deleted",
        ),
        "personalization": ("Offers chosen for you", "1 year", "tags deleted"),
        "marketing": ("Messages about offers", "until withdrawn", "deleted"),
        "shared": ("points exchange", "joint modeling over shared members"),
    },
}
PURPOSE_TERMS = {  # the PI categories and methods each purpose of the example notice uses
    "loyalty.core": (
        ["identity.pseudonym", "loyalty.balance", "loyalty.transactions", "purchase.history"],
        ["storage", "computation"],
    ),
    "points_exchange:": (["identity.pseudonym", "loyalty.transactions"], ["provision"]),
    "joint_modeling": (["identity.pseudonym", "purchase.history"], ["fl_training"]),
    "joint_modeling:": (
        [
            "identity.pseudonym",
            "contact.basic",
            "loyalty.balance",
            "loyalty.transactions",
            "purchase.history",
            "derived.scores",
        ],
        ["provision", "fl_training"],
    ),
    "personalization": (["purchase.history", "derived.scores"], ["adm"]),
    "marketing": (["contact.basic"], ["contact"]),
}


def notice_for(node: Node, partners: list[str], language: str = "zh-CN") -> Notice:
    """The brand's first privacy notice, with every PIPL Art. 17 field, in ``language`` (zh-CN or en)."""
    name = node.settings.display_name or node.settings.node_id
    contact = f"privacy@{node.settings.node_id}"
    texts = NOTICE_TEXTS[language]
    purposes = {
        code: {
            "description": texts[code][0],
            "pi_categories": categories,
            "methods": methods,
            "retention": texts[code][1],
            "at_expiry": texts[code][2],
        }
        for code, (categories, methods) in PURPOSE_TERMS.items()
    }
    exchange_purpose, modeling_purpose = texts["shared"]
    return parse_notice(
        {
            "version": 1,
            "language": language,
            "published_at": datetime.now(UTC).isoformat(),
            "handler": {"name": name, "contact": contact},
            "purposes": purposes,
            "rights": {
                "access": "POST /v1/me/access-requests",
                "get_copy": "POST /v1/me/access-requests",
                "transfer": contact,
                "correct": "POST /v1/me/corrections",
                "delete": "POST /v1/me/erasure",
                "restrict": "POST /v1/me/consents (withdraw)",
                "close_account": "POST /v1/me/erasure",
                "withdraw_consent": "POST /v1/me/consents (withdraw)",
                "complaint": contact,
            },
            "pi_collected": [
                "identity.pseudonym",
                "contact.basic",
                "loyalty.balance",
                "loyalty.transactions",
                "purchase.history",
                "derived.scores",
            ],
            "pi_shared": [
                {
                    "name": p,
                    "contact": f"privacy@{p}",
                    "purpose": exchange_purpose,
                    "method": "provision",
                    "pi_categories": ["identity.pseudonym", "loyalty.transactions"],
                }
                for p in partners
            ]
            + [
                {
                    "name": p,
                    "contact": f"privacy@{p}",
                    "purpose": modeling_purpose,
                    "method": "provision",
                    "pi_categories": ["contact.basic", "purchase.history", "derived.scores"],
                }
                for p in partners
            ],
        }
    )


def onboard(
    node: Node, member_refs: list[str], partners: list[str], advance: Callable[[int], None] = lambda n: None
) -> tuple[dict[str, str], Counter[str]]:
    """Publish the notice, register the members, apply the consent mix; return pseudonyms and counts.

    ``advance`` is told of members as they are registered (the demo's progress bar counts members)."""
    node.consent.publish_notice(notice_for(node, partners))
    pseudonyms: dict[str, str] = {}
    for i in range(0, len(member_refs), BATCH):
        pseudonyms |= node.consent.register_members([(m, None, None) for m in member_refs[i : i + BATCH]])
        advance(len(member_refs[i : i + BATCH]))
    counts: Counter[str] = Counter()
    changes = []
    for m in member_refs:
        chosen = []
        for purpose, share in CONSENT_MIX.items():
            targets = [f"points_exchange:{p}" for p in partners] if purpose == "points_exchange:" else [purpose]
            chosen += [t for t in targets if _roll(m, t) < share]
        counts.update(chosen)
        if chosen:
            changes.append(ConsentChange(m, tuple(chosen), ConsentAction.GRANT, collection_method="demo-app"))
    withdrawals = [
        ConsentChange(m, ("joint_modeling",), ConsentAction.WITHDRAW, collection_method="demo-app")
        for m in member_refs
        if _roll(m, "joint_modeling") < CONSENT_MIX["joint_modeling"] and _roll(m, "withdraw") < WITHDRAW_MODELING
    ]
    counts["joint_modeling (withdrawn later)"] = len(withdrawals)
    for batch in (changes, withdrawals):
        for i in range(0, len(batch), BATCH):
            node.consent.change_many(batch[i : i + BATCH])
    return pseudonyms, counts


def rights_drill(node: Node, member_refs: list[str], stranger_brand: str) -> dict[str, str]:
    """One request of each kind, and a provision the member never consented to."""
    access_ref, correct_ref, erase_ref = member_refs[:3]
    data = node.rights.access(access_ref)
    node.rights.correct(correct_ref, birth_date=date(1980, 6, 1))
    node.rights.erase(erase_ref)
    outcome = {
        "access": f"{access_ref}: {len(data['consent_history'])} consent records, "
        f"{len(data['audit_events'])} audit events",
        "correction": f"{correct_ref}: birth date corrected",
        "erasure": f"{erase_ref}: record and pseudonym key deleted",
    }
    try:
        node.consent.check(correct_ref, "points_exchange:", recipient=stranger_brand)
        outcome["gate"] = "allowed (unexpected)"
    except ConsentDenied as exc:
        outcome["gate"] = f"provision to {stranger_brand} refused: {exc.reason.value}"
    return outcome


def verify_audit_bundle(node: Node, action_family: str = "consent.") -> tuple[int, int]:
    """Export one filtered audit bundle and verify it offline; return (events, tree size)."""
    buf = io.BytesIO()
    node.audit.export(AuditFilter(action=action_family), buf)
    buf.seek(0)
    verified = verify_bundle(buf, node.signer.verifier())
    return verified.count, verified.tree_size


def assessment_drill(node: Node, partner: str, member_refs: list[str]) -> dict[str, str]:
    """Exchange stays off until an impact assessment is approved by a second officer; then egress decides.

    Returns what happened at each step, for the demo's output.
    """
    steps: dict[str, str] = {}
    token = current_caller.set(Caller(Role.COMPLIANCE, "ann"))  # audited under the officers' own names
    try:
        try:
            node.pia.enable(Feature.POINTS_EXCHANGE, "pia-none", "olga")
            steps["without assessment"] = "exchange switched on (unexpected)"
        except PiaRefused as exc:
            steps["without assessment"] = f"switching exchange on refused: {exc.reason}"
        record = node.pia.submit(example_assessment(), "ann")
        try:
            node.pia.approve(record.pia_id, "ann")
        except PiaRefused as exc:
            steps["self-approval"] = f"refused: {exc.reason}"
        current_caller.set(Caller(Role.COMPLIANCE, "bo"))
        approved = node.pia.approve(record.pia_id, "bo")
        current_caller.set(Caller(Role.OPERATOR, "olga"))
        for feature in (Feature.POINTS_EXCHANGE, Feature.JOINT_MODELING):
            node.pia.enable(feature, record.pia_id, "olga")
        steps["assessment"] = f"{record.pia_id} approved by bo, expires {approved.expires_at:%Y-%m-%d}; exchange on"
    finally:
        current_caller.reset(token)
    fields = {"member": "identity.pseudonym", "points": "loyalty.transactions"}
    consenting = [
        m for m in member_refs[3:] if _roll(m, f"points_exchange:{partner}") < CONSENT_MIX["points_exchange:"]
    ]
    declining = [
        m for m in member_refs[3:] if _roll(m, f"points_exchange:{partner}") >= CONSENT_MIX["points_exchange:"]
    ]
    for label, member in (("consenting member", consenting[0]), ("declining member", declining[0])):
        try:
            permit = node.outbound.authorize(partner, fields, set(fields), purpose="points_exchange", members=[member])
            steps[f"egress, {label}"] = f"provision to {partner} allowed: {permit.decision.reason.value}"
        except EgressRefused as exc:
            steps[f"egress, {label}"] = f"provision to {partner} refused: {exc.decision.reason.value}"
    return steps
