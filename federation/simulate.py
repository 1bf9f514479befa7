"""The privacy-utility comparison behind ``alliance-node federate simulate`` and the benchmark.

For each brand the same held-out rows judge four models:

- **local**: the brand alone, its own rows, no DP (what it can do without the alliance);
- **federated**: FedAvg (or a server optimiser) over every brand through the in-process Grid,
  Opacus DP-SGD at ``epsilon``;
- **federated without DP**: the same run with no noise (what privacy costs);
- **served**: the federated model blended with the brand's local model, the joint model's share
  chosen on the brand's validation rows (:mod:`federation.personalise`): what a brand's node scores with;
- **centralized**: every brand's training rows pooled, no DP (the upper bound nobody may build);
  the benchmark adds the same pooled at ``epsilon`` (what DP costs without any federation).

Every model trains on the same rows under one stopping rule (:mod:`federation.stopping`): each
brand's training rows lose a validation share, pooling takes the union of both, and a model stops
when its validation loss has not improved for ``patience`` checks (epochs alone or pooled, rounds
federated), at most ``rounds`` x ``epochs`` of them; DP models run to the cap. Steps are counted
per model so anyone can see that nobody was starved of optimisation.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import fmean

import numpy as np

from federation.client_app import make_client_app
from federation.inprocess import InProcessGrid
from federation.metrics import auc
from federation.personalise import Blend, choose
from federation.privacy import PrivacyPlan
from federation.server_app import FederationReport, RoundReport, RunSettings, run_federation
from federation.site import BrandData, MemoryPrivacyBook, Site
from federation.stopping import Fitted, fit
from federation.training import Weights, initial_weights, predict


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
    rounds: int = 30
    epochs: int = 1
    batch_size: int = 256
    lr: float = 0.5
    delta: float = 1e-5
    test_fraction: float = 0.25
    seed: int = 0
    model: str = "logistic"
    clip: float = 4.5
    server: str = "fedavg"
    server_lr: float = 0.0
    patience: int = 3
    val_fraction: float = 0.2
    tail: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError("the held-out fraction lies in (0, 1)")
        if not 0 < self.val_fraction < 1:
            raise ValueError("the validation fraction lies in (0, 1)")
        if self.patience < 1:
            raise ValueError("patience is at least one check")

    def run(self, name: str, dp: bool) -> RunSettings:
        """The federated run these settings describe (a DP run goes to the cap: its noise is set for it)."""
        return RunSettings(
            run=name,
            rounds=self.rounds,
            epsilon=self.epsilon,
            delta=self.delta,
            dp=dp,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            model=self.model,
            clip=self.clip,
            server=self.server,
            server_lr=self.server_lr,
            patience=0 if dp else self.patience,
            tail=self.tail,
        )


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
    steps_local: int = 0
    steps_federated: int = 0
    steps_federated_nodp: int = 0
    auc_served: float | None = None
    joint_share: float | None = None


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
                    "steps_local": b.steps_local,
                    "steps_federated": b.steps_federated,
                    "steps_federated_nodp": b.steps_federated_nodp,
                    "auc_served": _r(b.auc_served),
                    "joint_share": b.joint_share,
                }
                for b in self.brands
            ],
            "auc_federated_mean": _r(fmean(b.auc_federated for b in self.brands)),
            "auc_federated_nodp_mean": _r(fmean(b.auc_federated_nodp for b in self.brands)),
            "auc_centralized": _r(fmean(b.auc_centralized for b in self.brands)),
            "auc_local_mean": _r(fmean(b.auc_local for b in self.brands)),
            "auc_served_mean": _r(fmean(b.auc_served for b in self.brands if b.auc_served is not None))
            if any(b.auc_served is not None for b in self.brands)
            else None,
            "epsilon_target": self.settings.epsilon,
            "rounds": self.settings.rounds,
            "seconds_per_round": round(self.seconds_per_round, 3),
            "steps_centralized": self.extra.get("steps_centralized"),
            "rounds_federated": self.extra.get("rounds_federated"),
            "rounds_federated_nodp": self.extra.get("rounds_federated_nodp"),
            "stopping_rule": {
                "patience": self.settings.patience,
                "max_checks": self.settings.rounds * self.settings.epochs,
                "dp_models_run_to_the_cap": True,
            },
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def split(brand: Brand, fraction: float, seed: int, val_fraction: float = 0.0) -> BrandData:
    """A stratified, seeded train/held-out split (each class keeps its share in every part); with a
    ``val_fraction``, that share of the training rows becomes validation rows for the stopping rule."""
    rng = random.Random(f"{seed}:{brand.name}")
    train_idx: list[int] = []
    test_idx: list[int] = []
    val_idx: list[int] = []
    for label in (0, 1):
        idx = [i for i, v in enumerate(brand.y) if v == label]
        rng.shuffle(idx)
        cut = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        test_idx += idx[:cut]
        rest = idx[cut:]
        val_cut = max(1, round(len(rest) * val_fraction)) if val_fraction and len(rest) > 1 else 0
        val_idx += rest[:val_cut]
        train_idx += rest[val_cut:]
    train_idx.sort()
    test_idx.sort()
    val_idx.sort()
    return BrandData(
        [brand.x[i] for i in train_idx],
        [brand.y[i] for i in train_idx],
        [brand.x[i] for i in test_idx],
        [brand.y[i] for i in test_idx],
        tuple(f"{brand.name}:{i}" for i in train_idx),
        [brand.x[i] for i in val_idx],
        [brand.y[i] for i in val_idx],
    )


def simulate(
    brands: Sequence[Brand],
    settings: SimulationSettings,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Train and judge the four models and each brand's served blend; ``progress`` hears each step."""
    bench = Bench(brands, settings, progress)
    local, central = bench.local(), bench.centralized()
    fed, nodp = bench.federated(settings.epsilon), bench.federated(None)
    if fed.weights is None or nodp.weights is None:
        raise RuntimeError("no brand trained: see each brand's refusal in the report")
    last = {b.brand: b for b in fed.rounds[-1].brands}
    served = bench.blends(fed.weights)
    fed_steps, nodp_steps = fed.steps, nodp.steps
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
            steps_local=bench.steps["local"][b.name],
            steps_federated=fed_steps.get(b.name, 0),
            steps_federated_nodp=nodp_steps.get(b.name, 0),
            auc_served=bench.judge(served[b.name].weights, b.name),
            joint_share=served[b.name].share,
        )
        for b in brands
    ]
    per_round = fmean(r.seconds for r in fed.rounds)
    extra: dict[str, object] = {
        "steps_centralized": bench.steps["centralized"]["pooled"],
        "rounds_federated": len(fed.rounds),
        "rounds_federated_nodp": len(nodp.rounds),
    }
    return SimulationResult(settings, results, fed, per_round, extra)


class Bench:
    """The brands split once into training, validation and held-out rows, and the models judged on them."""

    def __init__(
        self, brands: Sequence[Brand], settings: SimulationSettings, progress: Callable[[str], None] | None = None
    ) -> None:
        if len(brands) < 2:
            raise ValueError("federation needs at least two brands")
        if len({b.name for b in brands}) != len(brands):
            raise ValueError("brand names must differ")
        self.brands, self.settings = list(brands), settings
        self.say = progress or (lambda _m: None)
        self.data = {b.name: split(b, settings.test_fraction, settings.seed, settings.val_fraction) for b in brands}
        self.start = initial_weights(len(brands[0].x[0]), settings.seed, settings.model)
        self.max_epochs = settings.rounds * settings.epochs
        self.steps: dict[str, dict[str, int]] = {"local": {}, "centralized": {}}
        self.own: dict[str, Weights] = {}

    def judge(self, weights: Mapping[str, np.ndarray], name: str) -> float:
        """AUC of ``weights`` on brand ``name``'s held-out rows."""
        d = self.data[name]
        return auc(d.y_test, predict(weights, d.x_test))

    def _fit(
        self,
        x: list[list[float]],
        y: list[int],
        xv: list[list[float]],
        yv: list[int],
        epsilon: float | None = None,
        start: Mapping[str, np.ndarray] | None = None,
    ) -> Fitted:
        s = self.settings
        plan = None
        if epsilon is not None:
            plan = PrivacyPlan.for_run(epsilon, s.delta, len(y), s.batch_size, 1, self.max_epochs, s.clip)
        return fit(
            self.start if start is None else start,
            x,
            y,
            xv,
            yv,
            max_epochs=self.max_epochs,
            patience=s.patience,
            batch_size=s.batch_size,
            lr=s.lr,
            seed=s.seed,
            plan=plan,
            tail=s.tail,
        )

    def local(self) -> dict[str, float]:
        """Each brand alone, no DP: its AUC."""
        out = {}
        for name, d in self.data.items():
            self.say(f"local model of {name}")
            fitted = self._fit(d.x_train, d.y_train, d.x_val, d.y_val)
            self.steps["local"][name] = fitted.steps
            self.own[name] = fitted.weights
            out[name] = self.judge(fitted.weights, name)
        return out

    def blends(self, joint: Mapping[str, np.ndarray]) -> dict[str, Blend]:
        """Each brand's served model: ``joint`` blended with its model alone (trained by :meth:`local`
        if it has not been), the share chosen on the brand's validation rows."""
        if len(self.own) < len(self.data):
            self.local()
        return {n: choose(self.own[n], joint, d.x_val, d.y_val) for n, d in self.data.items()}

    def fine_tuned(self, weights: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Each brand's AUC after training ``weights`` further on its own rows alone, without DP.

        The model a brand may deploy: the other brands' guarantee holds (training on one's own
        members after receiving a DP model is post-processing for them), and it never leaves the brand.
        """
        out = {}
        for name, d in self.data.items():
            self.say(f"{name} fine-tunes the joint model")
            out[name] = self.judge(self._fit(d.x_train, d.y_train, d.x_val, d.y_val, start=weights).weights, name)
        return out

    def centralized(self, epsilon: float | None = None) -> dict[str, float]:
        """Every brand's training rows pooled (no DP, or DP-SGD at ``epsilon``): each brand's AUC."""
        self.say("centralized model" + (f" at epsilon {epsilon:g}" if epsilon is not None else ""))
        parts = self.data.values()
        fitted = self._fit(
            [row for d in parts for row in d.x_train],
            [v for d in parts for v in d.y_train],
            [row for d in parts for row in d.x_val],
            [v for d in parts for v in d.y_val],
            epsilon,
        )
        self.steps["centralized"]["pooled" if epsilon is None else f"pooled-{epsilon:g}"] = fitted.steps
        return {name: self.judge(fitted.weights, name) for name in self.data}

    def federated(self, epsilon: float | None) -> FederationReport:
        """Through the in-process Grid, with DP at ``epsilon`` (None: without DP)."""
        s = self.settings
        dp = epsilon is not None
        budget = epsilon if epsilon is not None else s.epsilon
        sites = {
            n: Site(n, _constant(d), MemoryPrivacyBook(budget), repeatable_noise=True) for n, d in self.data.items()
        }
        app = make_client_app(lambda ctx: sites[str(ctx.node_config["brand"])])
        grid = InProcessGrid(app, [{"brand": n} for n in sites])
        run = replace(s, epsilon=budget).run(f"simulate-{epsilon if dp else 'nodp'}", dp)
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
