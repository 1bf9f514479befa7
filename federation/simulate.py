"""The privacy-utility comparison behind ``alliance-node federate simulate`` and the benchmark.

For each brand the same held-out rows judge four models:

- **local**: the brand alone, its own rows, no DP (what it can do without the alliance);
- **federated**: FedAvg over every brand through the in-process Grid, Opacus DP-SGD at ``epsilon``;
- **federated without DP**: the same run with no noise (what privacy costs);
- **centralized**: every brand's training rows pooled, no DP (the upper bound nobody may build).

Every model trains for the same number of epochs over its rows (rounds x epochs per round).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import fmean

from federation.client_app import make_client_app
from federation.inprocess import InProcessGrid
from federation.metrics import auc
from federation.server_app import FederationReport, RoundReport, RunSettings, run_federation
from federation.site import BrandData, MemoryPrivacyBook, Site
from federation.training import initial_weights, predict, train


@dataclass(frozen=True)
class Brand:
    """One brand's encoded rows."""

    name: str
    x: list[list[float]]
    y: list[int]


@dataclass(frozen=True)
class SimulationSettings:
    """How to train and judge."""

    epsilon: float = 3.0
    rounds: int = 5
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.1
    delta: float = 1e-5
    test_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError("the held-out fraction lies in (0, 1)")


@dataclass
class BrandResult:
    """One brand's AUCs on its held-out rows, and its spend."""

    name: str
    rows: int
    train_rows: int
    test_rows: int
    auc_local: float
    auc_federated: float
    auc_federated_nodp: float
    auc_centralized: float
    epsilon: float | None
    contribution: float | None


@dataclass
class SimulationResult:
    """The comparison, brand by brand."""

    settings: SimulationSettings
    brands: list[BrandResult]
    federated: FederationReport
    seconds_per_round: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The documented output of ``federate simulate --json``."""
        return {
            "brands": [
                {
                    "name": b.name,
                    "rows": b.rows,
                    "auc_local": _r(b.auc_local),
                    "auc_federated": _r(b.auc_federated),
                    "epsilon": _r(b.epsilon),
                    "auc_federated_nodp": _r(b.auc_federated_nodp),
                    "auc_centralized": _r(b.auc_centralized),
                    "contribution": _r(b.contribution),
                    "train_rows": b.train_rows,
                    "test_rows": b.test_rows,
                }
                for b in self.brands
            ],
            "auc_federated_mean": _r(fmean(b.auc_federated for b in self.brands)),
            "auc_federated_nodp_mean": _r(fmean(b.auc_federated_nodp for b in self.brands)),
            "auc_centralized": _r(fmean(b.auc_centralized for b in self.brands)),
            "auc_local_mean": _r(fmean(b.auc_local for b in self.brands)),
            "epsilon_target": self.settings.epsilon,
            "rounds": self.settings.rounds,
            "seconds_per_round": round(self.seconds_per_round, 3),
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def split(brand: Brand, fraction: float, seed: int) -> BrandData:
    """A stratified, seeded train/held-out split (each class keeps its share in both parts)."""
    rng = random.Random(f"{seed}:{brand.name}")
    train_idx: list[int] = []
    test_idx: list[int] = []
    for label in (0, 1):
        idx = [i for i, v in enumerate(brand.y) if v == label]
        rng.shuffle(idx)
        cut = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        test_idx += idx[:cut]
        train_idx += idx[cut:]
    train_idx.sort()
    test_idx.sort()
    return BrandData(
        [brand.x[i] for i in train_idx],
        [brand.y[i] for i in train_idx],
        [brand.x[i] for i in test_idx],
        [brand.y[i] for i in test_idx],
        tuple(f"{brand.name}:{i}" for i in train_idx),
    )


def simulate(
    brands: Sequence[Brand],
    settings: SimulationSettings,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Train and judge the four models; ``progress`` hears each step."""
    if len(brands) < 2:
        raise ValueError("federation needs at least two brands")
    if len({b.name for b in brands}) != len(brands):
        raise ValueError("brand names must differ")
    say = progress or (lambda _m: None)
    data = {b.name: split(b, settings.test_fraction, settings.seed) for b in brands}
    width = len(brands[0].x[0])
    start = initial_weights(width, settings.seed)
    epochs = settings.rounds * settings.epochs

    def judge(weights: dict, name: str) -> float:  # type: ignore[type-arg]
        d = data[name]
        return auc(d.y_test, predict(weights, d.x_test))

    local = {}
    for b in brands:
        say(f"local model of {b.name}")
        d = data[b.name]
        trained = train(
            start,
            d.x_train,
            d.y_train,
            epochs=epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            seed=settings.seed,
        )
        local[b.name] = judge(trained.weights, b.name)
    say("centralized model")
    pooled_x = [row for d in data.values() for row in d.x_train]
    pooled_y = [v for d in data.values() for v in d.y_train]
    central = train(
        start, pooled_x, pooled_y, epochs=epochs, batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed
    ).weights

    def federated(dp: bool) -> FederationReport:
        sites = {n: Site(n, _constant(d), MemoryPrivacyBook(settings.epsilon)) for n, d in data.items()}
        app = make_client_app(lambda ctx: sites[str(ctx.node_config["brand"])])
        grid = InProcessGrid(app, [{"brand": n} for n in sites])
        run = RunSettings(
            run=f"simulate-{'dp' if dp else 'nodp'}",
            rounds=settings.rounds,
            epsilon=settings.epsilon,
            delta=settings.delta,
            dp=dp,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            seed=settings.seed,
        )

        def on_round(r: RoundReport) -> None:
            say(f"federated{'' if dp else ' without DP'}: round {r.round}/{settings.rounds}, mean AUC {r.auc_mean:.3f}")

        flower = logging.getLogger("flwr")
        level = flower.level
        flower.setLevel(logging.WARNING)  # Flower logs every step at INFO; progress is ours to show
        try:
            return run_federation(grid, run, len(sites), on_round)
        finally:
            flower.setLevel(level)

    fed = federated(dp=True)
    nodp = federated(dp=False)
    if fed.weights is None or nodp.weights is None:
        raise RuntimeError("no brand trained: see each brand's refusal in the report")
    last = {b.brand: b for b in fed.rounds[-1].brands}
    results = [
        BrandResult(
            name=b.name,
            rows=len(b.y),
            train_rows=len(data[b.name].y_train),
            test_rows=len(data[b.name].y_test),
            auc_local=local[b.name],
            auc_federated=judge(fed.weights, b.name),
            auc_federated_nodp=judge(nodp.weights, b.name),
            auc_centralized=judge(central, b.name),
            epsilon=last[b.name].epsilon if b.name in last else None,
            contribution=_mean_contribution(fed, b.name),
        )
        for b in brands
    ]
    per_round = fmean(r.seconds for r in fed.rounds)
    return SimulationResult(settings, results, fed, per_round)


def _constant(d: BrandData) -> Callable[[], BrandData]:
    return lambda: d


def _mean_contribution(report: FederationReport, name: str) -> float | None:
    values = [b.contribution for r in report.rounds for b in r.brands if b.brand == name and b.contribution is not None]
    return fmean(values) if values else None
