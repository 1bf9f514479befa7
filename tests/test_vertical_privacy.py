"""What the label holder and each partner release in a vertical run, and what it costs them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.privacy import BudgetExceeded, epsilon_of
from federation.training import initial_weights, train
from federation.vertical import LabelPlan, PartnerPlan, gaussian_release, log_odds_gradient, release_noise, scores


@pytest.mark.parametrize("releases", [1, 2, 5])
def test_the_release_noise_spends_exactly_the_epsilon_asked_for(releases: int) -> None:
    noise = release_noise(3.0, 1e-5, releases)
    assert epsilon_of([(noise, 1.0, releases)], 1e-5) == pytest.approx(3.0, abs=1e-3)


def test_more_releases_need_more_noise_for_the_same_epsilon() -> None:
    assert release_noise(3.0, 1e-5, 1) < release_noise(3.0, 1e-5, 2) < release_noise(3.0, 1e-5, 10)


def test_the_release_noise_counts_what_was_spent_before() -> None:
    before = [(1.0, 0.01, 100)]
    noise = release_noise(3.0, 1e-5, 1, before)
    assert noise > release_noise(3.0, 1e-5, 1)
    assert epsilon_of([*before, (noise, 1.0, 1)], 1e-5) == pytest.approx(3.0, abs=1e-3)


def test_nothing_is_released_once_the_budget_is_spent() -> None:
    with pytest.raises(BudgetExceeded):
        release_noise(1.0, 1e-5, 1, [(0.5, 1.0, 10)])


def test_a_label_plan_spends_its_epsilon_over_its_rounds() -> None:
    plan = LabelPlan.for_run(3.0, 1e-5, rounds=2)
    assert epsilon_of([plan.round_step()] * 2, 1e-5) == pytest.approx(3.0, abs=1e-3)
    assert plan.round_step()[1] == 1.0  # the partner sees whom it is told about: no sampling to hide in


def test_a_partner_plan_spends_its_epsilon_on_training_and_releases_together() -> None:
    plan = PartnerPlan.for_run(3.0, 1e-5, rows=5000, rounds=2, batch_size=256, epochs=5)
    history = [step for _ in range(2) for step in plan.round_steps()]
    assert epsilon_of(history, 1e-5) == pytest.approx(3.0, abs=1e-3)
    sgd_only = [plan.sgd.round_step()] * 2
    assert epsilon_of(sgd_only, 1e-5) == pytest.approx(0.75, abs=0.02)  # its training share, a quarter


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3), min_size=1, max_size=20),
    clip=st.floats(0.1, 10),
)
def test_without_noise_a_release_is_each_row_clipped_to_the_bound(rows: list[list[float]], clip: float) -> None:
    out = gaussian_release(np.array(rows), clip, 0.0, np.random.default_rng(0))
    assert (np.linalg.norm(out, axis=1) <= clip * (1 + 1e-9)).all()
    small = np.linalg.norm(rows, axis=1) <= clip
    assert np.allclose(out[small], np.array(rows)[small])


def test_the_noise_is_scaled_to_twice_the_bound_because_a_member_is_replaced_not_removed() -> None:
    out = gaussian_release(np.zeros((200_000, 1)), clip=2.0, noise=1.5, rng=np.random.default_rng(1))
    assert out.std() == pytest.approx(1.5 * 2 * 2.0, rel=0.01)


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
