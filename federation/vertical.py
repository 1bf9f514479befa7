"""Vertical federated learning: what the label holder and each partner release, and what it costs.

The same members (aligned by PSI, :mod:`federation.psi`) are known to several brands; one brand
holds the label. A run has ``rounds`` rounds, each of two messages per partner (Flower's
``train``/``query`` pattern, :mod:`federation.vertical_server`, :mod:`federation.vertical_client`):

1. ``train``: the label holder sends, for every aligned training member, the gradient of its
   log-loss with respect to the partner's contribution to the member's log-odds, ``p − ỹ``. With DP,
   ``ỹ`` is the member's label released once per run with Gaussian noise (:class:`LabelPlan`) and
   ``p`` comes from a model fitted to those noised labels only, so every gradient of every round
   is post-processing of that one release. The partner trains its bottom model (a linear scorer
   over its own features) to move the log-odds against the gradient, with Opacus DP-SGD.
2. ``query``: the partner answers every aligned member's score from its bottom model (training and
   held-out members: the label holder scores with it), scaled by the model's weight norm, clipped
   to ``[−C_h, C_h]`` and noised (a Gaussian release of each member's embedding, :class:`PartnerPlan`).

The label holder then fits its top model (logistic regression over its own features and every
partner's released scores) on its own members, which is its own business: no DP towards itself.

Why these releases are accounted at sample rate 1: the label holder chooses whom it asks about and
the partner sees whom it is asked about, so neither release is hidden in a random sample and no
subsampling amplification applies. Why the noise is scaled to twice the clipping bound: both sides
know who is in the intersection, so neighbouring datasets *replace* one member's values rather than
add or remove the member, and a value clipped to norm C moves by up to 2C. The partner's bottom model
is trained with DP-SGD because later scores of other members carry what it learnt from each member.

The label holder's own top model (what it serves) is fitted on its true labels: it never leaves the
label holder, and nothing sent to a partner is computed from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from federation.privacy import BudgetExceeded, PrivacyPlan, Step, epsilon_of

#: The label holder's gradients are clipped to this (a log-loss gradient ``p − y`` lies in (−1, 1)).
GRADIENT_CLIP = 1.0
#: The label holder's labels, centred to ±0.5, are released with this bound (replacing one label
#: moves the value by 1 = twice the bound).
LABEL_CLIP = 0.5
#: Partners' scores, divided by their bottom model's weight norm, are clipped to this.
EMBEDDING_CLIP = 2.0
#: The share of a partner's epsilon that DP-SGD of its bottom model may take; the rest is the
#: release of the scores, whose noise every member's prediction carries and so matters most.
TRAIN_SHARE = 0.25


def release_noise(epsilon: float, delta: float, releases: int, before: Sequence[Step] = ()) -> float:
    """The noise multiplier for ``releases`` Gaussian releases at sample rate 1 that bring the
    spend, after ``before``, to ``epsilon`` (RDP through Opacus' accountant, like every other spend)."""
    if epsilon <= 0 or not 0 < delta < 1 or releases < 1:
        raise ValueError("epsilon is positive, delta lies in (0, 1) and there is at least one release")
    spent = epsilon_of(before, delta)
    if spent >= epsilon:
        raise BudgetExceeded(spent, spent, epsilon)
    low, high = 0.05, 1.0
    while epsilon_of([*before, (high, 1.0, releases)], delta) > epsilon:
        low, high = high, high * 2
        if high > 1e6:
            raise BudgetExceeded(spent, math.inf, epsilon)
    for _ in range(40):  # bisection to a relative precision far below what the noise itself varies by
        mid = (low + high) / 2
        if epsilon_of([*before, (mid, 1.0, releases)], delta) > epsilon:
            low = mid
        else:
            high = mid
    return high


def gaussian_release(values: np.ndarray, clip: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``values`` scaled into the ball of radius ``clip``, plus Gaussian noise of standard
    deviation ``noise × 2 × clip`` on every coordinate (replace-one sensitivity; ``noise`` 0: none)."""
    rows = np.atleast_2d(np.asarray(values, dtype=np.float64))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    clipped = rows * np.minimum(1.0, clip / np.maximum(norms, 1e-12))
    if noise <= 0:
        return clipped
    return clipped + rng.normal(0.0, noise * 2 * clip, size=clipped.shape)


@dataclass(frozen=True)
class LabelPlan:
    """The label holder's DP: ``rounds`` Gaussian releases of every training member's value (a vertical
    run releases the labels once, ``rounds`` = 1, and computes every gradient from that release)."""

    epsilon: float
    delta: float
    rounds: int
    noise: float
    clip: float = GRADIENT_CLIP

    @classmethod
    def for_run(cls, epsilon: float, delta: float, rounds: int, before: Sequence[Step] = ()) -> LabelPlan:
        """Calibrated so that ``rounds`` releases after ``before`` spend ``epsilon`` in all."""
        return cls(epsilon, delta, rounds, release_noise(epsilon, delta, rounds, before))

    def round_step(self) -> Step:
        """What one round adds to the label holder's accountant history."""
        return (self.noise, 1.0, 1)


@dataclass(frozen=True)
class PartnerPlan:
    """A partner's DP for a run: DP-SGD of its bottom model and one release of the scores per round."""

    epsilon: float
    delta: float
    rounds: int
    sgd: PrivacyPlan
    noise: float
    clip: float = EMBEDDING_CLIP

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
        """DP-SGD calibrated for ``train_share`` of ``epsilon``; the scores' noise for what is left."""
        if not 0 < train_share < 1:
            raise ValueError("the training share of epsilon lies in (0, 1)")
        sgd = PrivacyPlan.for_run(epsilon * train_share, delta, rows, batch_size, epochs, rounds, max_grad_norm)
        trained = [*before, *(sgd.round_step() for _ in range(rounds))]
        return cls(epsilon, delta, rounds, sgd, release_noise(epsilon, delta, rounds, trained))

    def round_steps(self) -> list[Step]:
        """What one round (training, then the release of the scores) adds to the accountant history."""
        return [self.sgd.round_step(), (self.noise, 1.0, 1)]


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
