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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean

import numpy as np

from federation.client_app import make_client_app
from federation.inprocess import InProcessGrid
from federation.metrics import auc
from federation.server_app import FederationReport, RoundReport, RunSettings, run_federation
from federation.site import BrandData, MemoryPrivacyBook, Site, Weights
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
    bench = Bench(brands, settings, progress)
    local, central = bench.local(), bench.centralized()
    fed, nodp = bench.federated(settings.epsilon), bench.federated(None)
    if fed.weights is None or nodp.weights is None:
        raise RuntimeError("no brand trained: see each brand's refusal in the report")
    last = {b.brand: b for b in fed.rounds[-1].brands}
    results = [
        BrandResult(
            name=b.name,
            rows=len(b.y),
            train_rows=len(bench.data[b.name].y_train),
            test_rows=len(bench.data[b.name].y_test),
            auc_local=local[b.name],
            auc_federated=bench.judge(fed.weights, b.name),
            auc_federated_nodp=bench.judge(nodp.weights, b.name),
            auc_centralized=central[b.name],
            epsilon=last[b.name].epsilon if b.name in last else None,
            contribution=_mean_contribution(fed, b.name),
        )
        for b in brands
    ]
    per_round = fmean(r.seconds for r in fed.rounds)
    return SimulationResult(settings, results, fed, per_round)


class Bench:
    """The brands split once into training and held-out rows, and the models judged on them."""

    def __init__(
        self, brands: Sequence[Brand], settings: SimulationSettings, progress: Callable[[str], None] | None = None
    ) -> None:
        if len(brands) < 2:
            raise ValueError("federation needs at least two brands")
        if len({b.name for b in brands}) != len(brands):
            raise ValueError("brand names must differ")
        self.brands, self.settings = list(brands), settings
        self.say = progress or (lambda _m: None)
        self.data = {b.name: split(b, settings.test_fraction, settings.seed) for b in brands}
        self.start = initial_weights(len(brands[0].x[0]), settings.seed)
        self.epochs = settings.rounds * settings.epochs

    def judge(self, weights: Mapping[str, np.ndarray], name: str) -> float:
        """AUC of ``weights`` on brand ``name``'s held-out rows."""
        d = self.data[name]
        return auc(d.y_test, predict(weights, d.x_test))

    def _fit(self, x: list[list[float]], y: list[int]) -> Weights:
        s = self.settings
        return train(self.start, x, y, epochs=self.epochs, batch_size=s.batch_size, lr=s.lr, seed=s.seed).weights

    def local(self) -> dict[str, float]:
        """Each brand alone, no DP: its AUC."""
        out = {}
        for name, d in self.data.items():
            self.say(f"local model of {name}")
            out[name] = self.judge(self._fit(d.x_train, d.y_train), name)
        return out

    def centralized(self) -> dict[str, float]:
        """Every brand's training rows pooled, no DP: each brand's AUC."""
        self.say("centralized model")
        weights = self._fit(
            [row for d in self.data.values() for row in d.x_train], [v for d in self.data.values() for v in d.y_train]
        )
        return {name: self.judge(weights, name) for name in self.data}

    def federated(self, epsilon: float | None) -> FederationReport:
        """FedAvg through the in-process Grid, with DP at ``epsilon`` (None: without DP)."""
        s = self.settings
        dp = epsilon is not None
        budget = epsilon if epsilon is not None else s.epsilon
        sites = {n: Site(n, _constant(d), MemoryPrivacyBook(budget)) for n, d in self.data.items()}
        app = make_client_app(lambda ctx: sites[str(ctx.node_config["brand"])])
        grid = InProcessGrid(app, [{"brand": n} for n in sites])
        run = RunSettings(
            run=f"simulate-{epsilon if dp else 'nodp'}",
            rounds=s.rounds,
            epsilon=budget,
            delta=s.delta,
            dp=dp,
            epochs=s.epochs,
            batch_size=s.batch_size,
            lr=s.lr,
            seed=s.seed,
        )
        label = f"federated at epsilon {epsilon:g}" if dp else "federated without DP"

        def on_round(r: RoundReport) -> None:
            self.say(f"{label}: round {r.round}/{s.rounds}, mean AUC {r.auc_mean:.3f}")

        flower = logging.getLogger("flwr")
        level = flower.level
        flower.setLevel(logging.WARNING)  # Flower logs every step at INFO; progress is ours to show
        try:
            return run_federation(grid, run, len(sites), on_round)
        finally:
            flower.setLevel(level)


def _constant(d: BrandData) -> Callable[[], BrandData]:
    return lambda: d


def _mean_contribution(report: FederationReport, name: str) -> float | None:
    values = [b.contribution for r in report.rounds for b in r.brands if b.brand == name and b.contribution is not None]
    return fmean(values) if values else None
