"""Claim 3's figures in the two-populations toy world (:mod:`sovr_tutorial.toy.world`,
``kind="two-populations"``; its runs are results/toy-two, made by :mod:`sovr_tutorial.lab.toy`
with ``--world two-populations``): the world itself (:func:`plot_two_world`: easy cores, hard
points beside the boundary lines, and eps-boxes that stay on their side) and the adversarial
margins of the training points per method (:func:`plot_claim3_margins`: densities per seed
with the peaks :func:`sovr_tutorial.margins.margin_peaks` finds, and the easy and hard
points apart).

Like :mod:`sovr_tutorial.figures.plots`: pure functions that take points or results and
return a Figure.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

from ..margins import kde_bandwidth
from ..toy.world import (
    HARD_EPS,
    RADIUS,
    SCALE,
    boundary_lines,
    eps_in_data_units,
    make_world,
)
from .plots import _to_numpy
from .toy import _toy_color, _toy_runs

#: one colour per class (strong: the hard points are drawn in them, the cores paler)
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
#: the margins' range the densities are drawn over (logits); peaks beyond it are noted
DENSITY_RANGE = (-4.0, 20.0)


def _world_axes(ax, x, y, hard, eps, *, rays, boxes, zoom=None):
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    for k in range(int(y.max()) + 1):
        easy_k, hard_k = (y == k) & ~hard, (y == k) & hard
        ax.scatter(x[easy_k, 0], x[easy_k, 1], s=3, color=CLASS_COLORS[k % 6], alpha=0.25,
                   linewidths=0)
        ax.scatter(x[hard_k, 0], x[hard_k, 1], s=7, color=CLASS_COLORS[k % 6],
                   edgecolors="k", linewidths=0.3)
    for a in rays:   # the boundary rays from the origin (0.5, 0.5) outwards
        end = 0.5 + 0.5 * np.array([np.cos(a), np.sin(a)]) / max(abs(np.cos(a)), abs(np.sin(a)))
        ax.plot([0.5, end[0]], [0.5, end[1]], color="k", linewidth=0.9)
    ax.add_collection(PatchCollection(
        [Rectangle((px - eps, py - eps), 2 * eps, 2 * eps) for px, py in x[boxes]],
        facecolor="none", edgecolor="k", linewidth=0.9, linestyle="--"))
    lo, hi = zoom if zoom is not None else ((0, 1), (0, 1))
    ax.set_xlim(*lo)
    ax.set_ylim(*hi)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=8)


def plot_two_world(points, *, eps: float = HARD_EPS * SCALE, n_boxes: int = 10,
                   seed: int = 0):
    """The two-populations world: easy points (pale, the class cores) and hard points (dark
    edges, beside a boundary line), the boundary lines (black: the perpendicular bisectors
    of neighbouring centres, where the best classifier's boundaries lie), and the eps-boxes
    (dashed) of ``n_boxes`` hard points next to one line, drawn by ``seed``; left the whole
    square, right a zoom on that line.

    points: (x (N, 2) in [0, 1], y (N,), hard (N,) bool), as ``make_points(...,
    kind="two-populations")`` returns them; eps: the L-inf budget in [0, 1] units (default
    the world's HARD_EPS, the toy tier's eps).
    """
    x, y, hard = (_to_numpy(a, name) for a, name in zip(points, ("x", "y", "hard")))
    y, hard = y.astype(int), hard.astype(bool)
    if x.ndim != 2 or x.shape[1] != 2 or not len(x) == len(y) == len(hard):
        raise ValueError(f"points must be x (N, 2), y (N,), hard (N,); got {x.shape}, "
                         f"{y.shape}, {hard.shape}")
    if not hard.any():
        raise ValueError("points hold no hard point: is this the two-populations world?")
    num_classes = int(y.max()) + 1
    rays = boundary_lines(num_classes)
    # the zoom: a window on ray 0 (between classes 0 and 1) around the centres' midpoint
    mid = 0.5 + SCALE * RADIUS * np.cos(np.pi / num_classes) * np.array(
        [np.cos(rays[0]), np.sin(rays[0])])
    half = 0.1
    window = (np.abs(x - mid) < half).all(1)
    rng = np.random.default_rng(seed)
    near = np.flatnonzero(window & hard)
    boxes = rng.choice(near, size=min(n_boxes, near.size), replace=False)
    fig = Figure(figsize=(10.0, 4.9))
    ax_all, ax_zoom = fig.subplots(1, 2)
    _world_axes(ax_all, x, y, hard, eps, rays=rays, boxes=boxes)
    ax_all.add_patch(_window_patch(mid, half))
    _world_axes(ax_zoom, x, y, hard, eps, rays=rays, boxes=boxes,
                zoom=((mid[0] - half, mid[0] + half), (mid[1] - half, mid[1] + half)))
    n_hard = int(hard.sum())
    ax_all.set_title(f"{len(y)} points: {len(y) - n_hard} easy (pale, class cores), "
                     f"{n_hard} hard (dark edge)", fontsize=9)
    ax_zoom.set_title(f"zoom (grey square left): eps-boxes (dashed, eps {eps:g} = "
                      f"{eps_in_data_units(eps):g} data units)\nof {boxes.size} hard points "
                      "stay on their side of the boundary", fontsize=9)
    for ax in (ax_all, ax_zoom):
        ax.set_xlabel("x1 (in [0, 1])", fontsize=8)
    ax_all.set_ylabel("x2 (in [0, 1])", fontsize=8)
    fig.suptitle("The two-populations toy world (claim 3): black lines = the boundaries "
                 "between neighbouring classes", fontsize=10)
    fig.tight_layout()
    return fig


def _window_patch(mid, half):
    from matplotlib.patches import Rectangle
    return Rectangle((mid[0] - half, mid[1] - half), 2 * half, 2 * half, facecolor="none",
                     edgecolor="0.5", linewidth=1.2)


def _density(values, grid):
    v = np.asarray(values, dtype=np.float64)
    h = kde_bandwidth(v)
    return gaussian_kde(v, bw_method=h / v.std(ddof=1))(grid)


def hard_masks(results: list) -> dict:
    """The hard-point mask of each result's training set, by seed (the world redrawn from
    the file's ``data``: its kind and sizes); results of the overlap world give its wide
    points."""
    out = {}
    for r in results:
        d = r["data"]
        (_, _, hard), _ = make_world(r["seed"], n_train=d["n_train"], n_test=d["n_test"],
                                     kind=d.get("kind", "overlap"))
        out[r["seed"]] = hard.numpy()
    return out


def plot_claim3_margins(results: list, *, split: bool = True):
    """Adversarial (PGD-20) logit margins of the training points, one column per run.

    Top row: the density of each seed's margins (Gaussian KDE with Silverman's bandwidth,
    the one :func:`sovr_tutorial.margins.margin_peaks` uses), darker = later seed, with the
    peaks the file records (``train_peaks``: that rule on the unrounded margins) as
    triangles; the panel names the number of peaks per seed. With ``split``, a second row:
    the easy and the hard points' margins apart, seeds pooled (the points' masks are
    redrawn from the world, :func:`hard_masks`).

    results: toy result dicts (:func:`sovr_tutorial.lab.results.load_results`, e.g. of
    results/toy-two), each with ``margins.train_adv.values`` and ``train_peaks``.
    """
    groups = _toy_runs(results)
    if not groups:
        raise ValueError("results must hold at least one toy result")
    n = len(groups)
    rows = 2 if split else 1
    fig = Figure(figsize=(2.9 * n + 0.6, 2.9 * rows + 0.9))
    axes = fig.subplots(rows, n, squeeze=False, sharex=True)
    grid = np.linspace(*DENSITY_RANGE, 600)
    masks = hard_masks(results) if split else {}
    for c, (slug, rs) in enumerate(groups.items()):
        color = _toy_color(slug, c)
        ax = axes[0, c]
        for i, r in enumerate(rs):
            v = np.asarray(r["margins"]["train_adv"]["values"], dtype=np.float64)
            dens = _density(v, grid)
            shade = 0.45 + 0.55 * (i + 1) / len(rs)
            ax.plot(grid, dens, color=color, alpha=shade, linewidth=1.2)
            peaks = [p for p in r["train_peaks"] if DENSITY_RANGE[0] <= p <= DENSITY_RANGE[1]]
            ax.plot(peaks, _density(v, np.asarray(peaks)) if peaks else [], "v",
                    color="k", markersize=5)
        counts = ",".join(str(len(r["train_peaks"])) for r in rs)
        ax.set_title(f"{rs[0]['label']}\npeaks per seed: {counts}", fontsize=9)
        if split:
            ax2 = axes[1, c]
            for name, pick, style in (("easy", False, "-"), ("hard", True, "--")):
                v = np.concatenate([np.asarray(r["margins"]["train_adv"]["values"])
                                    [masks[r["seed"]] == pick] for r in rs])
                ax2.plot(grid, _density(v, grid), color=color, linestyle=style,
                         linewidth=1.5, label=f"{name}: median {np.median(v):+.2f}")
            ax2.legend(fontsize=8, loc="upper right")
            ax2.set_xlabel("adversarial margin (PGD-20)", fontsize=8)
        else:
            ax.set_xlabel("adversarial margin (PGD-20)", fontsize=8)
        for a in axes[:, c]:
            a.axvline(0, color="k", linewidth=0.8)
            a.set_xlim(*DENSITY_RANGE)
            a.tick_params(labelsize=8)
    axes[0, 0].set_ylabel("density, one curve per seed", fontsize=8)
    if split:
        axes[1, 0].set_ylabel("density, seeds pooled", fontsize=8)
    seeds = sorted({r["seed"] for r in results})
    fig.suptitle(f"Training points' adversarial margins, seeds {','.join(map(str, seeds))}: "
                 "triangles = peaks (margin_peaks); bottom: easy (solid) and hard (dashed) "
                 "points", fontsize=10)
    fig.tight_layout()
    return fig
