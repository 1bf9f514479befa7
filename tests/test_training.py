"""Local training: plain and DP-SGD, a cumulative epsilon across rounds, and a budget that refuses."""

from __future__ import annotations

import numpy as np
import pytest

from federation.metrics import auc
from federation.privacy import BudgetExceeded, PrivacyPlan, check_budget, epsilon_of
from federation.training import average, initial_weights, kind_of, predict, train

N, D = 2000, 6


def data(seed: int = 1) -> tuple[list[list[float]], list[int]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.5, size=N) > 0).astype(int)
    return x.tolist(), y.tolist()


def test_plain_training_learns_a_signal() -> None:
    x, y = data()
    trained = train(initial_weights(D), x, y, epochs=5, lr=0.5)
    assert auc(y, predict(trained.weights, x)) > 0.9
    assert trained.history == []


def test_dp_training_still_learns_and_records_what_it_spent() -> None:
    x, y = data()
    plan = PrivacyPlan.for_run(3.0, 1e-5, N, 256, epochs_per_round=2, rounds=3)
    trained = train(initial_weights(D), x, y, epochs=2, lr=0.5, plan=plan)
    assert auc(y, predict(trained.weights, x)) > 0.8
    assert not any(k.startswith("_module.") for k in trained.weights)  # the plain model's names travel
    assert 0 < epsilon_of(trained.history, plan.delta) < plan.target_epsilon


def test_epsilon_is_cumulative_across_rounds_and_ends_at_the_target() -> None:
    x, y = data()
    plan = PrivacyPlan.for_run(3.0, 1e-5, N, 256, epochs_per_round=1, rounds=3)
    weights, history, spent = initial_weights(D), [], []
    for r in range(3):
        trained = train(weights, x, y, epochs=1, lr=0.5, plan=plan, history=history, seed=r)
        weights, history = trained.weights, trained.history
        spent.append(epsilon_of(history, plan.delta))
    assert spent[0] < spent[1] < spent[2] <= plan.target_epsilon * 1.01
    # fixed noise for the run, planned at the rate Opacus samples at: the whole budget is used, not a third
    assert spent[2] > plan.target_epsilon * 0.98


def test_a_round_that_would_pass_the_budget_is_refused_before_training() -> None:
    plan = PrivacyPlan.for_run(3.0, 1e-5, N, 256, epochs_per_round=1, rounds=3)
    history = [plan.round_step(), plan.round_step()]
    assert check_budget(history, plan, budget=3.0) <= 3.0
    with pytest.raises(BudgetExceeded) as info:
        check_budget([*history, plan.round_step()], plan, budget=3.0)
    assert info.value.next_total > 3.0 >= info.value.spent


def test_a_plan_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="epsilon is positive"):
        PrivacyPlan.for_run(0, 1e-5, N, 256, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        PrivacyPlan.for_run(1.0, 1e-5, 0, 256, 1, 1)


def test_fedavg_weights_each_brand_by_its_examples() -> None:
    a = {"w": np.array([0.0, 0.0])}
    b = {"w": np.array([3.0, 6.0])}
    assert average([(a, 2), (b, 1)])["w"].tolist() == [1.0, 2.0]


def test_the_default_model_is_a_logistic_regression() -> None:
    assert set(initial_weights(D)) == {"0.weight", "0.bias"}
    assert kind_of(initial_weights(D)) == ("logistic", 0)


def test_an_mlp_trains_and_its_stored_weights_still_predict() -> None:
    x, y = data()
    weights = initial_weights(D, kind="mlp")
    assert kind_of(weights) == ("mlp", 16)
    trained = train(weights, x, y, epochs=5, lr=0.5)
    assert auc(y, predict(trained.weights, x)) > 0.9


def test_training_counts_its_optimiser_steps() -> None:
    x, y = data()
    assert train(initial_weights(D), x, y, epochs=3, batch_size=500, lr=0.5).steps == 3 * 4
