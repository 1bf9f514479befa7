"""``federate simulate --vertical``: brands' exports of shared customers, aligned by PSI, trained vertically.

For brands deciding whether to join: each file holds one brand's columns for its customers, keyed
by the shared identifier; exactly one file has the label (its brand is the label holder). The
members are aligned by the same PSI the nodes run (:mod:`federation.psi`, one run per partner,
in this process), and on the same held-out members of the intersection four models are judged:

- the label holder alone, on its own columns;
- vertical with DP (:mod:`federation.vertical_server`, :mod:`federation.vertical_client`, in-process Grid);
- vertical without DP (what DP costs);
- every brand's columns pooled, no DP (what nobody may build).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from federation.inprocess import InProcessGrid
from federation.psi import DEFAULT_MINIMUM, intersect
from federation.site import MemoryPrivacyBook
from federation.vertical_client import PartnerSite, make_partner_app
from federation.vertical_server import LabelSite, VerticalReport, VerticalSettings, judge_top, run_vertical


@dataclass(frozen=True)
class VerticalBrand:
    """One brand's export: the shared identifier per row, its encoded columns, and labels if it holds them."""

    name: str
    ids: list[str]
    x: list[list[float]]
    y: list[int] | None = None

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.x) or (self.y is not None and len(self.y) != len(self.x)):
            raise ValueError(f"{self.name}: one id (and label) per row")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"{self.name}: an id appears on more than one row")


@dataclass
class VerticalResult:
    """The comparison on the intersection's held-out members."""

    intersection: int
    brands: list[dict[str, object]]
    auc_alone: float
    auc_vertical: float
    auc_vertical_nodp: float
    auc_centralized: float
    report: VerticalReport

    def to_json(self) -> dict[str, object]:
        """The documented output of ``federate simulate --vertical --json``."""
        return {
            "mode": "vertical",
            "intersection": self.intersection,
            "brands": self.brands,
            "auc_alone": round(self.auc_alone, 4),
            "auc_vertical": round(self.auc_vertical, 4),
            "auc_vertical_nodp": round(self.auc_vertical_nodp, 4),
            "auc_centralized": round(self.auc_centralized, 4),
            "members": self.report.members,
            "contributions": {k: round(v, 4) for k, v in self.report.contributions.items()},
            "partners_used": self.report.used,
            "rounds": self.report.settings.rounds,
            "epsilon_target": self.report.settings.epsilon,
        }


def simulate_vertical(
    brands: Sequence[VerticalBrand],
    settings: VerticalSettings,
    minimum: int = DEFAULT_MINIMUM,
    progress: Callable[[str], None] | None = None,
) -> VerticalResult:
    """Align, train with and without DP, and judge against alone and pooled."""
    say = progress or (lambda _m: None)
    holders = [b for b in brands if b.y is not None]
    if len(holders) != 1:
        raise ValueError(f"exactly one file holds the label; {len(holders)} do")
    if len(brands) < 2:
        raise ValueError("a vertical model needs the label holder and at least one partner")
    holder = holders[0]
    partners = [b for b in brands if b is not holder]
    aliases: dict[str, dict[str, str]] = {}
    partner_rows: dict[str, dict[str, list[float]]] = {}
    common: set[str] | None = None
    for partner in partners:
        say(f"private set intersection with {partner.name}")
        mine, theirs = intersect([i.encode() for i in holder.ids], [i.encode() for i in partner.ids], minimum)
        keys = {align: holder.ids[row] for align, row in mine.ids.items()}
        aliases[partner.name] = {member: align for align, member in keys.items()}
        partner_rows[partner.name] = {align: partner.x[row] for align, row in theirs.ids.items()}
        common = set(aliases[partner.name]) if common is None else common & set(aliases[partner.name])
    members = sorted(common or ())
    if len(members) < minimum:
        raise ValueError(f"{len(members)} customers are in every file, fewer than the minimum of {minimum}")
    assert holder.y is not None
    index = {m: i for i, m in enumerate(holder.ids)}
    x = {m: holder.x[index[m]] for m in members}
    y = {m: holder.y[index[m]] for m in members}

    split_key = f"simulation-{settings.seed}"

    def run(dp: bool) -> VerticalReport:
        say("vertical " + ("with DP" if dp else "without DP"))
        sites = {
            p.name: PartnerSite(p.name, lambda _run, n=p.name: partner_rows[n], MemoryPrivacyBook(settings.epsilon),
                                epsilon=settings.epsilon, delta=settings.delta, dp=dp)
            for p in partners
        }
        # the same split in both runs and for pooling (a simulation: nobody here to keep it from)
        label = LabelSite(holder.name, x, y, MemoryPrivacyBook(settings.epsilon), aliases, split_key=split_key)
        app = make_partner_app(lambda ctx: sites[str(ctx.node_config["brand"])])
        grid = InProcessGrid(app, [{"brand": p.name} for p in partners])
        flower = logging.getLogger("flwr")
        level = flower.level
        flower.setLevel(logging.WARNING)
        try:
            return run_vertical(grid, replace(settings, dp=dp, run=f"{settings.run}-{'dp' if dp else 'nodp'}"), label)
        finally:
            flower.setLevel(level)

    with_dp, without = run(True), run(False)
    say("pooled")
    pooled = _pooled(holder, partners, members, aliases, partner_rows, settings, split_key)
    spent = {r_brand: eps for r in with_dp.rounds for r_brand, eps in r.epsilon.items()}
    listed: list[dict[str, object]] = [
        {"name": holder.name, "rows": len(holder.ids), "label_holder": True, "epsilon": _round(spent.get(holder.name))},
        *({"name": p.name, "rows": len(p.ids), "label_holder": False, "epsilon": _round(spent.get(p.name))}
          for p in partners),
    ]
    return VerticalResult(len(members), listed, with_dp.auc_alone, with_dp.auc_vertical, without.auc_vertical,
                          pooled, with_dp)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _pooled(
    holder: VerticalBrand,
    partners: Sequence[VerticalBrand],
    members: Sequence[str],
    aliases: Mapping[str, Mapping[str, str]],
    partner_rows: Mapping[str, Mapping[str, list[float]]],
    settings: VerticalSettings,
    split_key: str,
) -> float:
    """Every column in one place, judged on the same held-out members as the vertical runs."""
    assert holder.y is not None
    index = {m: i for i, m in enumerate(holder.ids)}
    x = {
        m: [*holder.x[index[m]], *(v for p in partners for v in partner_rows[p.name][aliases[p.name][m]])]
        for m in members
    }
    label = LabelSite(holder.name, x, {m: holder.y[index[m]] for m in members}, MemoryPrivacyBook(0.0),
                      split_key=split_key)
    return judge_top(label, settings)
