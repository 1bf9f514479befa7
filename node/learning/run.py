"""A federated run across nodes on this machine, in one process: the demo and `federate run`.

Each node takes part through its consent-gated site exactly as on the Deployment Engine; only
the transport differs (the in-process Grid). Each brand also trains alone on its own rows, so the
report shows what the alliance adds for each brand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from federation.client_app import make_client_app
from federation.inprocess import InProcessGrid
from federation.metrics import auc
from federation.privacy import epsilon_of
from federation.server_app import BrandRound, FederationReport, RoundReport, RunSettings, run_federation
from federation.site import Site
from federation.training import initial_weights, predict, train
from node.core.settings import NodeSettings
from node.learning.deploy import LocalFederation
from node.learning.rows import ChurnWindow
from node.learning.site import ConsentGatedLoader


class Participant(Protocol):
    """A node as a federated run needs it (:class:`node.runtime.Node` is one): its settings, and
    itself as a federated site for a churn window."""

    settings: NodeSettings

    def learning_site(self, window: ChurnWindow) -> tuple[Site, ConsentGatedLoader]:
        """The node as a site, behind its consent-gated loader."""
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
    for site in sites.values():
        data = site.data()
        alone = float("nan")
        if data.x_train and len(set(data.y_test)) == 2:
            width = len(data.x_train[0])
            weights = train(
                initial_weights(width, settings.seed, settings.model),
                data.x_train,
                data.y_train,
                epochs=settings.rounds * settings.epochs,
                batch_size=settings.batch_size,
                lr=settings.lr,
                seed=settings.seed,
            ).weights
            alone = auc(data.y_test, predict(weights, data.x_test))
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
            )
        )
    return NodesRun(report, outcomes)


def _spent(site: Site, settings: RunSettings) -> float | None:
    """Everything the brand has spent on the purpose, this run included."""
    if not settings.dp:
        return None
    state = site.privacy.run(settings.run)
    history = [*site.privacy.spent_before(settings.run), *(state.history if state else ())]
    return epsilon_of(history, settings.delta)


def print_outcomes(run: NodesRun, console: Console) -> None:
    """Each brand alone vs together, the epsilon spent and left, and its contribution."""
    table = Table(title=f"Joint churn model, run {run.report.settings.run}: held-out AUC alone and together")
    for col in ("brand", "rows", "alone", "together", "gain", "ε spent", "ε left", "contrib."):
        table.add_column(col, justify="left" if col == "brand" else "right", no_wrap=col == "brand")
    for b in run.brands:
        gain = None if b.auc_together is None else b.auc_together - b.auc_alone
        table.add_row(
            b.brand.split(".", 1)[0],  # node ids are domain names: the first label names the brand
            f"{b.train_rows:,}",
            _f(b.auc_alone),
            _f(b.auc_together),
            _f(gain, 3, sign=True),
            _f(b.epsilon_spent, 2),
            _f(b.epsilon_remaining, 2),
            _f(b.contribution, 4),
        )
    console.print(table)
    for b in run.brands:
        if b.refused:
            console.print(f"[yellow]{b.brand} did not train in the last round:[/yellow] {b.refused}", highlight=False)


def _f(v: object, digits: int = 3, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
