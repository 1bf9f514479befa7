"""A node as a federated-learning site: the one consent-gated read path into training.

:class:`ConsentGatedLoader` is the only way a Flower ClientApp reaches the node's data. Every
round it first asks the consent service for the ``joint_modeling`` cohort (members with consent,
not minors, not erased), then reads the wallet journals of those members and no one else, builds
one row per member and keeps a stable quarter of them (by a hash of the pseudonym) for
evaluation. A member who withdraws is out of the next round; the round's manifest (count and
hash of the pseudonyms) goes to the audit log with the epsilon spent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from compliance.pia import Feature, PiaRefused
from compliance.pia_service import PiaService
from compliance.service import ConsentService
from federation.features import FEATURES, Scaler, dataset
from federation.site import BrandData, RoundRefused, Site
from node.core.audit import NodeAudit
from node.learning.rows import ChurnWindow, history_from_journal
from node.learning.store import PURPOSE, NodeModelShelf, NodePrivacyBook
from node.wallet.store import WalletStore
from node.wallet.tiers import TierRules, default_rules

HELD_OUT_PERCENT = 25
_HOLDOUT_DOMAIN = b"alliance-holdout/1\n"


def held_out(member: str, percent: int = HELD_OUT_PERCENT) -> bool:
    """Whether ``member`` is one of the evaluation rows: stable across rounds and runs."""
    digest = hashlib.sha256(_HOLDOUT_DOMAIN + member.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


@dataclass
class ConsentGatedLoader:
    """Training rows of the members the gate allows for ``purpose``, read fresh for every round."""

    consent: ConsentService
    wallets: WalletStore
    points_per_yuan: int
    window: ChurnWindow
    scaler: Scaler = field(default_factory=Scaler.reference)
    purpose: str = PURPOSE
    rules: TierRules = field(default_factory=default_rules)
    reads: list[frozenset[str]] = field(default_factory=list)  # whose journals each call read (for tests)

    def __call__(self) -> BrandData:
        """The rows of this round."""
        cohort = self.consent.cohort(self.purpose)
        journals = self.wallets.movements(cohort)
        self.reads.append(frozenset(journals))
        rate = self.points_per_yuan
        histories = [
            history_from_journal(m, journals[m], self.window.cutoff, rate, self.rules) for m in cohort if m in journals
        ]
        members, rows, labels = dataset(histories, self.window.cutoff, self.window.horizon_end)
        scaled = self.scaler.transform(rows)
        train = [i for i, m in enumerate(members) if not held_out(m)]
        test = [i for i, m in enumerate(members) if held_out(m)]
        return BrandData(
            [scaled[i] for i in train],
            [labels[i] for i in train],
            [scaled[i] for i in test],
            [labels[i] for i in test],
            tuple(members[i] for i in train),
        )


class SiteAudit:
    """Maps the ClientApp's round events to the node's audit actions (PIPL checklist section 2)."""

    def __init__(self, audit: NodeAudit, purpose: str = PURPOSE) -> None:
        self.audit, self.purpose = audit, purpose

    def __call__(self, event: str, details: Mapping[str, object]) -> None:
        """Append the audit events for ``event``."""
        d = dict(details)
        common: dict[str, Any] = {"purpose_code": self.purpose, "legal_basis": "consent"}
        ids = {"run": str(d.get("run")), "round": int(d.get("round", 0))}  # type: ignore[call-overload]
        if event == "federation.round_trained":
            events: list[tuple[str, dict[str, Any]]] = [
                (
                    "fl.round.contribute",
                    common
                    | {
                        "subject_count": d["count"],
                        "record_count": d["count"],
                        "details": ids | {"members_sha256": d["members_sha256"], "dp": bool(d["dp"])},
                    },
                ),
            ]
            if d.get("dp"):
                events.append(
                    (
                        "dp.budget_spend",
                        common
                        | {
                            "details": ids | {"epsilon": d["epsilon"], "delta": d["delta"]},
                        },
                    )
                )
            self.audit.many(events)
        elif event == "federation.round_refused":
            reason = str(d.get("reason"))
            action = "dp.budget_spend" if reason == "privacy budget" else "fl.round.contribute"
            extra = {k: d[k] for k in ("epsilon_spent", "epsilon_after", "epsilon_budget") if k in d}
            self.audit(action, **common, outcome="denied", reason_code=reason.replace(" ", "_"), details=ids | extra)
        else:
            raise ValueError(f"unknown federation event {event!r}")


def feature_gate(pia: PiaService) -> Callable[[], None]:
    """The joint_modeling switch: on only under an approved, unexpired impact assessment (PIPL Art. 55);
    read on every round, so switching it off stops the next one. A refusal is audited by the gate."""

    def gate() -> None:
        try:
            pia.require(Feature.JOINT_MODELING)
        except PiaRefused as exc:
            raise RoundRefused(f"joint_modeling is off at this brand ({exc.reason})") from exc

    return gate


def node_site(
    node_id: str,
    engine: Engine,
    consent: ConsentService,
    wallets: WalletStore,
    pia: PiaService,
    audit: NodeAudit,
    points_per_yuan: int,
    window: ChurnWindow,
    scaler: Scaler | None = None,
) -> tuple[Site, ConsentGatedLoader]:
    """A node as a :class:`Site`, and its loader (whose reads tests can inspect)."""
    loader = ConsentGatedLoader(consent, wallets, points_per_yuan, window, scaler or Scaler.reference())
    site = Site(
        node_id,
        loader,
        NodePrivacyBook(engine, PURPOSE),
        NodeModelShelf(engine),
        SiteAudit(audit),
        gate=feature_gate(pia),
        width=len(FEATURES),
    )
    return site, loader
