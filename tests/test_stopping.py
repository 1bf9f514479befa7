"""The one stopping rule: early stopping on a validation loss, and single-site training under it."""

from __future__ import annotations

import math

import numpy as np

from federation.metrics import auc
from federation.privacy import PrivacyPlan, epsilon_of
from federation.stopping import EarlyStop, fit
from federation.training import initial_weights, predict

N, D = 1200, 5


def rows(seed: int) -> tuple[list[list[float]], list[int]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    y = (x[:, 0] - x[:, 1] + rng.normal(scale=0.8, size=N) > 0).astype(int)
    return x.tolist(), y.tolist()


def test_a_rule_stops_after_patience_checks_without_improvement() -> None:
    stop = EarlyStop(patience=2)
    for loss in (0.7, 0.6, 0.61, 0.62):
        stop.observe(loss)
    assert stop.stopped
    assert (stop.best, stop.best_check) == (0.6, 2)


def test_an_improvement_resets_the_patience() -> None:
    stop = EarlyStop(patience=2)
    for loss in (0.7, 0.71, 0.5, 0.51):
        stop.observe(loss)
    assert not stop.stopped


def test_a_wiggle_smaller_than_the_threshold_is_no_improvement() -> None:
    stop = EarlyStop(patience=1)
    stop.observe(0.5)
    assert not stop.observe(0.5 - 1e-6)
    assert stop.stopped


def test_an_unknown_loss_never_counts_as_the_best() -> None:
    stop = EarlyStop(patience=3)
    assert not stop.observe(math.nan)
    assert stop.best == math.inf


def test_patience_zero_never_stops() -> None:
    stop = EarlyStop(patience=0)
    for _ in range(50):
        stop.observe(1.0)
    assert not stop.stopped


def test_fit_stops_before_the_cap_once_the_validation_loss_settles_and_learns() -> None:
    x, y = rows(1)
    xv, yv = rows(2)
    fitted = fit(initial_weights(D), x, y, xv, yv, max_epochs=200, patience=3, batch_size=64, lr=0.5)
    assert fitted.checks < 200
    assert fitted.steps == fitted.checks * math.ceil(N / 64)
    assert auc(yv, predict(fitted.weights, xv)) > 0.85


def test_a_dp_fit_runs_every_epoch_and_spends_its_whole_budget() -> None:
    x, y = rows(1)
    xv, yv = rows(2)
    plan = PrivacyPlan.for_run(3.0, 1e-5, N, 256, 1, 8, max_grad_norm=2.0)
    fitted = fit(initial_weights(D), x, y, xv, yv, max_epochs=8, patience=1, batch_size=256, lr=0.5, plan=plan)
    assert fitted.checks == 8
    assert 2.9 < epsilon_of(fitted.history, 1e-5) <= 3.0 + 1e-6
    assert auc(yv, predict(fitted.weights, xv)) > 0.8


def test_a_brand_fine_tunes_the_joint_model_on_its_own_rows() -> None:
    from federation.simulate import Bench, Brand, SimulationSettings

    brands = [Brand(name, *rows(seed)) for name, seed in (("air", 1), ("shop", 2))]
    bench = Bench(brands, SimulationSettings(rounds=3))
    tuned = bench.fine_tuned(bench.start)
    assert set(tuned) == {"air", "shop"}
    assert all(v > 0.8 for v in tuned.values())  # from untrained weights, its own rows teach it
