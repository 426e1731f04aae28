"""The toy world's points: six classes in the plane, where the course's mechanisms show in
seconds (a model in it is :mod:`sovr_tutorial.toy.model`, its runs and command line
:mod:`sovr_tutorial.lab.toy`, its figures :mod:`sovr_tutorial.figures.toy`).

Two worlds, chosen by ``kind`` (:data:`WORLD_KINDS`):

- ``"overlap"`` (the default, the world of claims 1 and 2): each class is a tight core
  around a point on a circle plus a fraction of *wide* points that spill into the
  neighbouring classes: the easy and the hard samples of the paper, the hard ones mostly
  misclassified.
- ``"two-populations"`` (built for claim 3): each class is a tight core far from every
  boundary (the *easy* points) plus a fraction of *hard* points placed just inside one of
  its two boundary lines (the perpendicular bisectors between its centre and its
  neighbours'), a little more than the eps-box's reach from the line, so the classes are
  separable at eps, but only just (the constants are HARD_FRACTION, HARD_GAP, HARD_SPREAD).

The points are scaled into [0, 1]^2, so the package's own attacks (L-inf, eps in those
units) work on them unchanged, and the one training loop (:func:`sovr_tutorial.train.fit`)
trains the MLP of the ``toy`` tier (:func:`toy_tier`) with every method.
"""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_choice, check_number, check_ratio
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

# The two-populations world (kind "two-populations"): the same centres and cores (the easy
# points: a core point lies RADIUS * sin(pi / 6) = 1.0 from its class's boundary lines,
# 3.3 eps or 4 core stds); a share HARD_FRACTION of the points are hard instead (the same
# share as the overlap world's wide points). A hard point of class k sits beside one of its
# two boundary lines (to class k + 1 or k - 1, half each): the bisector of the two centres,
# a ray from the origin. Along the ray it lies within HARD_SPREAD of the centres' midpoint
# (RADIUS * cos(pi / 6) = 1.73 from the origin); across it, on class k's side, at a distance
# of HARD_GAP times the reach of an eps-box across that line, drawn uniformly. The reach of
# the L-inf box of radius HARD_EPS across a line of unit normal n is HARD_EPS * ||n||_1
# (0.3 for a vertical line, 0.41 for the slanted ones), so the eps-box of a hard point stays
# on its side by 0.1 to 0.5 reach: separable at eps, only just. (Near the origin a hard point
# may be closer to its sector's other line; it is then still at least 1.1 reaches from it.)
HARD_FRACTION = 0.3
HARD_EPS = 0.3            # data units: the toy tier's eps (0.0375 in [0, 1]) in data units
HARD_GAP = (1.1, 1.5)     # distance from the line / the eps-box's reach across it
HARD_SPREAD = 0.75        # data units, either way along the line from the centres' midpoint
#: the worlds make_points and make_world draw
WORLD_KINDS = ("overlap", "two-populations")
DEFAULT_WORLD = "overlap"
# The hard points' geometry holds (each eps-box inside its class's sector, at least HARD_GAP[0]
# reaches from both its lines) for 4 to 6 classes; with 3, points near the origin come closer
# to the sector's other line, with 7 or more the sector is too narrow.
TWO_POPULATIONS_CLASSES = (4, 6)

# Decision regions are stored as the predicted class on a REGION_GRID x REGION_GRID grid.
REGION_GRID = 120


# --------------------------------------------------------------------------- the world

def to_unit(points: np.ndarray) -> np.ndarray:
    """Data units (N, 2) -> the [0, 1]^2 square the model sees (clipped at its edges)."""
    return np.clip(points * SCALE + 0.5, 0.0, 1.0)


def eps_in_data_units(eps: float) -> float:
    """An L-inf budget in [0, 1] units as a distance in the world's data units."""
    return eps / SCALE


def class_centres(num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The class centres in data units, (num_classes, 2): class k at angle 2 pi k / K."""
    num_classes = check_number("num_classes", num_classes, low=2, integer=True)
    angle = 2 * np.pi * np.arange(num_classes) / num_classes
    return RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def boundary_lines(num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The boundary rays between neighbouring classes, as their angles (num_classes,):
    ray k (from the origin, at angle 2 pi (k + 1/2) / K) is the perpendicular bisector of
    centres k and k + 1, so class k's sector lies between rays k - 1 and k."""
    num_classes = check_number("num_classes", num_classes, low=2, integer=True)
    return 2 * np.pi * (np.arange(num_classes) + 0.5) / num_classes


def box_reach(normal_angle, eps: float = HARD_EPS):
    """How far an L-inf box of radius ``eps`` reaches across a line whose unit normal is at
    ``normal_angle`` (radians; array or float): ``eps * (|cos| + |sin|)``, data units."""
    eps = check_number("eps", eps, low=0.0)
    a = np.asarray(normal_angle, dtype=np.float64)
    return eps * (np.abs(np.cos(a)) + np.abs(np.sin(a)))


def to_data(x) -> np.ndarray:
    """[0, 1]^2 points (N, 2), tensor or array, back in data units (float64)."""
    return (np.asarray(x, dtype=np.float64) - 0.5) / SCALE


def _two_populations(rng, y, num_classes: int, hard_fraction: float):
    """Points in data units and the hard mask for labels ``y`` (see the module docstring)."""
    n = len(y)
    hard = rng.random(n) < hard_fraction
    angle = 2 * np.pi * y / num_classes
    centre = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    core = centre + CORE_STD * rng.standard_normal((n, 2))
    side = 2 * rng.integers(0, 2, n) - 1          # +1: the line to class y + 1, -1: to y - 1
    line = angle + side * np.pi / num_classes      # the ray's angle
    normal = line - side * np.pi / 2               # its unit normal, pointing into class y
    gap = rng.uniform(*HARD_GAP, n) * box_reach(normal)
    along = RADIUS * np.cos(np.pi / num_classes) + rng.uniform(-HARD_SPREAD, HARD_SPREAD, n)
    on_line = along[:, None] * np.stack([np.cos(line), np.sin(line)], axis=1)
    off = gap[:, None] * np.stack([np.cos(normal), np.sin(normal)], axis=1)
    return np.where(hard[:, None], on_line + off, core), hard


def make_points(n: int, seed: int, *, num_classes: int = NUM_CLASSES,
                wide_fraction: float | None = None, kind: str = DEFAULT_WORLD):
    """``n`` points drawn by ``seed``: (x float32 (n, 2) in [0, 1], y int64 (n,), wide bool (n,)).

    Classes are balanced (``n // num_classes`` or one more each) in a shuffled order; each
    point is wide (hard) with probability ``wide_fraction`` (default WIDE_FRACTION for the
    ``"overlap"`` world, HARD_FRACTION for ``"two-populations"``), else drawn from its
    class's core. ``kind`` picks the world (WORLD_KINDS, see the module docstring):
    ``"overlap"``: wide points from N(centre, WIDE_STD^2 I); ``"two-populations"``: the
    ``wide`` mask marks the hard points, placed beside a boundary line (4 to 6 classes).
    """
    n = check_number("n", n, low=1, integer=True)
    seed = check_number("seed", seed, low=0, integer=True)
    num_classes = check_number("num_classes", num_classes, low=2, integer=True)
    kind = check_choice("kind", kind, WORLD_KINDS)
    if wide_fraction is None:
        wide_fraction = WIDE_FRACTION if kind == "overlap" else HARD_FRACTION
    wide_fraction = check_ratio(wide_fraction, "wide_fraction")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % num_classes)
    if kind == "two-populations":
        lo, hi = TWO_POPULATIONS_CLASSES
        if not lo <= num_classes <= hi:
            raise ValueError(f"the two-populations world needs {lo} to {hi} classes (beyond, "
                             f"a hard point's eps-box reaches the sector's other line), got "
                             f"num_classes={num_classes}")
        points, wide = _two_populations(rng, y, num_classes, wide_fraction)
        x = to_unit(points)
    else:
        wide = rng.random(n) < wide_fraction
        angle = 2 * np.pi * y / num_classes
        centre = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        std = np.where(wide, WIDE_STD, CORE_STD)[:, None]
        x = to_unit(centre + std * rng.standard_normal((n, 2)))
    return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)),
            torch.from_numpy(wide))


def make_world(seed: int = 0, *, n_train: int = 2048, n_test: int = 2048,
               kind: str = DEFAULT_WORLD):
    """The training and test sets of ``seed`` in the world ``kind`` (WORLD_KINDS):
    ((x, y, wide), (x, y, wide)), independent draws (the test set does not depend on
    ``n_train``)."""
    seed = check_number("seed", seed, low=0, integer=True)
    return (make_points(n_train, 2 * seed, kind=kind),
            make_points(n_test, 2 * seed + 1, kind=kind))


def region_grid(n: int = REGION_GRID) -> torch.Tensor:
    """Cell centres of an n x n grid over [0, 1]^2: (n * n, 2), row by row from y = 0."""
    ticks = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def toy_tier(**overrides):
    """The ``toy`` tier of tiers.py, with optional field overrides."""
    return get_tier("toy", **overrides)
