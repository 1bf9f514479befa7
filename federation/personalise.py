"""The model a brand serves: its own blend of the joint model and a model of its own members.

A joint model trained under DP can serve a brand worse than the brand's own model does: the noise
that protects the other brands costs most where a brand has enough members of its own and a mix
unlike the others' (docs/federation.md, "What each brand serves"). So each brand blends the two
(model interpolation, Mansour et al. 2020, "Three approaches for personalization with applications
to federated learning"): ``share × joint + (1 − share) × own``, with the share chosen on the brand's
own validation rows. For the logistic model this is the same as blending the two models' log-odds.

Privacy: the own model is trained on the brand's members without DP and never leaves the brand;
for the other brands the blend is post-processing of a DP release, so their guarantee holds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from federation.site import BrandData
from federation.training import Weights, log_loss

#: The joint model's shares tried, from all of it down to none: ties keep the larger share.
SHARES = tuple(i / 10 for i in range(10, -1, -1))


@dataclass(frozen=True)
class Blend:
    """A brand's served model, the joint model's share in it and the validation loss that chose it."""

    weights: Weights
    share: float
    val_loss: float


def blend(own: Mapping[str, np.ndarray], joint: Mapping[str, np.ndarray], share: float) -> Weights:
    """``share × joint + (1 − share) × own``, tensor by tensor (the two must have the same shapes)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the joint model's share must be in [0, 1], not {share}")
    if own.keys() != joint.keys() or any(np.shape(own[k]) != np.shape(joint[k]) for k in own):
        raise ValueError("the brand's own model and the joint model differ in shape: train both as the same kind")
    return {k: share * np.asarray(joint[k], np.float64) + (1 - share) * np.asarray(own[k], np.float64) for k in own}


def choose(
    own: Mapping[str, np.ndarray],
    joint: Mapping[str, np.ndarray],
    x_val: Sequence[Sequence[float]],
    y_val: Sequence[int],
    shares: Sequence[float] = SHARES,
) -> Blend:
    """The blend with the lowest validation loss; without validation rows, the joint model as received."""
    if not len(y_val):
        return Blend(dict(joint), 1.0, math.nan)
    best: Blend | None = None
    for share in shares:
        weights = blend(own, joint, share)
        loss = log_loss(weights, x_val, y_val)
        if best is None or loss < best.val_loss:
            best = Blend(weights, share, loss)
    assert best is not None
    return best


def with_validation(data: BrandData, fraction: float = 0.2, seed: int = 0) -> BrandData:
    """``data`` with a stratified ``fraction`` of its training rows moved to validation rows, unless it
    has validation rows already (a node's site splits only training and held-out rows)."""
    if data.y_val or not data.y_train:
        return data
    rng = random.Random(f"validation:{seed}")
    val: list[int] = []
    for label in (0, 1):
        idx = [i for i, v in enumerate(data.y_train) if v == label]
        rng.shuffle(idx)
        val += idx[: round(len(idx) * fraction)] if len(idx) > 1 else []
    chosen = set(val)
    keep = [i for i in range(len(data.y_train)) if i not in chosen]
    val.sort()
    return replace(
        data,
        x_train=[data.x_train[i] for i in keep],
        y_train=[data.y_train[i] for i in keep],
        members=tuple(data.members[i] for i in keep) if len(data.members) == len(data.y_train) else data.members,
        x_val=[data.x_train[i] for i in val],
        y_val=[data.y_train[i] for i in val],
    )
