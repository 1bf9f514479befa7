"""The alliance's side of a federated run: FedAvg on Flower's Message API, with per-brand reports.

:class:`AllianceFedAvg` is Flower's FedAvg with three additions:

- each brand's epsilon, loss and rows are kept per brand (FedAvg's default would average them,
  and an average epsilon means nothing: each brand's guarantee is its own);
- brands that refuse a round (budget spent, no consented members) are reported by name and the
  round goes on with the others;
- every evaluate message also carries, for each brand that trained, the model averaged *without*
  it, so each brand's contribution is measured per round as the drop in the brands' mean held-out
  AUC when it is left out (leave-one-out over brands).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from federation.client_app import WITHOUT, from_record, to_record
from federation.site import Weights
from federation.training import average, initial_weights


class FederationError(Exception):
    """The run cannot start or go on (no brands, brands that disagree on the features)."""


@dataclass(frozen=True)
class RunSettings:
    """What the server sends every brand for a run."""

    run: str
    rounds: int = 5
    epsilon: float = 3.0
    delta: float = 1e-5
    dp: bool = True
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("rounds, epochs and batch size are positive")
        if self.dp and (self.epsilon <= 0 or not 0 < self.delta < 1):
            raise ValueError("epsilon is positive and delta lies in (0, 1)")

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
            }
        )

    @classmethod
    def from_run_config(cls, cfg: dict[str, bool | float | int | str]) -> RunSettings:
        """Settings from a Flower run config (``flwr run --run-config``)."""
        return cls(
            run=str(cfg.get("run", f"run-{int(time.time())}")),
            rounds=int(cfg.get("rounds", 5)),
            epsilon=float(cfg.get("epsilon", 3.0)),
            delta=float(cfg.get("delta", 1e-5)),
            dp=bool(cfg.get("dp", True)),
            epochs=int(cfg.get("epochs", 1)),
            batch_size=int(cfg.get("batch-size", 64)),
            lr=float(cfg.get("lr", 0.1)),
            seed=int(cfg.get("seed", 0)),
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

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary (weights left out)."""
        return {
            "settings": asdict(self.settings),
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
        return cls(settings, rounds)


def _num(v: object) -> object:
    return None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else v


class AllianceFedAvg(FedAvg):
    """FedAvg over every brand, reporting per brand and measuring leave-one-out contributions."""

    def __init__(
        self,
        names: dict[int, str],
        *,
        on_round: Callable[[RoundReport], None] | None = None,
        contributions: bool = True,
    ) -> None:
        n = len(names)
        super().__init__(
            min_train_nodes=n,
            min_evaluate_nodes=n,
            min_available_nodes=n,
            train_metrics_aggr_fn=_keep_extremes,
            evaluate_metrics_aggr_fn=_mean_auc,
        )
        self.names = names
        self.on_round = on_round
        self.contributions = contributions
        self.reports: list[RoundReport] = []
        self._updates: dict[int, tuple[Weights, int]] = {}
        self._brands: dict[int, BrandRound] = {}
        self._started = time.monotonic()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's messages; the round's clock starts."""
        self._started = time.monotonic()
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg, after noting each brand's update, epsilon and any refusal."""
        replies = list(replies)
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
            )
            self._updates[node] = (from_record(msg.content["arrays"]), int(m["num-examples"]))
        return super().aggregate_train(server_round, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's messages, plus one leave-one-brand-out model per brand that trained."""
        messages = list(super().configure_evaluate(server_round, arrays, config, grid))
        if self.contributions and len(self._updates) >= 2 and messages:
            record = messages[0].content  # FedAvg shares one RecordDict between the messages
            for node in self._updates:
                others = [u for n, u in self._updates.items() if n != node]
                record[f"{WITHOUT}{node}"] = to_record(average(others))
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Each brand's AUC and contribution; the round's report goes to ``on_round``."""
        replies = list(replies)
        aucs: dict[int, float] = {}
        without: dict[int, dict[int, float]] = {}
        for msg in replies:
            if msg.has_error():
                continue
            node = msg.metadata.src_node_id
            m = msg.content["metrics"]
            aucs[node] = float(m["auc"])
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
        if self.on_round is not None:
            self.on_round(report)
        return super().aggregate_evaluate(server_round, replies)


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
    strategy = AllianceFedAvg(names, on_round=on_round)
    result = strategy.start(
        grid=grid,
        initial_arrays=to_record(initial_weights(width, settings.seed)),
        num_rounds=settings.rounds,
        train_config=settings.train_config(),
        evaluate_config=ConfigRecord({"run": settings.run}),
    )
    return FederationReport(settings, strategy.reports, from_record(result.arrays) if result.arrays else None)


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
