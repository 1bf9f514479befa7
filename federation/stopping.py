"""The one stopping rule every model of a comparison follows, and single-site training under it.

A comparison of models trained for different numbers of steps measures the step counts, not the
data (docs/federation.md, "A fair comparison"). So every model trains in *checks* (an epoch over
its rows for a single-site model, a round for a federated one), is judged after each check on its
validation rows, and stops when the validation loss has not improved for ``patience`` checks, or
at the cap; the best checkpoint is the model.

Models trained with DP do not stop early: their noise is calibrated for the cap, so they run to it
and spend exactly their budget (stopping on a validation loss would also be a data-dependent
choice outside the guarantee). That favours the non-DP baselines, never the alliance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from federation.privacy import PrivacyPlan, Step
from federation.training import Weights, log_loss, train

#: Improvements smaller than this do not count: a loss that only wiggles has stopped improving.
MIN_DELTA = 1e-4


@dataclass
class EarlyStop:
    """Watches validation losses check by check; ``patience`` 0 never stops."""

    patience: int
    best: float = math.inf
    best_check: int = 0
    checks: int = 0

    def observe(self, loss: float) -> bool:
        """Record the next check's loss; True when it is the best so far."""
        self.checks += 1
        if not math.isnan(loss) and loss < self.best - MIN_DELTA:
            self.best, self.best_check = loss, self.checks
            return True
        return False

    @property
    def stopped(self) -> bool:
        """No improvement for ``patience`` checks."""
        return self.patience > 0 and self.checks - self.best_check >= self.patience


@dataclass
class Fitted:
    """A single-site model after the stopping rule: its weights, steps, checks and DP spend."""

    weights: Weights
    steps: int
    checks: int
    history: list[Step] = field(default_factory=list)


def fit(
    start: Mapping[str, np.ndarray],
    x: Sequence[Sequence[float]],
    y: Sequence[int],
    x_val: Sequence[Sequence[float]],
    y_val: Sequence[int],
    *,
    max_epochs: int,
    patience: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    plan: PrivacyPlan | None = None,
    tail: float = 0.5,
) -> Fitted:
    """Train from ``start`` epoch by epoch under the stopping rule.

    With a ``plan``: DP-SGD for every epoch, and the model is the mean of the last ``tail`` share of
    the epochs' models, as a federated DP run serves the mean of its last rounds' models.
    """
    stop = EarlyStop(0 if plan is not None else patience)
    average_from = int(max_epochs * (1 - tail)) if plan is not None and tail else max_epochs
    total: dict[str, np.ndarray] = {}
    averaged = 0
    weights, best = dict(start), dict(start)
    history: list[Step] = []
    steps = checks = 0
    for epoch in range(max_epochs):
        trained = train(weights, x, y, epochs=1, batch_size=batch_size, lr=lr, plan=plan, history=history,
                        seed=seed * 1000 + epoch)
        weights, history, steps, checks = trained.weights, trained.history, steps + trained.steps, checks + 1
        if plan is not None:  # DP: no selection on private validation rows, only the tail's mean
            if epoch >= average_from:
                total = {k: total.get(k, 0) + np.asarray(v, dtype=np.float64) for k, v in weights.items()}
                averaged += 1
                best = {k: v / averaged for k, v in total.items()}
            else:
                best = weights
        elif stop.observe(log_loss(weights, x_val, y_val)):
            best = weights
        if stop.stopped:
            break
    return Fitted(best, steps, checks, history)
