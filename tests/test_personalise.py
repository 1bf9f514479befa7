"""Each brand's served model: the joint model blended with its own, the share chosen on its own rows."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.personalise import SHARES, blend, choose, with_validation
from federation.site import BrandData
from federation.training import initial_weights, log_loss, predict


def rows(n: int, sign: float, seed: int) -> tuple[list[list[float]], list[int]]:
    """Labels follow the first column's sign times ``sign``: opposite signs make opposite brands."""
    rng = random.Random(seed)
    x = [[rng.gauss(0, 1), rng.gauss(0, 1)] for _ in range(n)]
    return x, [int(sign * r[0] > 0) for r in x]


def logistic(w0: float, w1: float = 0.0, b: float = 0.0) -> dict[str, np.ndarray]:
    w = initial_weights(2, 0, "logistic")
    (wk,) = [k for k in w if k.endswith("weight")]
    (bk,) = [k for k in w if k.endswith("bias")]
    return {wk: np.array([[w0, w1]], dtype=np.float32), bk: np.array([b], dtype=np.float32)}


def test_share_one_is_the_joint_model_and_share_zero_the_brands_own() -> None:
    own, joint = logistic(1.0, 2.0), logistic(-3.0, 0.5, 1.0)
    assert all(np.allclose(blend(own, joint, 1.0)[k], joint[k]) for k in joint)
    assert all(np.allclose(blend(own, joint, 0.0)[k], own[k]) for k in own)


@settings(max_examples=30, deadline=None)
@given(
    share=st.floats(0, 1),
    a=st.floats(-2, 2),  # log-odds within about ±7: float32 probabilities still tell them apart
    b=st.floats(-2, 2),
    x0=st.floats(-2, 2),
    x1=st.floats(-2, 2),
)
def test_for_the_logistic_model_a_blend_mixes_the_two_models_log_odds(
    share: float, a: float, b: float, x0: float, x1: float
) -> None:
    own, joint = logistic(a, 1.0), logistic(b, -1.0, 0.5)

    def logit(w: dict[str, np.ndarray]) -> float:
        p = predict(w, [[x0, x1]])[0]
        return math.log(p / (1 - p))

    expected = share * logit(joint) + (1 - share) * logit(own)
    assert logit(blend(own, joint, share)) == pytest.approx(expected, abs=1e-3)


def test_a_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        blend(logistic(1), logistic(2), 1.5)


def test_models_of_different_kinds_are_not_blended() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        blend(logistic(1), initial_weights(2, 0, "mlp"), 0.5)


def test_a_brand_unlike_the_others_keeps_mostly_its_own_model() -> None:
    x, y = rows(400, -1.0, 1)  # this brand's members churn the other way round
    chosen = choose(logistic(-4.0), logistic(4.0), x, y)
    assert chosen.share == 0.0
    assert chosen.val_loss == pytest.approx(log_loss(logistic(-4.0), x, y))


def test_a_brand_whose_own_model_learnt_nothing_serves_the_joint_model() -> None:
    x, y = rows(400, 1.0, 2)
    assert choose(logistic(0.0), logistic(4.0), x, y).share == 1.0


def test_the_chosen_share_has_the_lowest_validation_loss_of_those_tried() -> None:
    x, y = rows(300, 1.0, 3)
    own, joint = logistic(0.5, 1.0), logistic(2.0, -1.0)
    chosen = choose(own, joint, x, y)
    assert chosen.val_loss == pytest.approx(min(log_loss(blend(own, joint, s), x, y) for s in SHARES))


def test_without_validation_rows_the_joint_model_is_served_as_received() -> None:
    joint = logistic(2.0)
    chosen = choose(logistic(-1.0), joint, [], [])
    assert chosen.share == 1.0
    assert all(np.array_equal(chosen.weights[k], joint[k]) for k in joint)


def test_validation_rows_are_a_stratified_fifth_taken_from_the_training_rows() -> None:
    x, y = rows(500, 1.0, 4)
    data = BrandData(x, y, x[:10], y[:10], tuple(f"m{i}" for i in range(500)))
    split = with_validation(data, 0.2, seed=1)
    assert len(split.y_val) + len(split.y_train) == 500
    assert len(split.members) == len(split.y_train)
    assert abs(len(split.y_val) - 100) <= 1
    assert abs(sum(split.y_val) / len(split.y_val) - sum(y) / len(y)) < 0.01
    assert sorted(map(tuple, split.x_train + split.x_val)) == sorted(map(tuple, x))
    assert split.x_test == data.x_test


def test_rows_that_have_validation_rows_already_are_left_alone() -> None:
    x, y = rows(50, 1.0, 5)
    data = BrandData(x, y, [], [], (), x[:5], y[:5])
    assert with_validation(data) is data
