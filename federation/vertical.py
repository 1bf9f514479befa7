"""Vertical federated learning: what the label holder and each partner release, and what it costs.

The same members (aligned by PSI, :mod:`federation.psi`) are known to several brands; one brand
holds the label. A run has ``rounds`` rounds, each of two messages per partner (Flower's
``train``/``query`` pattern, :mod:`federation.vertical_server`, :mod:`federation.vertical_client`):

1. ``train``: the label holder sends, for every aligned training member, the gradient of its
   log-loss with respect to the partner's contribution to the member's log-odds, ``p − ỹ``. With DP,
   ``ỹ`` is the member's label released once per run by randomized response (:class:`LabelPlan`,
   debiased) and ``p`` comes from a model fitted to those released labels only, so every gradient of
   every round is post-processing of that one release. The partner trains its bottom model (a
   linear scorer over its own features) to move the log-odds against the gradient, with Opacus DP-SGD.
2. ``query``: the partner answers every aligned member's score from its bottom model (training and
   held-out members: the label holder scores with it), released as its sign by randomized response
   (:class:`PartnerPlan`).

The label holder then fits its top model (logistic regression over its own features and every
partner's released scores) on its own members, which is its own business: no DP towards itself.

Why randomized response and not Gaussian noise: each release is one low-dimensional value per
member, and a Gaussian release of it at epsilon 3 with delta 1e-5 carries noise several times its
range (measured: the partner's scores then add +0.001 AUC where the same scores without DP add
+0.03), while randomized response keeps a binary value with probability e^ε / (e^ε + 1) (95% at
epsilon 3) and is pure epsilon-DP (Ghazi et al. 2021, "Deep learning with label differential
privacy"; SecretFlow's LabelDP). Each member's value is released once, so the release is epsilon-DP
for that member whichever other members are asked about (the label holder chooses whom it asks:
there is no sampling to hide in, and none is claimed). The partner's bottom model is trained with
DP-SGD because later scores of other members carry what it learnt from each member; its spend
(RDP at delta) and the releases (pure) add up (basic composition), in the brand's book.

The label holder's own top model (what it serves) is fitted on its true labels: it never leaves the
label holder, and nothing sent to a partner is computed from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from federation.privacy import BudgetExceeded, PrivacyPlan, Step, epsilon_of, pure_step

#: The share of a partner's epsilon that DP-SGD of its bottom model may take; the rest is the
#: release of the scores, whose noise every member's prediction carries and so matters most.
TRAIN_SHARE = 0.25


def rr_keep(epsilon: float, levels: int = 2) -> float:
    """The probability that randomized response over ``levels`` values keeps the true one at ``epsilon``."""
    if not epsilon > 0 or levels < 2:
        raise ValueError("randomized response needs a positive epsilon and at least two levels")
    return math.exp(epsilon) / (math.exp(epsilon) + levels - 1)


def randomized_response(values: np.ndarray, epsilon: float, rng: np.random.Generator, levels: int = 2) -> np.ndarray:
    """Each value (an integer level in ``[0, levels)``) kept with probability :func:`rr_keep`, otherwise
    replaced by one of the other levels drawn uniformly: epsilon-DP for each value (pure)."""
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= levels):
        raise ValueError(f"randomized response releases levels 0 to {levels - 1}")
    other = rng.integers(0, levels - 1, size=v.shape)
    other = np.where(other >= v, other + 1, other)  # uniform over the levels other than the true one
    return np.where(rng.random(v.shape) < rr_keep(epsilon, levels), v, other)


def debiased(released: np.ndarray, epsilon: float) -> np.ndarray:
    """Unbiased estimates of binary values from their randomized response (``E[result] = true value``)."""
    keep = rr_keep(epsilon)
    return (np.asarray(released, dtype=np.float64) - (1 - keep)) / (2 * keep - 1)


@dataclass(frozen=True)
class LabelPlan:
    """The label holder's DP: every training member's label released once per run by randomized
    response at ``epsilon``; every gradient of the run is computed from that release."""

    epsilon: float

    def step(self) -> Step:
        """What the release adds to the label holder's accountant history."""
        return pure_step(self.epsilon)

    def release(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The labels as randomized response, debiased (values around 0 and 1)."""
        return debiased(randomized_response(np.asarray(labels, dtype=np.int64), self.epsilon, rng), self.epsilon)


@dataclass(frozen=True)
class PartnerPlan:
    """A partner's DP for a run: DP-SGD of its bottom model, and one release of the scores' signs per round."""

    epsilon: float
    delta: float
    rounds: int
    sgd: PrivacyPlan
    release_epsilon: float  # each round's release of the scores (pure)

    @classmethod
    def for_run(
        cls,
        epsilon: float,
        delta: float,
        rows: int,
        rounds: int,
        batch_size: int,
        epochs: int,
        max_grad_norm: float = 1.0,
        before: Sequence[Step] = (),
        train_share: float = TRAIN_SHARE,
    ) -> PartnerPlan:
        """DP-SGD calibrated for ``train_share`` of ``epsilon``; the releases share what is left."""
        if not 0 < train_share < 1:
            raise ValueError("the training share of epsilon lies in (0, 1)")
        sgd = PrivacyPlan.for_run(epsilon * train_share, delta, rows, batch_size, epochs, rounds, max_grad_norm)
        trained = epsilon_of([*before, *(sgd.round_step() for _ in range(rounds))], delta)
        if trained >= epsilon:
            raise BudgetExceeded(trained, trained, epsilon)
        return cls(epsilon, delta, rounds, sgd, (epsilon - trained) / rounds)

    def round_steps(self) -> list[Step]:
        """What one round (training, then the release of the scores) adds to the accountant history."""
        return [self.sgd.round_step(), pure_step(self.release_epsilon)]

    def release(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each member's score as its sign (±1) by randomized response at :attr:`release_epsilon`."""
        signs = (np.asarray(values, dtype=np.float64).reshape(-1) > 0).astype(np.int64)
        return 2.0 * randomized_response(signs, self.release_epsilon, rng) - 1.0


def log_odds_gradient(probabilities: Sequence[float], labels: Sequence[int]) -> np.ndarray:
    """``p − y`` per member: the log-loss gradient with respect to the member's log-odds."""
    return np.asarray(probabilities, dtype=np.float64) - np.asarray(labels, dtype=np.float64)


def scores(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """A linear bottom model's scores, divided by its weight norm so that their scale does not
    depend on how far training went (the clipping bound then means the same every round)."""
    (w,) = [v for k, v in weights.items() if k.endswith("weight")]
    (b,) = [v for k, v in weights.items() if k.endswith("bias")]
    raw = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T + np.asarray(b, dtype=np.float64)
    return raw / max(float(np.linalg.norm(w)), 1e-12)
