"""The toy world's points: six classes in the plane, where the course's mechanisms show in
seconds (a model in it is :mod:`sovr_tutorial.toy.model`, its runs and command line
:mod:`sovr_tutorial.lab.toy`, its figures :mod:`sovr_tutorial.figures.toy`).

Each class is a tight core around a point on a circle plus a fraction of *wide* points
that spill into the neighbouring classes: the easy and the hard samples of the paper.
The points are scaled into [0, 1]^2, so the package's own attacks (L-inf, eps in those
units) work on them unchanged, and the one training loop (:func:`sovr_tutorial.train.fit`)
trains the MLP of the ``toy`` tier (:func:`toy_tier`) with every method.
"""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_number, check_ratio
from ..tiers import get_tier

# The world in data units: class centres on a circle of radius RADIUS; core points drawn
# from N(centre, CORE_STD^2 I), wide points from N(centre, WIDE_STD^2 I). Neighbouring
# centres are RADIUS apart (six classes: a hexagon), so wide points reach the neighbours.
NUM_CLASSES = 6
RADIUS = 2.0
CORE_STD = 0.25
WIDE_STD = 1.0
WIDE_FRACTION = 0.3
# Data units -> [0, 1]: the square [-HALF_WIDTH, HALF_WIDTH]^2 maps onto [0, 1]^2 (the few
# wide points outside it are clipped onto its edge). eps 0.0375 in [0, 1] is 0.3 here.
HALF_WIDTH = 4.0
SCALE = 1.0 / (2 * HALF_WIDTH)

# Decision regions are stored as the predicted class on a REGION_GRID x REGION_GRID grid.
REGION_GRID = 120


# --------------------------------------------------------------------------- the world

def to_unit(points: np.ndarray) -> np.ndarray:
    """Data units (N, 2) -> the [0, 1]^2 square the model sees (clipped at its edges)."""
    return np.clip(points * SCALE + 0.5, 0.0, 1.0)


def eps_in_data_units(eps: float) -> float:
    """An L-inf budget in [0, 1] units as a distance in the world's data units."""
    return eps / SCALE


def make_points(n: int, seed: int, *, num_classes: int = NUM_CLASSES,
                wide_fraction: float = WIDE_FRACTION):
    """``n`` points drawn by ``seed``: (x float32 (n, 2) in [0, 1], y int64 (n,), wide bool (n,)).

    Classes are balanced (``n // num_classes`` or one more each) in a shuffled order; each
    point is wide with probability ``wide_fraction``, else drawn from its class's core.
    """
    n = check_number("n", n, low=1, integer=True)
    seed = check_number("seed", seed, low=0, integer=True)
    num_classes = check_number("num_classes", num_classes, low=2, integer=True)
    wide_fraction = check_ratio(wide_fraction, "wide_fraction")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % num_classes)
    wide = rng.random(n) < wide_fraction
    angle = 2 * np.pi * y / num_classes
    centre = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    std = np.where(wide, WIDE_STD, CORE_STD)[:, None]
    x = to_unit(centre + std * rng.standard_normal((n, 2)))
    return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)),
            torch.from_numpy(wide))


def make_world(seed: int = 0, *, n_train: int = 2048, n_test: int = 2048):
    """The training and test sets of ``seed``: ((x, y, wide), (x, y, wide)), independent draws
    (the test set does not depend on ``n_train``)."""
    seed = check_number("seed", seed, low=0, integer=True)
    return make_points(n_train, 2 * seed), make_points(n_test, 2 * seed + 1)


def region_grid(n: int = REGION_GRID) -> torch.Tensor:
    """Cell centres of an n x n grid over [0, 1]^2: (n * n, 2), row by row from y = 0."""
    ticks = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def toy_tier(**overrides):
    """The ``toy`` tier of tiers.py, with optional field overrides."""
    return get_tier("toy", **overrides)
