"""Figures of the course: pure functions that take data and return a matplotlib Figure.

Nothing here trains or attacks a model: the notebooks compute, these functions draw.
Figures are built with ``matplotlib.figure.Figure`` (not ``pyplot``), so calling them in a
loop never piles up open windows; in a notebook, put the figure last in a cell (or call
``display(fig)``) to show it, and ``fig.savefig(path)`` to keep it.

The adversarial examples themselves are drawn by :mod:`sovr_tutorial.figures.images`; the
figures of a results folder (drawn from the runner's files) are in
:mod:`sovr_tutorial.lab.report`; the explorers' figures in :mod:`sovr_tutorial.figures.explorer`,
the toy world's in :mod:`sovr_tutorial.figures.toy` and the margin movie's in
:mod:`sovr_tutorial.figures.movie`.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ..runs import NAMES, Run

#: One colour per method, the same in every figure of the course.
METHOD_COLORS = {
    "standard": "#7f7f7f", "at": "#1f77b4", "trades": "#2ca02c", "mart": "#d62728",
    "gairat": "#9467bd", "sovr": "#ff7f0e", "ovr": "#8c564b",
}
_EXTRA_COLORS = ("#17becf", "#bcbd22", "#e377c2", "#8c564b", "#aec7e8", "#ffbb78")


# ----------------------------------------------------------------------------- helpers

def method_color(run, index: int = 0) -> str:
    """The course colour of a method, else a spare colour (picked by ``index``).

    run: a :class:`~sovr_tutorial.runs.Run`, a method ("sovr"), a slug ("sovr-r0.4") or a
    label ("SOVR (ratio 0.4)", "AT (3 seeds)"); "ovr" has a colour of its own.
    """
    if isinstance(run, Run):
        key = run.method
    else:
        key = str(run).lower().split(" ")[0].split("-")[0]
        key = {v.lower(): k for k, v in NAMES.items()}.get(key, key)
    return METHOD_COLORS.get(key, _EXTRA_COLORS[index % len(_EXTRA_COLORS)])


def _to_numpy(a, name="array") -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as err:  # noqa: BLE001
        raise TypeError(f"{name} must be a tensor, array or sequence, got {type(a).__name__}") from err


def _check_dict(name, d):
    if not isinstance(d, dict) or not d:
        raise ValueError(f"{name} must be a non-empty dict name -> values, got {d!r:.80}")


def _hline_pct(ax):
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------------------- curves

def plot_accuracy_vs_eps(eps_values, accs: dict, *, title: str | None = None,
                         clean_acc: float | None = None):
    """Accuracy (%) against the attack budget eps (x axis in units of 1/255).

    eps_values: the budgets (in [0, 1] pixel units); accs: name -> accuracies in [0, 1],
    one per eps (e.g. {"FGSM": [...], "PGD-10": [...]}).
    """
    _check_dict("accs", accs)
    eps = _to_numpy(eps_values, "eps_values").astype(float).ravel()
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    markers = "osD^v<>"
    for i, (name, acc) in enumerate(accs.items()):
        a = _to_numpy(acc, f"accs[{name!r}]").astype(float).ravel()
        if len(a) != len(eps):
            raise ValueError(f"accs[{name!r}] has {len(a)} values for {len(eps)} eps values")
        ax.plot(eps * 255, 100 * a, marker=markers[i % len(markers)], label=str(name))
    if clean_acc is not None:
        ax.axhline(100 * clean_acc, color="gray", ls=":", label="clean")
    ax.set_xlabel(r"attack budget $\epsilon$ (in units of 1/255, $L_\infty$)")
    ax.set_ylabel("accuracy (%)")
    _hline_pct(ax)
    ax.legend()
    ax.set_title(title or "accuracy vs attack budget")
    return fig


def plot_training_curves(histories: dict, *, title: str | None = None):
    """Per-epoch training loss, clean accuracy and PGD accuracy, one line per method.

    histories: name -> history list as returned by ``train`` (or ``ckpt["history"]``):
    dicts with "epoch", "loss" and, when a held-out slice was given, "clean_acc" and
    "pgd_acc". The best PGD epoch is circled: a final value clearly below it is robust
    overfitting (Rice et al. 2020).
    """
    _check_dict("histories", histories)
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("loss", "training loss (each method's own objective)", None),
              ("clean_acc", "clean accuracy, held-out (%)", 100),
              ("pgd_acc", "PGD accuracy, held-out (%)", 100))
    for i, (name, hist) in enumerate(histories.items()):
        if not hist:
            raise ValueError(f"histories[{name!r}] is empty")
        color = method_color(name, i)
        epochs = [h["epoch"] for h in hist]
        for ax, (key, _, scale) in zip(axes, panels):
            vals = [h.get(key) for h in hist]
            if any(v is None for v in vals):
                continue
            vals = np.asarray(vals, float) * (scale or 1)
            ax.plot(epochs, vals, marker="o", ms=3, color=color, label=str(name))
            if key == "pgd_acc" and len(vals) > 1:
                b = int(np.argmax(vals))
                ax.plot(epochs[b], vals[b], "o", ms=10, mfc="none", color=color)
    for ax, (key, ylabel, scale) in zip(axes, panels):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, f"no '{key}' in the histories\n(train with x_val, y_val)",
                    ha="center", va="center", transform=ax.transAxes, color="gray")
    axes[0].set_title("loss")
    axes[1].set_title("clean accuracy")
    axes[2].set_title("PGD accuracy (circle: best epoch)")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- margins

def _as_hist(name, values, bins, range_):
    """(counts, edges, (n below, n above)) from raw margins, or a precomputed (counts, edges)
    pair (nothing known to lie outside it). Raw values outside ``range_`` are counted in
    the end bins, and how many there are is returned, so the plot can mark those bins."""
    if isinstance(values, tuple) and len(values) == 2:
        counts, edges = (_to_numpy(v, name).astype(float).ravel() for v in values)
        if len(edges) != len(counts) + 1:
            raise ValueError(f"{name}: a precomputed histogram needs len(edges) == "
                             f"len(counts) + 1, got {len(counts)} and {len(edges)}")
        return counts, edges, (0, 0)
    a = _to_numpy(values, name).astype(float).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError(f"margins[{name!r}] holds no finite values")
    outside = (0, 0)
    if range_ is not None:  # outliers go into the end bins instead of disappearing
        outside = (int((a < range_[0]).sum()), int((a > range_[1]).sum()))
        a = np.clip(a, range_[0], range_[1])
    counts, edges = np.histogram(a, bins=bins, range=range_)
    return counts, edges, outside


def _mark_edge_bins(ax, edges, below: int, above: int):
    """Hatch an end bin that holds values from beyond the axis range, and say so on it."""
    for n_out, (a, b), text, ha in ((below, edges[:2], f"< {edges[1]:.3g}", "left"),
                                    (above, edges[-2:], f"> {edges[-2]:.3g}", "right")):
        if n_out:
            # a collection, not a patch: the bars of the histogram stay the axis' only patches
            ax.fill_between([a, b], 0, 1, transform=ax.get_xaxis_transform(), facecolor="none",
                            edgecolor="0.45", hatch="///", lw=0)
            ax.text(a if ha == "left" else b, 0.98, f"{text}\n(edge bin)", transform=ax.get_xaxis_transform(),
                    ha=ha, va="top", fontsize=8, color="0.3")


def _hist(ax, margins, edges, **kw):
    """Fractions of ``margins`` per bin of ``edges``; values beyond go to the marked end bins."""
    margins = np.asarray(margins, dtype=np.float64).ravel()
    ax.hist(np.clip(margins, edges[0], edges[-1]), bins=edges,
            weights=np.full(margins.size, 1.0 / max(margins.size, 1)), **kw)
    _mark_edge_bins(ax, edges, int((margins < edges[0]).sum()), int((margins > edges[-1]).sum()))


def _common_range(margins: dict, range_):
    if range_ is not None:
        return tuple(range_)
    lo, hi = math.inf, -math.inf
    for v in margins.values():
        if isinstance(v, tuple) and len(v) == 2:
            continue
        a = _to_numpy(v).astype(float).ravel()
        a = a[np.isfinite(a)]
        if a.size:
            # robust limits: a few outliers must not squash the histogram
            lo, hi = min(lo, np.quantile(a, 0.005)), max(hi, np.quantile(a, 0.995))
    if not math.isfinite(lo):
        return None
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return (min(lo, 0.0) - 0.05 * (hi - lo), max(hi, 0.0) + 0.05 * (hi - lo))


def plot_margin_histograms(margins: dict, bins: int = 60, range=None,  # noqa: A002
                           title: str | None = "logit margins", *, layout: str = "overlay",
                           xlabel: str = r"logit margin $z_y - \max_{k\neq y} z_k$",
                           ax=None, colors: dict | None = None):
    """Histograms of logit margins, one per entry of ``margins``.

    margins: name -> 1-D margins (array/tensor), or name -> (counts, edges) for a
    histogram already computed (e.g. read from a results JSON). Each histogram is
    normalised to fractions of its own samples, so sets of different size compare.
    layout: "overlay" (one axis, step lines) or "grid" (small multiples, shared x axis).
    range: (low, high) for the bins; default: common to all entries, from the 0.5% and
    99.5% quantiles. Values outside the range are counted in the end bins, which are then
    hatched and labelled; every curve of a panel uses the same bins.
    ax: draw the overlay into this axis (of your own figure) instead of a new figure.
    colors: name -> matplotlib colour (default: the course's method colours).
    A dashed line marks margin 0: left of it, the sample is misclassified.
    """
    _check_dict("margins", margins)
    if layout not in ("overlay", "grid"):
        raise ValueError(f"layout must be 'overlay' or 'grid', got {layout!r}")
    rng = _common_range(margins, range)
    hists = {k: _as_hist(k, v, bins, rng) for k, v in margins.items()}
    outside = {k: h[2] for k, h in hists.items()}
    hists = {k: h[:2] for k, h in hists.items()}
    if ax is not None:
        layout = "overlay"
        fig = ax.figure
        axes = [ax]
    elif layout == "overlay":
        fig = Figure(figsize=(7, 4.2), layout="constrained")
        axes = [fig.subplots()]
    else:
        k = len(hists)
        cols = k if k <= 4 else 3   # four panels in a row, not three and a lonely fourth
        rows = math.ceil(k / cols)
        fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
        axes = list(np.ravel(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)))
        for extra in axes[k:]:
            extra.set_visible(False)
    for i, (name, (counts, edges)) in enumerate(hists.items()):
        a = axes[0] if layout == "overlay" else axes[i]
        total = counts.sum()
        frac = counts / total if total > 0 else counts
        color = (colors or {}).get(name) or method_color(name, i)
        a.stairs(frac, edges, color=color, lw=1.8, label=f"{name} (n={int(total)})",
                 fill=(layout == "grid"), alpha=0.6 if layout == "grid" else 1.0)
        if layout == "grid":
            a.set_title(str(name), fontsize=10)
    for i, a in enumerate(axes if layout == "overlay" else axes[:len(hists)]):
        if layout == "grid":  # a panel above an empty slot must keep its tick labels
            a.xaxis.set_tick_params(labelbottom=True)
        names = list(hists) if layout == "overlay" else [list(hists)[i]]
        _mark_edge_bins(a, hists[names[0]][1], sum(outside[k][0] for k in names),
                        sum(outside[k][1] for k in names))
        a.axvline(0, color="black", ls="--", lw=0.8)
        a.set_xlabel(xlabel)
        a.set_ylabel("fraction of samples")
        a.grid(alpha=0.3)
    if range is None and any(isinstance(v, tuple) for v in margins.values()):
        # stored histograms span a fixed, wide range: zoom in on the occupied bins
        lo, hi = math.inf, -math.inf
        for counts, edges in hists.values():
            nz = np.nonzero(counts)[0]
            if nz.size:
                lo, hi = min(lo, edges[nz[0]]), max(hi, edges[nz[-1] + 1])
        if math.isfinite(lo):
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            pad = 0.05 * (hi - lo) or 0.5
            for a in (axes if layout == "overlay" else axes[:len(hists)]):
                a.set_xlim(lo - pad, hi + pad)
    if layout == "overlay":
        axes[0].legend(fontsize=8)
        if title:
            axes[0].set_title(title)
    elif title:
        fig.suptitle(title)
    return fig


def plot_margin_vs_gradnorm(margins: dict, gradnorms: dict, *, title: str | None = None,
                            eps: float = 8 / 255, norm: str = "L1", max_points: int = 1500,
                            seed: int = 0, layout: str = "overlay"):
    """Scatter of logit margin (x) against ``||grad_x margin||`` (y, log scale) per method.

    margins, gradnorms: name -> (N,) arrays with the same names. The line
    ``margin = eps * ||grad||_1`` is the first-order flip boundary at budget ``eps``:
    points to its left (small margin for their gradient) flip within eps to first order.
    At most ``max_points`` points per method are drawn (a fixed random subset).
    layout: "overlay" (one axis) or "grid" (small multiples: one panel per method, shared
    axes, so overlapping clouds do not hide each other).
    """
    if layout not in ("overlay", "grid"):
        raise ValueError(f"layout must be 'overlay' or 'grid', got {layout!r}")
    _check_dict("margins", margins)
    _check_dict("gradnorms", gradnorms)
    if set(margins) != set(gradnorms):
        raise ValueError(f"margins and gradnorms must have the same names, got "
                         f"{sorted(margins)} and {sorted(gradnorms)}")
    if layout == "grid":
        cols = min(len(margins), 3)
        rows = math.ceil(len(margins) / cols)
        fig = Figure(figsize=(4.3 * cols, 3.4 * rows), layout="constrained")
        axes = list(np.ravel(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)))
        for extra in axes[len(margins):]:
            extra.set_visible(False)
    else:
        fig = Figure(figsize=(7, 4.6), layout="constrained")
        axes = [fig.subplots()] * len(margins)
    rng = np.random.default_rng(seed)
    gmin, gmax = math.inf, 0.0
    for i, name in enumerate(margins):
        ax = axes[i]
        m = _to_numpy(margins[name], name).astype(float).ravel()
        g = _to_numpy(gradnorms[name], name).astype(float).ravel()
        if m.shape != g.shape:
            raise ValueError(f"{name}: margins and gradnorms differ in length "
                             f"({m.size} vs {g.size})")
        keep = np.isfinite(m) & np.isfinite(g) & (g > 0)
        m, g = m[keep], g[keep]
        if m.size > max_points:
            idx = rng.choice(m.size, max_points, replace=False)
            m, g = m[idx], g[idx]
        if m.size:
            gmin, gmax = min(gmin, g.min()), max(gmax, g.max())
        ax.scatter(m, g, s=7, alpha=0.45, color=method_color(name, i), label=str(name),
                   edgecolors="none")
    for ax in dict.fromkeys(axes[:len(margins)]):   # each panel once
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        if eps and math.isfinite(gmin) and gmax > 0:
            gg = np.geomspace(gmin, gmax, 100)
            ax.plot(eps * gg, gg, color="black", lw=1,
                    label=rf"flip line: margin = $\epsilon\|\nabla\|$ ($\epsilon$={eps * 255:.0f}/255)")
        ax.axvline(0, color="gray", ls="--", lw=0.8)
        ax.set_xlabel(r"logit margin $m = z_y - \max_{k\neq y} z_k$")
        ax.set_ylabel(rf"$\|\nabla_x m\|_{{{norm[1:] if norm.upper().startswith('L') else norm}}}$ (log scale)")
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.grid(alpha=0.3, which="both")
        leg = ax.legend(fontsize=8, markerscale=2)
        for h in leg.legend_handles:
            if hasattr(h, "set_alpha"):
                h.set_alpha(1)
    if layout == "grid":
        fig.suptitle(title or "margin vs input-gradient norm")
    else:
        axes[0].set_title(title or "margin vs input-gradient norm")
    return fig

