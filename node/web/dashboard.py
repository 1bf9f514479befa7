"""The operator's dashboard (``/console/dashboard``): members and the consent mix, exchanges by state
and partner, the open settlement window's net positions, points liability and breakage, and the
federated runs with each brand's AUC alone and together and the privacy budget spent and left.

It reads what the CLI's status commands read; every chart is drawn by :mod:`node.web.charts`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from node.exchange.tally import tally
from node.learning.store import NodePrivacyBook, RunOutcomes
from node.runtime import Node
from node.settlement.statements import Window
from node.web import charts
from node.web.guard import NodeDep, OperatorPage
from node.web.render import page

router = APIRouter(prefix="/console", include_in_schema=False)


def month_window(now: datetime) -> Window:
    """The open settlement window as the dashboard shows it: this calendar month (UTC) so far."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return Window(start, now + timedelta(seconds=1))


def _members(node: Node) -> dict[str, Any]:
    tally_by_purpose = node.consent.store.consent_tally()
    return {
        "count": node.consent.store.member_count(),
        "consents": sorted(tally_by_purpose.items(), key=lambda kv: (-kv[1], kv[0])),
        "chart": charts.bars("Members allowing each purpose", sorted(tally_by_purpose.items())),
    }


def _exchanges(node: Node) -> dict[str, Any]:
    rows = tally(node.store.engine)
    by_state: dict[str, int] = defaultdict(int)
    by_partner: dict[str, dict[str, int]] = defaultdict(lambda: {"out": 0, "in": 0})
    for direction, partner, state, n in rows:
        by_state[f"{direction}: {state}"] += n
        by_partner[partner][direction] += n
    return {
        "rows": rows,
        "chart": charts.bars("Exchanges by direction and state", sorted(by_state.items())),
        "partners": sorted(by_partner.items()),
    }


def _settlement(node: Node, now: datetime) -> dict[str, Any]:
    window = month_window(now)
    positions = node.settlement.positions(window)
    items = [(peer, float(fen) / 100) for peer, (fen, _) in positions.items()]
    return {
        "window": window,
        "positions": [(peer, fen, n) for peer, (fen, n) in positions.items()],
        "chart": charts.diverging("Net position with each partner this month (yuan; positive: owed to us)", items),
    }


def _learning(node: Node) -> dict[str, Any]:
    book = NodePrivacyBook(node.store.engine)
    outcomes = RunOutcomes(node.store.engine).all()
    vertical = node.vertical.runs()
    groups = [str(o["run"]) for o in outcomes] + [f"{v.run} (cross-brand)" for v in vertical if v.auc_alone]
    alone = [o["auc_alone"] for o in outcomes] + [v.auc_alone for v in vertical if v.auc_alone]
    together = [o["auc_served"] or o["auc_together"] for o in outcomes] + [
        v.auc_vertical for v in vertical if v.auc_alone
    ]
    chart = charts.grouped(
        "Held-out AUC of this brand's churn model, alone and with the alliance",
        groups,
        [("alone", alone), ("together", together)],
        low=0.5,
    )
    budget, spent = book.budget(), book.spent()
    return {
        "outcomes": outcomes,
        "vertical": vertical,
        "chart": chart,
        "budget": budget,
        "spent": spent,
        "left": max(0.0, budget - spent),
        "budget_chart": charts.bars(
            "Privacy budget (epsilon) for joint modeling", [("spent", spent), ("left", max(0.0, budget - spent))]
        ),
    }


def _liability(node: Node, now: datetime) -> Any:
    """Outstanding points and breakage, valued at the registry's point value (none outside an alliance)."""
    try:
        return node.settlement.liability(now.date())
    except (LookupError, OSError):
        return None


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, node: NodeDep, session: OperatorPage) -> HTMLResponse:
    """Everything an operator watches, as charts with their numbers beside them."""
    now = datetime.now(UTC)
    return page(
        request,
        "console/dashboard.html",
        session,
        brand=node.settings.display_name or node.settings.node_id,
        members=_members(node),
        exchanges=_exchanges(node),
        settlement=_settlement(node, now),
        liability=_liability(node, now),
        learning=_learning(node),
    )
