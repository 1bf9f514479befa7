"""Churn scores at a node, only under the member's ``personalization`` consent.

The gate comes first: for a member without the consent nothing of theirs is read (no journal, no
features) and the answer is :data:`NOT_PERSONALISED`, the same for everyone. Otherwise the model the
node serves (its blend of the newest run's joint model with its own, :mod:`federation.personalise`)
scores the member's row as of today, with the main factors, and the automated decision is audited
(PIPL Art. 24).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from compliance.pia import Feature, PiaRefused
from compliance.pia_service import PiaService
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
        return [(m, {"model": model, "score": s}) for m, s in zip(members, scored, strict=True)]

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
        self.audit(
            "adm.decide",
            subject_pseudo_ids=[member],
            purpose_code=PURPOSE,
            legal_basis="consent",
            details={"decision": "churn_score", "band": s.band, **out["model"]},
        )
        view = _view(s, out["model"])
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
            "members": [{"member": m, **_view(x["score"], None)} for m, x in shown],
        }


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
