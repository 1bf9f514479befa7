"""What the label holder and each partner release in a vertical run, and what it costs them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.privacy import BudgetExceeded, epsilon_of, pure_step
from federation.training import initial_weights, train
from federation.vertical import LabelPlan, PartnerPlan, log_odds_gradient, randomized_response, rr_keep, scores


@pytest.mark.parametrize(("epsilon", "levels"), [(1.0, 2), (3.0, 2), (2.0, 4)])
def test_randomized_response_keeps_a_value_as_often_as_its_epsilon_allows(epsilon: float, levels: int) -> None:
    values = np.zeros(200_000, dtype=np.int64)
    out = randomized_response(values, epsilon, np.random.default_rng(1), levels)
    assert (out == 0).mean() == pytest.approx(math.exp(epsilon) / (math.exp(epsilon) + levels - 1), abs=0.005)
    others = np.bincount(out[out != 0], minlength=levels)[1:]
    assert others.min() / others.max() > 0.9  # the other levels equally likely


@settings(max_examples=40, deadline=None)
@given(epsilon=st.floats(0.05, 8), levels=st.integers(2, 8))
def test_randomized_response_is_pure_epsilon_dp(epsilon: float, levels: int) -> None:
    # any output is at most e^epsilon times likelier under one input than under another
    keep = rr_keep(epsilon, levels)
    move = (1 - keep) / (levels - 1)
    assert keep / move == pytest.approx(math.exp(epsilon))


def test_randomized_response_refuses_values_outside_its_levels() -> None:
    with pytest.raises(ValueError, match="levels"):
        randomized_response(np.array([0, 2]), 1.0, np.random.default_rng(0), levels=2)


def test_released_labels_debiased_are_unbiased() -> None:
    labels = np.tile([0, 1], 100_000)
    out = LabelPlan(1.0).release(labels, np.random.default_rng(2))
    assert out[labels == 1].mean() == pytest.approx(1.0, abs=0.02)
    assert out[labels == 0].mean() == pytest.approx(0.0, abs=0.02)


def test_a_label_release_costs_exactly_its_epsilon() -> None:
    assert epsilon_of([LabelPlan(3.0).step()], 1e-5) == pytest.approx(3.0)


def test_pure_releases_add_their_epsilon_to_the_gaussian_spend() -> None:
    gaussian = [(1.1, 0.01, 500)]
    assert epsilon_of([*gaussian, pure_step(0.5), pure_step(0.25)], 1e-5) == pytest.approx(
        epsilon_of(gaussian, 1e-5) + 0.75
    )


def test_a_partner_plan_spends_its_epsilon_on_training_and_releases_together() -> None:
    plan = PartnerPlan.for_run(3.0, 1e-5, rows=5000, rounds=2, batch_size=256, epochs=5)
    history = [step for _ in range(2) for step in plan.round_steps()]
    assert epsilon_of(history, 1e-5) == pytest.approx(3.0, abs=1e-6)
    sgd_only = [plan.sgd.round_step()] * 2
    assert epsilon_of(sgd_only, 1e-5) == pytest.approx(0.75, abs=0.02)  # its training share, a quarter


def test_nothing_is_released_when_training_alone_would_spend_the_epsilon() -> None:
    with pytest.raises(BudgetExceeded):
        PartnerPlan.for_run(1.0, 1e-5, rows=5000, rounds=1, batch_size=256, epochs=5, before=[(0.5, 1.0, 10)])


def test_a_partner_releases_each_scores_sign_mostly_kept() -> None:
    plan = PartnerPlan.for_run(3.0, 1e-5, rows=5000, rounds=1, batch_size=256, epochs=5)
    values = np.random.default_rng(3).normal(size=100_000)
    out = plan.release(values, np.random.default_rng(4))
    assert set(np.unique(out)) == {-1.0, 1.0}
    assert (np.sign(values) == out).mean() == pytest.approx(rr_keep(plan.release_epsilon), abs=0.01)


def test_the_gradient_of_the_log_loss_in_the_log_odds_is_p_minus_y() -> None:
    assert log_odds_gradient([0.9, 0.2], [1, 0]).tolist() == pytest.approx([-0.1, 0.2])


def test_scores_do_not_depend_on_the_scale_of_the_bottom_models_weights() -> None:
    w = initial_weights(4, 0)
    doubled = {k: 2 * v for k, v in w.items()}
    x = np.random.default_rng(2).normal(size=(10, 4))
    assert np.allclose(scores(w, x), scores(doubled, x))


def test_a_bottom_model_learns_a_real_valued_target_by_squared_error() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 3))
    target = 0.5 * x[:, 0] - 0.2 * x[:, 2]
    trained = train(initial_weights(3, 0), x.tolist(), target.tolist(), epochs=30, lr=0.05, regression=True)
    (w,) = [v for k, v in trained.weights.items() if k.endswith("weight")]
    assert w[0].tolist() == pytest.approx([0.5, 0.0, -0.2], abs=0.01)
    assert np.corrcoef(scores(trained.weights, x)[:, 0], target)[0, 1] > 0.99
