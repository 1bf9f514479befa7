"""The CDNOW base as brands' churn data: features to the end of 1997, churned = no purchase in 1998H1.

Used by the federation benchmark, straight from the purchase file (no node in between): the
node's own rows come from its wallet journal (``node.churn_rows``), which holds the same purchases
rounded to the yuan and without item counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from federation.features import MemberHistory, Purchase, Scaler, dataset
from federation.simulate import Brand
from node.demo import cdnow

CUTOFF = date(1997, 12, 31)
HORIZON_END = date(1998, 6, 30)


def histories(
    purchases: Iterable[cdnow.Purchase], profiles: dict[str, list[tuple[str, int]]] = cdnow.PROFILES
) -> dict[str, list[MemberHistory]]:
    """Each brand's customers (split as the demo splits them), one history each; 1 point per yuan."""
    by_customer: dict[str, list[cdnow.Purchase]] = defaultdict(list)
    for p in purchases:
        by_customer[p.customer_id].append(p)
    brand_of = cdnow.split_customers([ps[0] for ps in by_customer.values()], profiles)
    out: dict[str, list[MemberHistory]] = {name: [] for name, _ in next(iter(profiles.values()))}
    for cid, ps in by_customer.items():
        earned = sum(p.amount_fen // 100 for p in ps if p.day <= CUTOFF)
        out[brand_of[cid]].append(
            MemberHistory(cid, tuple(Purchase(p.day, p.amount_fen, p.cds) for p in ps), earned, 0, earned)
        )
    return out


def churn_brands(
    profiles: dict[str, list[tuple[str, int]]] = cdnow.PROFILES, purchases: Iterable[cdnow.Purchase] | None = None
) -> list[Brand]:
    """The brands' scaled rows and labels, with the alliance's reference scaling."""
    scaler = Scaler.reference()
    brands = []
    for name, hs in histories(purchases if purchases is not None else cdnow.purchases(), profiles).items():
        _, rows, labels = dataset(hs, CUTOFF, HORIZON_END)
        brands.append(Brand(name, scaler.transform(rows), labels))
    return brands
