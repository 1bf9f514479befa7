"""Local training of the churn model: plain or with Opacus DP-SGD; prediction. No I/O.

Weights travel as ``{name: numpy array}`` so Flower's ArrayRecord, the node's model store and
the tests all handle the same thing.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from federation.privacy import PrivacyPlan, Step

Weights = dict[str, np.ndarray]
HIDDEN = 16
#: The model kinds: a logistic regression (the default: see docs/federation.md, "Training recipe"),
#: or a one-hidden-layer MLP of ``HIDDEN`` units.
MODELS = ("logistic", "mlp")


def make_model(n_features: int, kind: str = "logistic", hidden: int = HIDDEN) -> nn.Module:
    """A model with one logit out (Opacus supports its layers)."""
    if kind == "logistic":
        return nn.Sequential(nn.Linear(n_features, 1))
    if kind == "mlp":
        return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    raise ValueError(f"unknown model {kind!r}: one of {', '.join(MODELS)}")


def initial_weights(n_features: int, seed: int = 0, kind: str = "logistic", hidden: int = HIDDEN) -> Weights:
    """The same starting weights for every brand (the server sends them in round one)."""
    torch.manual_seed(seed)
    return to_weights(make_model(n_features, kind, hidden))


def kind_of(weights: Mapping[str, np.ndarray]) -> tuple[str, int]:
    """The model kind and hidden width ``weights`` belong to, read from their names and shapes.

    Models stored before the logistic default (MLPs) therefore still load and score.
    """
    if "2.weight" in weights:
        return "mlp", int(np.asarray(weights["0.weight"]).shape[0])
    return "logistic", 0


def to_weights(model: nn.Module) -> Weights:
    """The model's parameters as numpy arrays (Opacus' wrapper unwrapped)."""
    module = getattr(model, "_module", model)  # GradSampleModule prefixes every key with "_module."
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load(weights: Mapping[str, np.ndarray], n_features: int) -> nn.Module:
    """A model holding ``weights``."""
    kind, hidden = kind_of(weights)
    model = make_model(n_features, kind, hidden or HIDDEN)
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
    return model


@dataclass(frozen=True)
class Trained:
    """What one round of local training gives back."""

    weights: Weights
    examples: int
    loss: float
    history: list[Step]  # the accountant's history after this round (unchanged without DP)
    steps: int = 0  # optimiser steps taken


def train(
    weights: Mapping[str, np.ndarray],
    x: Sequence[Sequence[float]],
    y: Sequence[float],
    *,
    epochs: int = 1,
    batch_size: int = 256,
    lr: float = 0.1,
    plan: PrivacyPlan | None = None,
    history: Sequence[Step] = (),
    seed: int = 0,
    regression: bool = False,
) -> Trained:
    """Train from ``weights`` on (x, y); with a ``plan``, DP-SGD whose spend adds to ``history``.

    ``regression``: ``y`` are real-valued targets and the loss is the squared error (a vertical
    partner's bottom model), not labels under the log-loss.
    """
    if len(x) != len(y) or not len(x):
        raise ValueError("one label per row, and at least one row")
    torch.manual_seed(seed)
    xt = torch.tensor(np.asarray(x, dtype=np.float32))
    yt = torch.tensor(np.asarray(y, dtype=np.float32)).unsqueeze(1)
    model = load(weights, xt.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(xt, yt), batch_size=min(batch_size, len(xt)), shuffle=True)
    with warnings.catch_warnings():
        # both known and harmless here: the CSPRNG needs torchcsprng (see docs/federation.md), and
        # the input layer's hook fires on outputs because inputs carry no gradient
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        return _train(model, optimizer, loader, xt, epochs, plan, history, nn.MSELoss() if regression else None)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, xt: torch.Tensor, epochs: int,
           plan: PrivacyPlan | None, history: Sequence[Step], loss_fn: nn.Module | None = None) -> Trained:
    engine = None
    if plan is not None:
        engine = PrivacyEngine(accountant="rdp")
        engine.accountant.history = [tuple(s) for s in history]  # type: ignore[misc]
        model, optimizer, loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=plan.max_grad_norm,
            poisson_sampling=True,
        )
    loss_fn = loss_fn or nn.BCEWithLogitsLoss()
    model.train()
    total, batches = 0.0, 0
    for _ in range(epochs):
        for xb, yb in loader:
            if not len(xb):  # Poisson sampling drew nobody: nothing to learn from this step
                continue
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
    new_history = list(engine.accountant.history) if engine is not None else list(history)
    return Trained(to_weights(model), len(xt), total / max(batches, 1), new_history, batches)


def predict(weights: Mapping[str, np.ndarray], x: Sequence[Sequence[float]]) -> list[float]:
    """Churn probabilities for the rows ``x``."""
    xt = torch.tensor(np.asarray(x, dtype=np.float32))
    model = load(weights, xt.shape[1])
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(xt)).squeeze(1).tolist()


def log_loss(weights: Mapping[str, np.ndarray], x: Sequence[Sequence[float]], y: Sequence[int]) -> float:
    """Mean cross-entropy of ``weights`` on (x, y): the validation loss that stopping rules watch."""
    if not len(x):
        return float("nan")
    xt = torch.tensor(np.asarray(x, dtype=np.float32))
    yt = torch.tensor(np.asarray(y, dtype=np.float32)).unsqueeze(1)
    model = load(weights, xt.shape[1])
    model.eval()
    with torch.no_grad():
        return float(nn.functional.binary_cross_entropy_with_logits(model(xt), yt))


def average(updates: Sequence[tuple[Mapping[str, np.ndarray], int]]) -> Weights:
    """FedAvg: the example-weighted mean of the brands' weights (for local checks and the baselines)."""
    total = sum(n for _, n in updates)
    if not total:
        raise ValueError("nothing to average")
    keys = updates[0][0].keys()
    return {k: sum(np.asarray(w[k], dtype=np.float64) * n for w, n in updates) / total for k in keys}  # type: ignore[misc]
