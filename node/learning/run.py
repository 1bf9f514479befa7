"""A federated run across nodes on this machine, in one process: the demo and `federate run`.

Each node takes part through its consent-gated site exactly as on the Deployment Engine; only
the transport differs (the in-process Grid). After the run each brand trains alone on its own rows
under the same stopping rule, blends that model with the joint one (:mod:`federation.personalise`)
and keeps the blend to score with, so the report shows what the alliance adds for each brand.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich import box
from rich.console import Console
from rich.table import Table

from federation.client_app import make_client_app
from federation.inprocess import InProcessGrid
from federation.metrics import auc
from federation.personalise import choose, with_validation
from federation.privacy import epsilon_of
from federation.server_app import BrandRound, FederationReport, RoundReport, RunSettings, run_federation
from federation.site import BrandData, RoundRefused, Site
from federation.stopping import fit
from federation.training import HIDDEN, initial_weights, kind_of, predict
from node.core.settings import NodeSettings
from node.learning.deploy import LocalFederation
from node.learning.rows import ChurnWindow
from node.learning.site import ConsentGatedLoader
from node.learning.store import NodeModelShelf, RunOutcomes

#: The brand's own model stops after this many epochs without a better validation loss, as in
#: ``federate simulate`` (its DP-free models never run to the cap).
SELF_PATIENCE = 3


class Participant(Protocol):
    """A node as a federated run needs it (:class:`node.runtime.Node` is one): its settings, and
    itself as a federated site for a churn window."""

    settings: NodeSettings

    def learning_site(self, window: ChurnWindow) -> tuple[Site, ConsentGatedLoader]:
        """The node as a site, behind its consent-gated loader."""
        ...

    def model_shelf(self) -> NodeModelShelf:
        """The node's global models and served blends."""
        ...


@dataclass
class BrandOutcome:
    """One brand at the end of a run."""

    brand: str
    train_rows: int
    test_rows: int
    auc_alone: float
    auc_together: float | None
    epsilon_spent: float | None
    epsilon_budget: float
    contribution: float | None
    refused: str | None = None
    #: the brand's served model (its blend) on the held-out rows, and the joint model's share in it
    auc_served: float | None = None
    joint_share: float | None = None

    @property
    def epsilon_remaining(self) -> float | None:
        """What is left of the budget after this run (None without DP)."""
        return None if self.epsilon_spent is None else max(0.0, self.epsilon_budget - self.epsilon_spent)


@dataclass
class NodesRun:
    """The federation's report and each brand's outcome."""

    report: FederationReport
    brands: list[BrandOutcome] = field(default_factory=list)


def in_process(
    nodes: dict[str, Participant],
    window: ChurnWindow,
    settings: RunSettings,
    on_round: Callable[[RoundReport], None] | None,
) -> FederationReport:
    """Run the apps through the in-process Grid."""
    sites: dict[str, Site] = {key: node.learning_site(window)[0] for key, node in nodes.items()}
    app = make_client_app(lambda ctx: sites[str(ctx.node_config["brand"])])
    grid = InProcessGrid(app, [{"brand": key} for key in sites])
    flower = logging.getLogger("flwr")
    level = flower.level
    flower.setLevel(logging.WARNING)  # Flower logs every step at INFO; the caller shows progress
    try:
        return run_federation(grid, settings, len(sites), on_round)
    finally:
        flower.setLevel(level)


def on_deployment_engine(work: Path, secure: bool = True) -> Runner:
    """A runner that starts a SuperLink and one SuperNode per node under ``work`` and runs the apps there."""

    def run(
        nodes: dict[str, Participant],
        window: ChurnWindow,
        settings: RunSettings,
        on_round: Callable[[RoundReport], None] | None,
    ) -> FederationReport:
        config: dict[str, Any] = {
            **{k.replace("_", "-"): v for k, v in asdict(settings).items()},
            "brands": len(nodes),
            "cutoff": window.cutoff.isoformat(),
            "horizon-end": window.horizon_end.isoformat(),
        }
        with LocalFederation(work, [n.settings.data_dir for n in nodes.values()], secure=secure) as fed:
            fed.start()
            for event in fed.run(config):
                if "report" in event:
                    return FederationReport.from_json(event["report"])
                if on_round is not None:
                    on_round(RoundReport(event["round"], [BrandRound(**b) for b in event["brands"]], 0.0))
        raise RuntimeError("the Deployment Engine run ended without a report")

    return run


Runner = Callable[
    [dict[str, Participant], ChurnWindow, RunSettings, Callable[[RoundReport], None] | None], FederationReport
]


def federate_nodes(
    nodes: dict[str, Participant],
    window: ChurnWindow,
    settings: RunSettings,
    on_round: Callable[[RoundReport], None] | None = None,
    runner: Runner = in_process,
) -> NodesRun:
    """Run ``settings`` over ``nodes`` (keyed by any label) and judge each brand alone and together."""
    report = runner(nodes, window, settings, on_round)
    sites: dict[str, Site] = {key: node.learning_site(window)[0] for key, node in nodes.items()}
    last = {b.brand: b for b in report.rounds[-1].brands} if report.rounds else {}
    outcomes = []
    for key, site in sites.items():
        try:
            site.gate()  # the brand's joint-modeling switch: closed, nothing of its members is read
            data = site.data()
        except RoundRefused:
            data = BrandData([], [], [], [])
        alone, served = _personalise(nodes[key].model_shelf(), data, settings)
        b = last.get(site.name)
        contributions = [
            x.contribution
            for r in report.rounds
            for x in r.brands
            if x.brand == site.name and x.contribution is not None
        ]
        outcomes.append(
            BrandOutcome(
                brand=site.name,
                train_rows=len(data.y_train),
                test_rows=len(data.y_test),
                auc_alone=alone,
                auc_together=b.auc if b else None,
                epsilon_spent=_spent(site, settings),
                epsilon_budget=site.privacy.budget(),
                contribution=sum(contributions) / len(contributions) if contributions else None,
                refused=b.refused if b else None,
                auc_served=served[0] if served else None,
                joint_share=served[1] if served else None,
            )
        )
    for key, outcome in zip(sites, outcomes, strict=True):
        RunOutcomes(nodes[key].model_shelf().engine).record(
            settings.run,
            auc_alone=_finite(outcome.auc_alone),
            auc_together=_finite(outcome.auc_together),
            auc_served=_finite(outcome.auc_served),
            epsilon_spent=outcome.epsilon_spent,
            epsilon_budget=outcome.epsilon_budget,
            test_rows=outcome.test_rows,
        )
    return NodesRun(report, outcomes)


def _finite(value: float | None) -> float | None:
    """A measure worth keeping (``None`` for none, or NaN: a brand with nothing to test on)."""
    return None if value is None or math.isnan(value) else value


def _personalise(
    shelf: NodeModelShelf, rows: BrandData, settings: RunSettings
) -> tuple[float, tuple[float, float] | None]:
    """The brand alone (the stopping rule on a validation fifth of its training rows) and, when it holds
    the run's joint model, its blend of the two, kept to score with: the AUC alone, and the blend's AUC
    and joint share."""
    data = with_validation(rows, seed=settings.seed)
    if not data.x_train or len(set(data.y_test)) < 2:
        return float("nan"), None
    latest = shelf.latest()
    joint = latest[2] if latest is not None and latest[0] == settings.run else None
    kind = kind_of(joint) if joint is not None else (settings.model, HIDDEN)
    own = fit(
        initial_weights(len(data.x_train[0]), settings.seed, *kind),
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        max_epochs=settings.rounds * settings.epochs,
        patience=SELF_PATIENCE,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed,
    ).weights
    alone = auc(data.y_test, predict(own, data.x_test))
    if joint is None or latest is None:
        return alone, None
    chosen = choose(own, joint, data.x_val, data.y_val)
    shelf.serve(settings.run, latest[1], chosen.share, len(data.y_train), chosen.weights)
    return alone, (auc(data.y_test, predict(chosen.weights, data.x_test)), chosen.share)


def _spent(site: Site, settings: RunSettings) -> float | None:
    """Everything the brand has spent on the purpose, this run included."""
    if not settings.dp:
        return None
    state = site.privacy.run(settings.run)
    history = [*site.privacy.spent_before(settings.run), *(state.history if state else ())]
    return epsilon_of(history, settings.delta)


def print_outcomes(run: NodesRun, console: Console) -> None:
    """Each brand alone vs together, the epsilon spent and left, and its contribution."""
    # compact enough for 80 columns, the width of anything that is not a terminal (logs, CI)
    table = Table(
        title=f"Joint churn model, run {run.report.settings.run}: held-out AUC alone and together",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    for col in ("brand", "rows", "alone", "joint", "served", "gain", "ε used", "ε left", "contrib."):
        table.add_column(col, justify="left" if col == "brand" else "right", no_wrap=True)
    for b in run.brands:
        best = b.auc_served if b.auc_served is not None else b.auc_together
        gain = None if best is None else best - b.auc_alone
        table.add_row(
            _brand(b.brand),
            f"{b.train_rows:,}",
            _f(b.auc_alone),
            _f(b.auc_together),
            _f(b.auc_served),
            _f(gain, 3, sign=True),
            _f(b.epsilon_spent, 2),
            _f(b.epsilon_remaining, 2),
            _f(b.contribution, 4),
        )
    console.print(table)
    shares = ", ".join(f"{_brand(b.brand)} {_f(b.joint_share, 1)}" for b in run.brands)
    console.print(
        "joint: the alliance's model; served: each node's blend of it with its own model alone, the joint "
        f"model's share chosen on its own validation rows ({shares}); gain: served against alone.",
        highlight=False,
    )
    for b in run.brands:
        if b.refused:
            console.print(f"[yellow]{b.brand} did not train in the last round:[/yellow] {b.refused}", highlight=False)


def _brand(node_id: str) -> str:
    """Node ids are domain names: the first label names the brand."""
    return node_id.split(".", 1)[0]


def _f(v: object, digits: int = 3, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
