"""The alliance's side of a federated run: FedAvg on Flower's Message API, with per-brand reports.

:class:`AllianceStrategy` goes on top of Flower's FedAvg, FedAvgM, FedAdam or FedYogi (the server
optimiser is Flower's; :func:`make_strategy` picks it) and adds:

- each brand's epsilon, loss and rows are kept per brand (FedAvg's default would average them,
  and an average epsilon means nothing: each brand's guarantee is its own);
- brands that refuse a round (budget spent, no consented members) are reported by name and the
  round goes on with the others;
- every evaluate message also carries, for each brand that trained, the model averaged *without*
  it, so each brand's contribution is measured per round as the drop in the brands' mean held-out
  AUC when it is left out (leave-one-out over brands);
- an optional stopping rule on the brands' validation loss (:mod:`federation.stopping`): once it
  stops, later rounds send nothing and the best round's model is the run's;
- in DP runs, the model served over the last rounds is the mean of their global models (tail
  averaging: the noise of DP-SGD averages out, at no privacy cost).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM, FedYogi

from federation.client_app import WITHOUT, from_record, to_record
from federation.site import Weights
from federation.stopping import EarlyStop
from federation.training import MODELS, average, initial_weights


class FederationError(Exception):
    """The run cannot start or go on (no brands, brands that disagree on the features)."""


#: Server optimisers: Flower's strategies of those names, with the alliance's reporting on top.
SERVER_OPTIMISERS = ("fedavg", "fedavgm", "fedadam", "fedyogi")


@dataclass(frozen=True)
class RunSettings:
    """What the server sends every brand for a run, and how the server aggregates.

    The defaults are the training recipe measured in docs/federation.md ("Training recipe"): a
    logistic model, expected batches of 256 drawn by Poisson sampling, one local epoch per round,
    per-example gradients clipped at 4.5, FedAvg on the server, and (with DP) the mean of the last
    half of the rounds' global models served.
    """

    run: str
    rounds: int = 30
    epsilon: float = 3.0
    delta: float = 1e-5
    dp: bool = True
    epochs: int = 1
    batch_size: int = 256
    lr: float = 0.5
    seed: int = 0
    model: str = "logistic"
    clip: float = 4.5
    server: str = "fedavg"
    server_lr: float = 0.0  # the server optimiser's step (FedAvgM's learning rate, FedAdam's eta); 0: its default
    patience: int = 0  # stop after this many rounds without a better validation loss; 0 runs every round
    tail: float = 0.5  # DP runs serve the mean of the global models of this last share of the rounds

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("rounds, epochs and batch size are positive")
        if self.dp and (self.epsilon <= 0 or not 0 < self.delta < 1):
            raise ValueError("epsilon is positive and delta lies in (0, 1)")
        if self.model not in MODELS:
            raise ValueError(f"model is one of {', '.join(MODELS)}")
        if self.server not in SERVER_OPTIMISERS:
            raise ValueError(f"server optimiser is one of {', '.join(SERVER_OPTIMISERS)}")
        if self.lr <= 0 or self.clip <= 0 or self.server_lr < 0 or self.patience < 0:
            raise ValueError("learning rates and the clipping norm are positive; patience is 0 or more")
        if not 0 <= self.tail < 1:
            raise ValueError("the averaged tail is a share of the rounds in [0, 1)")
        if self.dp and self.patience:
            # the noise is calibrated for every round: stopping early would waste budget on noise
            raise ValueError("a DP run runs every round: patience applies to runs without DP")

    def train_config(self) -> ConfigRecord:
        """The ConfigRecord of every train message."""
        return ConfigRecord(
            {
                "run": self.run,
                "rounds": self.rounds,
                "epsilon": self.epsilon,
                "delta": self.delta,
                "dp": self.dp,
                "epochs": self.epochs,
                "batch-size": self.batch_size,
                "lr": self.lr,
                "seed": self.seed,
                "model": self.model,
                "clip": self.clip,
            }
        )

    @classmethod
    def from_run_config(cls, cfg: dict[str, bool | float | int | str]) -> RunSettings:
        """Settings from a Flower run config (``flwr run --run-config``)."""
        return cls(
            run=str(cfg.get("run", f"run-{int(time.time())}")),
            rounds=int(cfg.get("rounds", 30)),
            epsilon=float(cfg.get("epsilon", 3.0)),
            delta=float(cfg.get("delta", 1e-5)),
            dp=bool(cfg.get("dp", True)),
            epochs=int(cfg.get("epochs", 1)),
            batch_size=int(cfg.get("batch-size", 256)),
            lr=float(cfg.get("lr", 0.5)),
            seed=int(cfg.get("seed", 0)),
            model=str(cfg.get("model", "logistic")),
            clip=float(cfg.get("clip", 4.5)),
            server=str(cfg.get("server", "fedavg")),
            server_lr=float(cfg.get("server-lr", 0.0)),
            patience=int(cfg.get("patience", 0)),
            tail=float(cfg.get("tail", 0.5)),
        )


@dataclass
class BrandRound:
    """One brand in one round."""

    brand: str
    trained: bool
    rows: int = 0
    epsilon: float | None = None  # cumulative over every run at this brand; None without DP
    epsilon_budget: float | None = None
    loss: float | None = None
    steps: int | None = None  # local optimiser steps this round
    auc: float | None = None  # the round's global model on this brand's held-out rows
    contribution: float | None = None  # mean AUC over brands, minus the same without this brand
    refused: str | None = None


@dataclass
class RoundReport:
    """What one round did, brand by brand."""

    round: int
    brands: list[BrandRound]
    seconds: float

    @property
    def auc_mean(self) -> float:
        """Mean held-out AUC of the global model over brands that evaluated."""
        values = [b.auc for b in self.brands if b.auc is not None and not math.isnan(b.auc)]
        return fmean(values) if values else float("nan")


@dataclass
class FederationReport:
    """A whole run: the rounds and the final global model."""

    settings: RunSettings
    rounds: list[RoundReport] = field(default_factory=list)
    weights: Weights | None = None
    best_round: int | None = None  # with a stopping rule: the round whose model is ``weights``

    @property
    def steps(self) -> dict[str, int]:
        """Local optimiser steps each brand made over the run."""
        out: dict[str, int] = {}
        for r in self.rounds:
            for b in r.brands:
                out[b.brand] = out.get(b.brand, 0) + (b.steps or 0)
        return out

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary (weights left out)."""
        return {
            "settings": asdict(self.settings),
            "best_round": self.best_round,
            "rounds": [
                {
                    "round": r.round,
                    "seconds": round(r.seconds, 3),
                    "auc_mean": _num(r.auc_mean),
                    "brands": [{k: _num(v) for k, v in asdict(b).items()} for b in r.brands],
                }
                for r in self.rounds
            ],
        }


    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FederationReport:
        """A report printed by :meth:`to_json` (the Deployment Engine's ServerApp prints one)."""
        settings = RunSettings(**data["settings"])
        rounds = [
            RoundReport(r["round"], [BrandRound(**b) for b in r["brands"]], float(r["seconds"]))
            for r in data["rounds"]
        ]
        return cls(settings, rounds, best_round=data.get("best_round"))


def _num(v: object) -> object:
    return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v


class AllianceStrategy:
    """The alliance's reporting, stopping rule and contributions over any of Flower's FedAvg family.

    Mixed in before a Flower strategy (see :func:`make_strategy`), so the server optimiser is
    Flower's own and only what the alliance adds lives here.
    """

    names: dict[int, str]
    on_round: Callable[[RoundReport], None] | None
    contributions: bool
    reports: list[RoundReport]
    stop: EarlyStop
    best: ArrayRecord | None
    best_round: int | None

    def setup(
        self,
        names: dict[int, str],
        on_round: Callable[[RoundReport], None] | None = None,
        contributions: bool = True,
        patience: int = 0,
        average_from: int = 0,
    ) -> None:
        """What the alliance adds to the Flower strategy; from round ``average_from`` (0: never) the
        model served (evaluated, stored by every brand, the run's result) is the mean of the global
        models since that round."""
        self.names = names
        self.average_from = average_from
        self.served: ArrayRecord | None = None
        self._tail: tuple[Weights, int] | None = None
        self.on_round = on_round
        self.contributions = contributions
        self.reports = []
        self.stop = EarlyStop(patience)
        self.best, self.best_round = None, None
        self._updates: dict[int, tuple[Weights, int]] = {}
        self._brands: dict[int, BrandRound] = {}
        self._global: ArrayRecord | None = None
        self._started = time.monotonic()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The strategy's messages (none once the stopping rule has stopped the run); the round's clock starts."""
        self._started = time.monotonic()
        if self.stop.stopped:
            return []
        return super().configure_train(server_round, arrays, config, grid)  # type: ignore[misc]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The strategy's aggregate, after noting each brand's update, epsilon and any refusal."""
        replies = list(replies)
        if self.stop.stopped:
            return None, None
        self._updates, self._brands = {}, {}
        for msg in replies:
            node = msg.metadata.src_node_id
            name = self.names.get(node, str(node))
            if msg.has_error():
                self._brands[node] = BrandRound(name, trained=False, refused=msg.error.reason)
                continue
            m = msg.content["metrics"]
            eps = float(m["epsilon"])
            self._brands[node] = BrandRound(
                name,
                trained=True,
                rows=int(m["num-examples"]),
                epsilon=eps if eps >= 0 else None,
                epsilon_budget=float(m["epsilon-budget"]),
                loss=float(m["loss"]),
                steps=int(m["steps"]) if "steps" in m else None,
            )
            self._updates[node] = (from_record(msg.content["arrays"]), int(m["num-examples"]))
        arrays, metrics = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        self._global = arrays
        if arrays is not None and self.average_from and server_round >= self.average_from:
            # DP-SGD's iterates wander around the optimum by the noise; their mean wanders far less, and
            # averaging what the brands already received is post-processing: it costs no privacy
            new = from_record(arrays)
            total, count = self._tail or ({k: np.zeros_like(v, dtype=np.float64) for k, v in new.items()}, 0)
            self._tail = ({k: total[k] + new[k] for k in new}, count + 1)
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The strategy's messages, plus one leave-one-brand-out model per brand that trained."""
        if self.stop.stopped:
            return []
        if self._tail is not None:
            total, count = self._tail
            arrays = to_record({k: v / count for k, v in total.items()})
        self.served = arrays
        messages = list(super().configure_evaluate(server_round, arrays, config, grid))  # type: ignore[misc]
        if self.contributions and len(self._updates) >= 2 and messages:
            record = messages[0].content  # FedAvg shares one RecordDict between the messages
            together = average(list(self._updates.values()))
            current = from_record(arrays)
            for node in self._updates:
                others = average([u for n, u in self._updates.items() if n != node])
                # the global model moved by what leaving the brand out changes in the average:
                # exact for FedAvg, the first-order effect through a server optimiser
                record[f"{WITHOUT}{node}"] = to_record({k: current[k] + others[k] - together[k] for k in current})
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Each brand's AUC and contribution, and the stopping rule's check; the report goes to ``on_round``."""
        replies = list(replies)
        if self.stop.stopped:
            return None
        aucs: dict[int, float] = {}
        val_loss, val_rows = 0.0, 0
        without: dict[int, dict[int, float]] = {}
        for msg in replies:
            if msg.has_error():
                continue
            node = msg.metadata.src_node_id
            m = msg.content["metrics"]
            aucs[node] = float(m["auc"])
            if "val-loss" in m:
                val_loss += float(m["val-loss"]) * int(m["val-examples"])
                val_rows += int(m["val-examples"])
            for key, value in m.items():
                if key.startswith(f"auc-{WITHOUT}"):
                    without.setdefault(int(key.removeprefix(f"auc-{WITHOUT}")), {})[node] = float(value)
        for node, auc_value in aucs.items():
            self._brands.setdefault(node, BrandRound(self.names.get(node, str(node)), trained=False)).auc = auc_value
        evaluated = [n for n, v in aucs.items() if not math.isnan(v)]
        for node, scores in without.items():
            common = [n for n in evaluated if n in scores and not math.isnan(scores[n])]
            if common and node in self._brands:
                self._brands[node].contribution = fmean(aucs[n] for n in common) - fmean(scores[n] for n in common)
        order = sorted(self._brands, key=lambda n: self._brands[n].brand)
        report = RoundReport(server_round, [self._brands[n] for n in order], time.monotonic() - self._started)
        self.reports.append(report)
        # the stopping rule watches the global model's loss over every brand's validation rows
        if self.stop.patience and self.stop.observe(val_loss / val_rows if val_rows else float("nan")):
            self.best, self.best_round = self.served, server_round
        if self.on_round is not None:
            self.on_round(report)
        return super().aggregate_evaluate(server_round, replies)  # type: ignore[misc]


def _keep_extremes(contents: list[RecordDict], weight_key: str) -> MetricRecord:
    """Train metrics for Flower's log: the total rows and the largest epsilon, never an average."""
    metrics = [c["metrics"] for c in contents]
    return MetricRecord(
        {
            "num-examples": sum(int(m[weight_key]) for m in metrics),
            "epsilon-max": max(float(m["epsilon"]) for m in metrics),
        }
    )


def _mean_auc(contents: list[RecordDict], weight_key: str) -> MetricRecord:
    values = [float(c["metrics"]["auc"]) for c in contents if not math.isnan(float(c["metrics"]["auc"]))]
    return MetricRecord({"auc-mean": fmean(values) if values else -1.0})


def make_strategy(
    settings: RunSettings,
    names: dict[int, str],
    on_round: Callable[[RoundReport], None] | None = None,
    contributions: bool = True,
) -> AllianceStrategy:
    """Flower's strategy for ``settings.server`` with the alliance's reporting and stopping rule."""
    n = len(names)
    common: dict[str, Any] = {
        "min_train_nodes": n,
        "min_evaluate_nodes": n,
        "min_available_nodes": n,
        "train_metrics_aggr_fn": _keep_extremes,
        "evaluate_metrics_aggr_fn": _mean_auc,
    }
    step = settings.server_lr
    base: type
    if settings.server == "fedavgm":
        base, extra = FedAvgM, {"server_learning_rate": step or 1.0, "server_momentum": 0.9}
    elif settings.server in ("fedadam", "fedyogi"):
        base = FedAdam if settings.server == "fedadam" else FedYogi
        extra = {"eta": step or 0.05, "eta_l": settings.lr, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3}
    else:
        base, extra = FedAvg, {}
    cls = type(f"Alliance{base.__name__}", (AllianceStrategy, base), {})
    strategy: AllianceStrategy = cls(**common, **extra)
    average_from = int(settings.rounds * (1 - settings.tail)) + 1 if settings.dp and settings.tail else 0
    strategy.setup(names, on_round, contributions, settings.patience, average_from)
    return strategy


def brands_of(grid: Grid, expected: int, wait: float = 120.0) -> tuple[dict[int, str], int]:
    """Wait for ``expected`` nodes, ask each its brand name; return names by node id and the feature count."""
    deadline = time.monotonic() + wait
    while len(list(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            raise FederationError(
                f"only {len(list(grid.get_node_ids()))} of {expected} brands connected in {wait:.0f} s"
            )
        time.sleep(0.5)
    nodes = list(grid.get_node_ids())
    asks = [grid.create_message(RecordDict(), MessageType.QUERY, n, "describe") for n in nodes]
    names: dict[int, str] = {}
    widths: set[int] = set()
    for reply in grid.send_and_receive(asks, timeout=wait):
        if reply.has_error():
            raise FederationError(f"node {reply.metadata.src_node_id} did not describe itself: {reply.error.reason}")
        names[reply.metadata.src_node_id] = str(reply.content["brand"]["name"])
        widths.add(int(reply.content["rows"]["features"]))
    if len(names) < expected:
        raise FederationError(f"{expected - len(names)} brands did not answer")
    if len(widths) != 1:
        raise FederationError(f"the brands disagree on the number of features: {sorted(widths)}")
    return names, widths.pop()


def run_federation(
    grid: Grid, settings: RunSettings, expected: int, on_round: Callable[[RoundReport], None] | None = None
) -> FederationReport:
    """Run ``settings.rounds`` rounds of FedAvg over the ``expected`` brands on ``grid``."""
    names, width = brands_of(grid, expected)
    strategy = make_strategy(settings, names, on_round)
    result = strategy.start(  # type: ignore[attr-defined]
        grid=grid,
        initial_arrays=to_record(initial_weights(width, settings.seed, settings.model)),
        num_rounds=settings.rounds,
        train_config=settings.train_config(),
        evaluate_config=ConfigRecord({"run": settings.run}),
    )
    final = strategy.best or strategy.served or result.arrays
    return FederationReport(settings, strategy.reports, from_record(final) if final else None, strategy.best_round)


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """The Deployment Engine's entry: settings from the run config, progress and report on stdout."""
    settings = RunSettings.from_run_config(context.run_config)
    expected = int(context.run_config.get("brands", 3))

    def progress(r: RoundReport) -> None:
        print(
            json.dumps(
                {
                    "round": r.round,
                    "auc_mean": _num(r.auc_mean),
                    "brands": [{k: _num(v) for k, v in asdict(b).items()} for b in r.brands],
                }
            ),
            flush=True,
        )

    report = run_federation(grid, settings, expected, progress)
    print(json.dumps({"report": report.to_json()}), flush=True)
