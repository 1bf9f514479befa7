"""Churn scores at a node, only under the member's ``personalization`` consent.

The gate comes first: for a member without the consent nothing of theirs is read (no journal, no
features) and the answer is :data:`NOT_PERSONALISED`, the same for everyone. Otherwise the model the
node serves (its blend of the newest run's joint model with its own, :mod:`federation.personalise`)
scores the member's row as of today, with the main factors, and the automated decision is kept
(:mod:`compliance.decisions`: inputs, band, factors, model) and audited (PIPL Art. 24). The member may
contest it (:mod:`compliance.reviews`); while a person has not yet reviewed it, the member's scores
and the operators' at-risk list say the decision is not final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from compliance.decisions import Decision, DecisionStore, Factor
from compliance.pia import Feature, PiaRefused
from compliance.pia_service import PiaService
from compliance.reviews import Review, ReviewService
from compliance.service import ConsentDenied, ConsentService
from federation.features import FEATURES, Scaler, features
from node.core.audit import NodeAudit
from node.core.refusals import Refused
from node.learning.rows import history_from_journal
from node.learning.store import NodeModelShelf
from node.learning.vertical_store import VerticalStore
from node.wallet.store import WalletStore
from node.wallet.tiers import TierRules, default_rules

PURPOSE = "personalization"
DECISION = "churn_score"  # the kind of automated decision a member's score is
#: What every member without the consent gets, whatever their data.
NOT_PERSONALISED: dict[str, Any] = {
    "personalised": False,
    "risk": None,
    "band": None,
    "factors": [],
    "model": None,
    "note": "Scores are personalised only with your personalization consent, which you can grant or "
    "withdraw at any time (POST /v1/me/consents).",
    "cross_brand": None,
    "decision_id": None,  # no decision about the member was made
    "final": None,
    "review": None,
}


class NoModelError(Refused):
    """The node holds no global model yet (no federated run has finished a round): ``no_model``."""

    def __init__(self, message: str) -> None:
        super().__init__("no_model", message)


@dataclass
class ChurnScoring:
    """Scores from the newest global model, behind the personalization gate."""

    consent: ConsentService
    pia: PiaService
    wallets: WalletStore
    models: NodeModelShelf
    audit: NodeAudit
    points_per_yuan: int
    rules: TierRules = field(default_factory=default_rules)
    scaler: Scaler = field(default_factory=Scaler.reference)
    cross_brand: VerticalStore | None = None  # the label holder's scores from vertical runs
    decisions: DecisionStore | None = None  # where each member's decision is kept, to be explained and contested
    reviews: ReviewService | None = None  # members' contests: a pending one means the decision is not final

    def _model(self) -> tuple[dict[str, object], Any]:
        served = self.models.scoring()
        if served is None:
            raise NoModelError("no churn model yet: the node has not finished a federated round")
        return served

    def _scores(self, members: list[str], today: date) -> list[tuple[str, Any]]:
        from federation.scoring import score_rows  # torch: loaded when a score is asked for

        model, weights = self._model()
        journals = self.wallets.movements(members)
        rate = self.points_per_yuan
        rows = [features(history_from_journal(m, journals.get(m, []), today, rate, self.rules), today) for m in members]
        scored = score_rows(weights, self.scaler.transform(rows), FEATURES)
        return [
            (m, {"model": model, "score": s, "inputs": row}) for m, s, row in zip(members, scored, rows, strict=True)
        ]

    def for_member(self, member_ref: str, today: date) -> dict[str, Any]:
        """The member's own risk and factors, or :data:`NOT_PERSONALISED` without the consent (or while
        the brand's personalization switch is off: then for everyone)."""
        try:
            self.pia.require(Feature.PERSONALIZATION)  # an approved impact assessment (Art. 55)
            self.consent.check(member_ref, PURPOSE, accessor="churn_scoring")
        except (ConsentDenied, PiaRefused):
            return dict(NOT_PERSONALISED)
        member = self.consent.member_pseudonym(member_ref)
        ((_, out),) = self._scores([member], today)
        s = out["score"]
        view = _view(s, out["model"])
        details = {"decision": DECISION, "band": s.band, **out["model"]}
        if self.decisions is not None:
            decision = _decision(member, out)
            self.decisions.record(decision)  # before its audit event: an audited id always has its record
            details |= {"decision_id": decision.decision_id, "record_sha256": decision.sha256()}
            view["decision_id"] = decision.decision_id
        self.audit(
            "adm.decide",
            subject_pseudo_ids=[member],
            purpose_code=PURPOSE,
            legal_basis="consent",
            details=details,
        )
        view |= _review_state(self.reviews.latest(member, DECISION) if self.reviews else None)
        found = self.cross_brand.latest_score(member) if self.cross_brand is not None else None
        if found is not None:
            view["cross_brand"] = {"run": found[0], "risk": round(found[1], 4)}
        return view

    def at_risk(self, today: date, limit: int = 50, min_risk: float = 0.6) -> dict[str, Any]:
        """The members with consent whose risk is at least ``min_risk``, highest first (pseudonyms only);
        :class:`PiaRefused` while the personalization switch is off."""
        self.pia.require(Feature.PERSONALIZATION)
        cohort = self.consent.cohort(PURPOSE)
        scored = self._scores(cohort, today) if cohort else []
        risky = sorted((x for x in scored if x[1]["score"].risk >= min_risk), key=lambda x: -x[1]["score"].risk)
        shown = risky[:limit]
        reviewed = self.reviews.latest_by_member(DECISION) if self.reviews and shown else {}
        model = shown[0][1]["model"] if shown else (scored[0][1]["model"] if scored else None)
        self.audit(
            "adm.decide",
            purpose_code=PURPOSE,
            legal_basis="consent",
            subject_count=len(cohort),
            record_count=len(shown),
            details={"decision": "churn_at_risk_list", "min_risk": min_risk},
        )
        return {
            "model": model,
            "scored": len(cohort),
            "at_risk": len(risky),
            "members": [{"member": m, **_view(x["score"], None), **_review_state(reviewed.get(m))} for m, x in shown],
        }


def _decision(member: str, out: dict[str, Any]) -> Decision:
    from federation.scoring import BANDS

    s = out["score"]
    return Decision(
        member=member,
        kind=DECISION,
        result=s.band,
        choices=tuple(name for _, name in BANDS),
        inputs=dict(zip(FEATURES, out["inputs"], strict=True)),
        factors=tuple(Factor(f.feature, round(f.effect, 4)) for f in s.factors),
        model=dict(out["model"]),
        score=round(s.risk, 4),
    )


def _review_state(review: Review | None) -> dict[str, Any]:
    """Whether the member's score decision is final: not while a person has yet to review it."""
    return {"final": review is None or not review.pending, "review": review.note() if review else None}


def _view(score: Any, model: dict[str, Any] | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "personalised": True,
        "risk": round(score.risk, 4),
        "band": score.band,
        "factors": [
            {"feature": f.feature, "effect": round(f.effect, 4), "direction": "raises" if f.effect > 0 else "lowers"}
            for f in score.factors
        ],
    }
    if model is not None:
        view["model"] = model
    return view
