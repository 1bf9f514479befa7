"""The privacy budget of one brand's training (pure apart from Opacus' accountant maths).

Two mistakes make a reported epsilon meaningless across federated rounds: a new accountant every
round (the epsilon is then per round) and calibrating noise every round as if nothing had been
spent. Here the noise multiplier is fixed once for the whole run, and the accountant's history
(noise, sample rate, steps) is kept from round to round, so :func:`epsilon_of` is always the
cumulative spend. A round is refused before it starts when it would take the spend past the budget.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from opacus.accountants.utils import get_noise_multiplier

#: One accountant step record: (noise multiplier, sample rate, steps); ``(PURE, epsilon, count)`` for
#: ``count`` pure epsilon-DP releases (randomized response), which Opacus' accountant cannot express.
Step = tuple[float, float, int]
PURE = -1.0
#: The Renyi orders of every epsilon reported: Opacus' RDP accountant's defaults.
ORDERS = list(RDPAccountant.DEFAULT_ALPHAS)

#: Integer Renyi orders for calibrating the noise: six times faster than Opacus' default orders,
#: which include fractional ones, and never below them (fewer orders can only raise the epsilon
#: bound), so the noise found is enough for the target under the default accounting too.
CALIBRATION_ORDERS = [*range(2, 65), 80, 96, 128, 256]


class BudgetExceeded(Exception):
    """The next round would spend more than the brand's budget; nothing was trained."""

    def __init__(self, spent: float, next_total: float, budget: float) -> None:
        super().__init__(
            f"the next round would bring epsilon from {spent:.3f} to {next_total:.3f}, over the budget of {budget:.3f}"
        )
        self.spent, self.next_total, self.budget = spent, next_total, budget


@dataclass(frozen=True)
class PrivacyPlan:
    """DP-SGD settings fixed for a whole run, so that ``target_epsilon`` is what the run spends."""

    target_epsilon: float
    delta: float
    sample_rate: float
    steps_per_round: int
    rounds: int
    noise_multiplier: float
    max_grad_norm: float = 1.0

    @classmethod
    def for_run(
        cls,
        target_epsilon: float,
        delta: float,
        rows: int,
        batch_size: int,
        epochs_per_round: int,
        rounds: int,
        max_grad_norm: float = 1.0,
        noise_multiplier: float | None = None,
    ) -> PrivacyPlan:
        """Calibrate the noise once, for every step of every round (Poisson sampling, one batch expected per step).

        A run that already started passes the ``noise_multiplier`` it fixed then: only the sample
        rate follows the current rows (members who withdrew), and no calibration is repeated.
        """
        if target_epsilon <= 0 or not 0 < delta < 1:
            raise ValueError("epsilon is positive and delta lies in (0, 1)")
        if rows < 1 or batch_size < 1 or epochs_per_round < 1 or rounds < 1:
            raise ValueError("rows, batch size, epochs and rounds are positive")
        # exactly what Opacus does with a loader of this batch size: it samples each row with
        # probability 1/len(loader) for len(loader) steps an epoch; planning with batch/rows instead
        # calibrated the noise for a higher rate than was used, and left up to a fifth of the budget unspent
        batches = max(1, math.ceil(rows / batch_size))
        sample_rate = 1.0 / batches
        steps = epochs_per_round * int(1 / sample_rate)
        if noise_multiplier is None:
            noise_multiplier = _calibrate(target_epsilon, delta, sample_rate, steps * rounds)
        return cls(target_epsilon, delta, sample_rate, steps, rounds, noise_multiplier, max_grad_norm)

    def round_step(self) -> Step:
        """What one round adds to the accountant's history."""
        return (self.noise_multiplier, self.sample_rate, self.steps_per_round)


def _calibrate(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")  # valid bound, not the tightest
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant="rdp",
                alphas=CALIBRATION_ORDERS,
            )
        )


def pure_step(epsilon: float) -> Step:
    """A pure ``epsilon``-DP release (randomized response) as an entry of an accountant history."""
    if not epsilon > 0:
        raise ValueError("a pure release has a positive epsilon")
    return (PURE, float(epsilon), 1)


@lru_cache(maxsize=1024)
def _step_rdp(noise: float, rate: float) -> np.ndarray:
    """One Gaussian step's RDP at Opacus' default orders (what its RDP accountant sums; cached, since
    calibrating a release asks for the same steps dozens of times)."""
    return np.asarray(compute_rdp(q=rate, noise_multiplier=noise, steps=1, orders=ORDERS), dtype=np.float64)


def epsilon_of(history: Sequence[Step], delta: float) -> float:
    """Cumulative epsilon of everything in ``history`` at ``delta`` (0 for no training).

    Gaussian steps compose by RDP exactly as Opacus' ``RDPAccountant`` does (the same orders, the
    same conversion); pure releases (:func:`pure_step`) add their epsilon to that (basic composition
    of an (ε₁, δ) and an (ε₂, 0) mechanism is (ε₁ + ε₂, δ)).
    """
    pure = sum(rate * steps for noise, rate, steps in history if noise == PURE)
    merged: dict[tuple[float, float], int] = {}
    for noise, rate, steps in history:  # RDP adds up over steps: equal (noise, rate) entries merge exactly
        if noise != PURE:
            merged[(noise, rate)] = merged.get((noise, rate), 0) + steps
    if not merged:
        return float(pure)
    rdp = sum(_step_rdp(float(noise), float(rate)) * steps for (noise, rate), steps in merged.items())
    with warnings.catch_warnings():
        # "optimal order is the smallest/largest alpha": the bound is still valid, only not the tightest
        warnings.filterwarnings("ignore", message="Optimal order is the")
        eps, _ = get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)
    return float(eps) + float(pure)


def check_budget(history: Sequence[Step], plan: PrivacyPlan, budget: float) -> float:
    """The epsilon after one more round of ``plan``; :class:`BudgetExceeded` if that passes ``budget``."""
    spent = epsilon_of(history, plan.delta)
    after = epsilon_of([*history, plan.round_step()], plan.delta)
    if after > budget + 1e-9:
        raise BudgetExceeded(spent, after, budget)
    return after
