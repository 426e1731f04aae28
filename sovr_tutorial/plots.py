"""Figures of the course: pure functions that take data and return a matplotlib Figure.

Nothing here trains or attacks a model: the notebooks compute, these functions draw.
Figures are built with ``matplotlib.figure.Figure`` (not ``pyplot``), so calling them in a
loop never piles up open windows; in a notebook, put the figure last in a cell (or call
``display(fig)``) to show it, and ``fig.savefig(path)`` to keep it.

The figures of a results folder (drawn from the runner's files) are in
:mod:`sovr_tutorial.report`.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .data import CLASSES
from .runs import DEFAULT_SOVR_RATIO, NAMES, Run

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


def _images_hwc(x, name):
    """(N, C, H, W) or (N, H, W, C) images in [0, 1] -> numpy (N, H, W, C) float."""
    a = _to_numpy(x, name).astype(np.float64)
    if a.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {a.shape}")
    if a.shape[1] in (1, 3):  # (N, C, H, W), the torch convention, wins when ambiguous
        a = a.transpose(0, 2, 3, 1)
    elif a.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels, got shape {a.shape}")
    return a


def _hline_pct(ax):
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------------------- images

def show_adversarial_examples(x, x_adv, y, pred_clean, pred_adv, classes=CLASSES, n: int = 6,
                              *, title: str | None = None, amplify: float | None = None,
                              probs_clean=None, probs_adv=None):
    """Rows of ``n`` images: clean, perturbation (amplified), adversarial; with
    ``probs_clean`` and ``probs_adv`` (N, K) a fourth row: the class probabilities before
    (grey) and after (red) the attack, so the flip is visible.

    x, x_adv: (N, C, H, W) in [0, 1] (tensors or arrays); y, pred_clean, pred_adv: (N,)
    class indices. Captions give the true class and the predictions, green when correct
    and red when wrong. The perturbation ``x_adv - x`` is shown as ``0.5 + amplify * d``
    (grey = no change); ``amplify`` defaults to the factor that maps the largest
    |change| to 0.5 (pass a fixed one to compare budgets), and is printed on the row.
    """
    xs, xa = _images_hwc(x, "x"), _images_hwc(x_adv, "x_adv")
    if xs.shape != xa.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {xs.shape} and {xa.shape}")
    y, pc, pa = (_to_numpy(v, k).astype(int).ravel() for v, k in
                 ((y, "y"), (pred_clean, "pred_clean"), (pred_adv, "pred_adv")))
    if not (len(y) == len(pc) == len(pa) == len(xs)):
        raise ValueError("x, y, pred_clean and pred_adv must hold the same number of samples")
    n = min(int(n), len(xs))
    if n < 1:
        raise ValueError("n must be at least 1 (and x must hold images)")
    delta = xa[:n] - xs[:n]
    dmax = float(np.abs(delta).max())
    if amplify is None:
        amplify = 0.5 / dmax if dmax > 0 else 1.0
    bars = probs_clean is not None and probs_adv is not None
    if bars:
        pr_c, pr_a = (_to_numpy(v, k).astype(float) for v, k in
                      ((probs_clean, "probs_clean"), (probs_adv, "probs_adv")))
        if pr_c.shape != pr_a.shape or pr_c.ndim != 2 or len(pr_c) < n:
            raise ValueError("probs_clean and probs_adv must be (N, K) arrays of the same shape")
    fig = Figure(figsize=(1.9 * n + 0.6, 6.4 + 2.0 * bars), layout="constrained")
    axes = fig.subplots(3 + bars, n, squeeze=False,
                        gridspec_kw={"height_ratios": [1, 1, 1] + [1.1] * bars})
    row_names = ("clean", f"perturbation\n(x{amplify:.0f}, grey = 0)",
                 "adversarial")
    for j in range(n):
        panels = (xs[j], np.clip(0.5 + amplify * delta[j], 0, 1), xa[j])
        captions = (f"true: {classes[y[j]]}\npred: {classes[pc[j]]}",
                    f"max |d| = {np.abs(delta[j]).max() * 255:.1f}/255",
                    f"pred: {classes[pa[j]]}")
        colors = ("green" if pc[j] == y[j] else "red", "black",
                  "green" if pa[j] == y[j] else "red")
        for i in range(3):
            ax = axes[i, j]
            img = panels[i]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                      vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(captions[i], fontsize=9, color=colors[i])
            if j == 0:
                ax.set_ylabel(row_names[i], fontsize=10)
        if bars:
            ax = axes[3, j]
            k = np.arange(pr_c.shape[1])
            ax.bar(k - 0.2, pr_c[j], 0.4, color="0.6", label="before")
            ax.bar(k + 0.2, pr_a[j], 0.4, color="tab:red", label="after")
            ax.set_ylim(0, 1)
            ax.set_xticks(k, [str(c)[:4] for c in classes][:len(k)], rotation=90, fontsize=6)
            ax.get_xticklabels()[y[j]].set_fontweight("bold")
            ax.tick_params(axis="y", labelsize=7)
            if j == 0:
                ax.set_ylabel("class probability", fontsize=9)
                ax.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    return fig


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
                    ha=ha, va="top", fontsize=7, color="0.3")


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
        cols = min(k, 3)
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


# ----------------------------------------------------------------------------- explorers

def eps_text(eps: float) -> str:
    """``8/255`` for a budget on the 1/255 grid, else the number."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.4g}"


def rule_text(rule: str, value: float) -> str:
    """``ratio 0.4`` / ``margin threshold 1`` / ``boundary 0.4``: a SOVR rule in words."""
    if rule == "boundary":
        return f"boundary {value:.2g}"
    return f"ratio {value:.2g}" if rule == "ratio" else f"margin threshold {value:g}"


def histogram_range(*margin_sets, pad: float = 0.5):
    """A shared x-range (low, high) covering the 1st-99th percentiles of all margin sets."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in margin_sets
                             if m is not None])
    lo, hi = np.quantile(values, [0.01, 0.99])
    lo, hi = math.floor(min(lo, -1.0) - pad), math.ceil(max(hi, 1.0) + pad)
    return float(lo), float(hi)


def _hist(ax, margins, edges, **kw):
    """Fractions of ``margins`` per bin of ``edges``; values beyond go to the marked end bins."""
    margins = np.asarray(margins, dtype=np.float64).ravel()
    ax.hist(np.clip(margins, edges[0], edges[-1]), bins=edges,
            weights=np.full(margins.size, 1.0 / max(margins.size, 1)), **kw)
    _mark_edge_bins(ax, edges, int((margins < edges[0]).sum()), int((margins > edges[-1]).sum()))


def threshold_figure(info, reference, *, reference_label, tier, data_label, eval_label,
                     seed, eval_steps, hist_range):
    """The threshold explorer's picture of one :func:`~sovr_tutorial.widgets.explore_threshold`
    result: adversarial-margin histogram (next to ``reference``) and the fraction switched
    to OVR per fine-tuning step."""
    margins = np.asarray(info["margins"])
    lo, hi = hist_range if hist_range is not None else histogram_range(reference, margins)
    edges = np.linspace(lo, hi, 41)
    fig = Figure(figsize=(11, 4.0))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    if reference is not None:
        _hist(ax, reference, edges, histtype="step", color="0.35", linewidth=2,
              label=f"{reference_label} (median {np.median(reference):.2f})")
    _hist(ax, margins, edges, alpha=0.55, color="tab:orange",
          label=f"SOVR fine-tuned, {rule_text(info['rule'], info['value'])} "
                f"(median {info['margin_median']:.2f})")
    ax.axvline(0, color="k", linewidth=1)
    if info["rule"] == "threshold" and lo <= info["value"] <= hi:
        ax.axvline(info["value"], color="tab:purple", linestyle="--", linewidth=1.5,
                   label="switching threshold (on training margins)")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(f"adversarial logit margin z_y - max_(k!=y) z_k  (PGD-{eval_steps}, "
                  f"eps {eps_text(tier.eps)}; < 0 = wrong)")
    ax.set_ylabel("fraction of samples")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"margins of {info['n_eval']} {eval_label}: PGD accuracy "
                 f"{info['pgd_acc']:.1%}, {info['frac_small']:.1%} in [0, 1)", fontsize=10)
    per_step = info["switched_per_step"]
    ax2.plot(np.arange(1, len(per_step) + 1), per_step, marker="o", markersize=3,
             color="tab:orange")
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_xlabel("fine-tuning step")
    ax2.set_ylabel("fraction of the batch switched to OVR")
    ax2.set_title(f"switched to OVR: {info['switched_fraction']:.1%} of samples", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"SOVR fine-tuning, {rule_text(info['rule'], info['value'])}, "
                 f"{info['steps']} steps - {tier.name} tier, {data_label}, seed {seed}",
                 fontsize=11)
    fig.tight_layout()
    return fig


def compare_thresholds(infos, reference_margins=None, *, reference_label="AT (before fine-tuning)",
                       tier=None, data_label="CIFAR-10", seed=0, hist_range=None):
    """One panel per :func:`explore_threshold` result, all on the same margin axis.

    infos: list of info dicts (each with "margins"); returns a Figure — the non-interactive
    view of the threshold explorer.
    """
    infos = list(infos)
    if not infos:
        raise ValueError("infos must hold at least one explore_threshold result")
    for i, info in enumerate(infos):
        if not isinstance(info, dict) or "margins" not in info:
            raise TypeError(f"infos[{i}] must be an info dict from explore_threshold")
    reference = None if reference_margins is None else np.asarray(reference_margins, float)
    lo, hi = hist_range if hist_range is not None else histogram_range(
        reference, *[i["margins"] for i in infos])
    edges = np.linspace(lo, hi, 41)
    fig = Figure(figsize=(4.2 * len(infos), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(infos), sharey=True))
    for ax, info in zip(axes, infos):
        if reference is not None:
            _hist(ax, reference, edges, histtype="step", color="0.35", linewidth=2,
                  label=reference_label)
        _hist(ax, np.asarray(info["margins"]), edges, alpha=0.55, color="tab:orange",
              label="SOVR fine-tuned")
        ax.axvline(0, color="k", linewidth=1)
        ax.axvline(info["margin_median"], color="tab:orange", linestyle=":", linewidth=1.5)
        ax.set_xlim(lo, hi)
        ax.set_title(f"{rule_text(info['rule'], info['value'])}: "
                     f"{info['switched_fraction']:.0%} switched to OVR\n"
                     f"median margin {info['margin_median']:.2f}, PGD acc {info['pgd_acc']:.1%}",
                     fontsize=9)
        ax.set_xlabel("adversarial logit margin")
    axes[0].set_ylabel("fraction of samples")
    axes[0].legend(fontsize=8, loc="upper left")
    where = f" - {getattr(tier, 'name', tier)} tier" if tier else ""
    fig.suptitle(f"Threshold explorer without a kernel: SOVR fine-tuning at several switching "
                 f"values{where}, {data_label}, seed {seed}", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- toy world


#: Bins of the toy world's margin histograms (logits): the same for every method and seed;
#: the two edge bins also hold everything beyond them (hatched and labelled, see _hist).
TOY_BINS = np.linspace(-6.0, 6.0, 49)
#: Margins are coloured up to this size (red < 0 = wrong, blue > 0 = right).
TOY_MARGIN_LIMIT = 4.0
_TOY_CLASS_COLORS = ("#fbb4ae", "#b3cde3", "#ccebc5", "#decbe4", "#fed9a6", "#ffffcc")


def _toy_runs(results: list) -> dict:
    """Results grouped by run slug, in the course's order (AT first, SOVR variants last)."""
    groups = {}
    for r in results:
        groups.setdefault(r.get("slug") or Run(**r["options"]).slug, []).append(r)
    order = {m: i for i, m in enumerate(("standard", "at", "trades", "mart", "gairat", "sovr"))}
    rules = ("ratio", "threshold", "boundary")

    def key(slug):
        run = Run.parse(slug)
        return order[run.method], rules.index(run.rule), run.value
    return {s: sorted(groups[s], key=lambda r: r["seed"]) for s in sorted(groups, key=key)}


def _toy_color(slug: str, index: int = 0) -> str:
    """One colour per run in every toy figure: the method's; SOVR's ratios in shades of its
    orange (darker = larger), its threshold rule brown, its boundary rule cyan."""
    run = Run.parse(slug)
    if run.method != "sovr" or (run.rule, run.value) == ("ratio", DEFAULT_SOVR_RATIO):
        return method_color(run, index)
    if run.rule == "ratio":
        from matplotlib import colormaps
        return colormaps["Oranges"](0.3 + 0.65 * run.value)
    return {"threshold": "#8c564b", "boundary": "#17becf"}[run.rule]


def _toy_hist_axes(ax, margins, bins, *, color, label, filled=True):
    kw = {"alpha": 0.55} if filled else {"histtype": "step", "linewidth": 2}
    _hist(ax, margins, bins, color=color, label=label, **kw)
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_xlim(bins[0], bins[-1])


def _toy_regions_axes(ax, regions: str, grid: int, x, margins, eps: float):
    """Decision regions (one colour per class, boundaries in black) and each point's eps-box
    coloured by its margin."""
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.patches import Rectangle

    labels = (np.frombuffer(regions.encode(), dtype=np.uint8).astype(int)
              - ord("0")).reshape(grid, grid)
    cmap = ListedColormap(_TOY_CLASS_COLORS[:labels.max() + 1])
    ax.imshow(labels, origin="lower", extent=(0, 1, 0, 1), cmap=cmap,
              interpolation="nearest", vmin=-0.5, vmax=labels.max() + 0.5)
    x = _to_numpy(x, "x")
    boxes = [Rectangle((px - eps, py - eps), 2 * eps, 2 * eps) for px, py in x]
    norm = Normalize(-TOY_MARGIN_LIMIT, TOY_MARGIN_LIMIT)
    coll = PatchCollection(boxes, cmap="RdBu", norm=norm, alpha=0.55, linewidth=0)
    coll.set_array(np.clip(np.asarray(margins, dtype=np.float64), -TOY_MARGIN_LIMIT,
                           TOY_MARGIN_LIMIT))
    ax.add_collection(coll)
    # the decision boundaries on top: cells whose right or upper neighbour is another class
    edge = np.zeros_like(labels, dtype=bool)
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    ax.imshow(np.ma.masked_where(~edge, edge), origin="lower", extent=(0, 1, 0, 1),
              cmap=ListedColormap(["k"]), interpolation="nearest", zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return coll


def plot_toy_regions(results: list, x, *, eps: float, title: str | None = None):
    """Decision regions of each run (one seed), side by side, with every training point's
    eps-box coloured by its adversarial margin (PGD-20).

    results: toy result dicts of one seed (each with "regions", "label" and the per-point
    margins "margins" -> "train_adv" -> "values" in the order of ``x``); x: (N, 2) the
    training points in [0, 1]; eps: the L-inf budget (the box half-width).
    """
    if not results:
        raise ValueError("results must hold at least one toy result")
    n = len(results)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.3 * cols + 0.8, 3.5 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    coll = None
    for ax, r in zip(axes, _toy_order(results)):
        coll = _toy_regions_axes(ax, r["regions"]["labels"], r["regions"]["grid"], x,
                                 r["margins"]["train_adv"]["values"], eps)
        q = r["train_margin_quantiles"]
        ax.set_title(f"{r['label']}\nPGD-20 {r['pgd_acc']:.1%}, margin attack "
                     f"{r['margin_attack_acc']:.1%}\ntraining margins q10 {q['q10']:+.2f}, "
                     f"q50 {q['q50']:+.2f}", fontsize=8.5)
    for ax in axes[n:]:
        ax.set_visible(False)
    bar = fig.colorbar(coll, ax=list(axes[:n]), shrink=0.8, pad=0.02)
    bar.set_label(f"adversarial margin of the point (clipped at +-{TOY_MARGIN_LIMIT:g}); "
                  "< 0 = wrong", fontsize=8)
    seed = results[0]["seed"]
    fig.suptitle(title or f"Toy world, seed {seed}: decision regions (colour = predicted "
                 f"class) and each training point's eps-box (eps {eps:g}), coloured by its "
                 "adversarial margin", fontsize=10)
    return fig


def _toy_order(results: list) -> list:
    return [r for rs in _toy_runs(results).values() for r in rs]


def _peak_text(rs, key) -> str:
    counts = [len(r[key]) for r in rs]
    return ",".join(str(c) for c in counts)


def plot_toy_margins(results: list, bins=TOY_BINS):
    """Adversarial-margin histograms per run (columns) of training and test points (rows),
    pooled over seeds, on the same bins; y = fraction of samples; hatched edge bins hold
    everything beyond the range. Each panel names q10 / q50 / q90 (mean over seeds) and the
    number of peaks per seed (:func:`sovr_tutorial.margins.margin_peaks`)."""
    groups = _toy_runs(results)
    if not groups:
        raise ValueError("results must hold at least one toy result")
    n = len(groups)
    fig = Figure(figsize=(2.2 * n + 0.6, 5.6))
    # y = fraction of points everywhere; each column (one run) its own scale, so a spike
    # (GAIRAT's) does not flatten the others
    axes = fig.subplots(2, n, squeeze=False, sharex=True, sharey="col")
    for c, (slug, rs) in enumerate(groups.items()):
        color = _toy_color(slug, c)
        for row, (key, peaks, name) in enumerate((("train_adv", "train_peaks", "training"),
                                                  ("test_adv", "test_peaks", "test"))):
            ax = axes[row, c]
            values = np.concatenate([r["margins"][key]["values"] for r in rs])
            _toy_hist_axes(ax, values, bins, color=color, label=None)
            q = {k: np.mean([r["margins"][key]["margin"][k] for r in rs])
                 for k in ("q10", "q50", "q90")}
            for k, style in (("q10", ":"), ("q50", "--"), ("q90", ":")):
                ax.axvline(q[k], color=color, linestyle=style, linewidth=1.2)
            ax.set_title(f"{rs[0]['label']}, {name}\nq10/50/90 {q['q10']:+.1f}/{q['q50']:+.1f}/"
                         f"{q['q90']:+.1f}; peaks {_peak_text(rs, peaks)}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"fraction of {name} points")
            if row == 1:
                ax.set_xlabel("adversarial margin (PGD-20)")
    seeds = sorted({r["seed"] for r in results})
    fig.suptitle(f"Toy world: adversarial logit margins, {len(seeds)} seeds pooled "
                 f"(seeds {','.join(map(str, seeds))}); dotted: q10 and q90, dashed: median; "
                 "hatched: overflow bins", fontsize=10)
    fig.tight_layout()
    return fig


def _mean_std(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def toy_summary(results: list) -> list:
    """One row per run slug: mean and std over seeds of the toy measures (dicts)."""
    rows = []
    for slug, rs in _toy_runs(results).items():
        row = {"slug": slug, "label": rs[0]["label"], "seeds": [r["seed"] for r in rs]}
        for key, get in (("clean", lambda r: r["clean_acc"]), ("pgd", lambda r: r["pgd_acc"]),
                         ("margin_attack", lambda r: r["margin_attack_acc"]),
                         ("pgd_point", lambda r: r["pgd_point_acc"]),
                         ("aa", lambda r: r["autoattack"].get("robust", np.nan)),
                         ("robust_train", lambda r: r["robust_train_acc"]),
                         ("q10", lambda r: r["train_margin_quantiles"]["q10"]),
                         ("q50", lambda r: r["train_margin_quantiles"]["q50"]),
                         ("q90", lambda r: r["train_margin_quantiles"]["q90"]),
                         ("test_q10", lambda r: r["test_margin_quantiles"]["q10"]),
                         ("test_q50", lambda r: r["test_margin_quantiles"]["q50"]),
                         ("test_q90", lambda r: r["test_margin_quantiles"]["q90"]),
                         ("train_peaks", lambda r: len(r["train_peaks"])),
                         ("test_peaks", lambda r: len(r["test_peaks"])),
                         ("grad_norm", lambda r: r["margins"]["train_adv"]["grad_norm_l1"]["q50"]),
                         ("seconds", lambda r: r["seconds"])):
            row[key] = _mean_std([get(r) for r in rs])
        rows.append(row)
    return rows


def toy_table(results: list) -> str:
    """The toy summary as a Markdown table (mean +- std over seeds)."""
    def pct(ms):
        return f"{100 * ms[0]:.1f} ± {100 * ms[1]:.1f}"

    def num(ms, f="+.2f"):
        return f"{ms[0]:{f}} ± {ms[1]:.2f}"

    lines = ["| run | seeds | clean (%) | PGD-20 (%) | at the PGD-20 points (%) | "
             "margin attack (%) | AA custom (%) | train q10 / q50 / q90 | test q10 / q50 / q90 | "
             "peaks train / test | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in toy_summary(results):
        lines.append(
            f"| {r['label']} | {len(r['seeds'])} | {pct(r['clean'])} | {pct(r['pgd'])} | "
            f"{pct(r['pgd_point'])} | "
            f"{pct(r['margin_attack'])} | {pct(r['aa'])} | {num(r['q10'])} / {num(r['q50'])} / "
            f"{num(r['q90'])} | {num(r['test_q10'])} / {num(r['test_q50'])} / "
            f"{num(r['test_q90'])} | {r['train_peaks'][0]:.1f} / {r['test_peaks'][0]:.1f} | "
            f"{r['seconds'][0]:.0f} |")
    return "\n".join(lines)


def plot_toy_accuracy(results: list):
    """Clean, PGD-20 (CE), margin-attack and AutoAttack (custom) accuracy per run on the
    test points: mean +- std over seeds (bars) and each seed (dots)."""
    rows = toy_summary(results)
    groups = _toy_runs(results)
    keys = (("clean", "clean"), ("pgd", "PGD-20 (CE): right clean and at the PGD point"),
            ("margin_attack", "PGD-50 on the margin, 3 restarts"),
            ("aa", "AutoAttack custom (APGD-CE + APGD-T)"))
    getters = {"clean": lambda r: r["clean_acc"], "pgd": lambda r: r["pgd_acc"],
               "margin_attack": lambda r: r["margin_attack_acc"],
               "aa": lambda r: r["autoattack"].get("robust", np.nan)}
    fig = Figure(figsize=(max(7.0, 1.3 * len(rows) + 2), 4.2))
    ax = fig.subplots()
    width = 0.8 / len(keys)
    shades = ("0.75", "tab:blue", "tab:red", "tab:purple")
    for k, ((key, name), shade) in enumerate(zip(keys, shades)):
        xs = np.arange(len(rows)) + (k - (len(keys) - 1) / 2) * width
        means = [100 * r[key][0] for r in rows]
        stds = [100 * r[key][1] for r in rows]
        ax.bar(xs, means, width, yerr=stds, color=shade, alpha=0.8, label=name, capsize=2)
        for x, rs in zip(xs, groups.values()):
            ax.plot([x] * len(rs), [100 * getters[key](r) for r in rs], "k.", markersize=2.5)
    pgd_x = np.arange(len(rows)) + (1 - (len(keys) - 1) / 2) * width
    ax.plot(pgd_x, [100 * r["pgd_point"][0] for r in rows], "k_", markersize=14, mew=2,
            label="PGD-20: right at the PGD point, whatever the clean prediction")
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels([r["label"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    lo = min(100 * getters[k](r) for k, _ in keys for r in results) - 5
    ax.set_ylim(max(0, 10 * math.floor(lo / 10)), 100)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    seeds = sorted({r["seed"] for r in results})
    ax.set_title(f"Toy world: accuracy under attack, mean ± std over {len(seeds)} seeds "
                 "(dots: seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_toy_switch(results: list, control: dict | None = None):
    """Section 4 of the toy world: where SOVR moves the margins, and why.

    Left: for each SOVR variant, its adversarial training margin minus AT's on the same
    point (same seed: same data, initial weights and batch order), averaged within bins of
    AT's margin; mean ± std over seeds. Middle: OVR's push on the margin over CE's
    (:func:`sovr_tutorial.toy.margin_push`, medians per margin bin of AT's adversarial
    training logits, each seed a line) against the two-logit formula
    sigmoid(-m/2) / sigmoid(-m), with the margins below which the ratio rule switches.
    Right: training-margin q10 / q50 / q90 per run (mean ± std over seeds). ``control``
    (:func:`sovr_tutorial.toy.run_control`): AT retrained with another initialisation,
    drawn on the left as the size of chance differences.
    """
    from .toy import paired_margin_shift   # toy imports the package's training code

    groups = _toy_runs(results)
    if "at" not in groups:
        raise ValueError("plot_toy_switch needs the AT runs (the reference)")
    sovr = {s: rs for s, rs in groups.items() if s.startswith("sovr")}
    fig = Figure(figsize=(16, 4.6))
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.1, 1.1]})
    edges = np.linspace(-5.0, 5.0, 21)
    centres = (edges[:-1] + edges[1:]) / 2
    for i, (slug, rs) in enumerate(sovr.items()):
        shift = paired_margin_shift(groups["at"], rs, edges)
        with warnings.catch_warnings():   # a bin empty in every seed stays NaN (a gap)
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(shift, axis=0)
            std = (np.nanstd(shift, axis=0, ddof=1) if len(shift) > 1
                   else np.zeros_like(mean))
        color = _toy_color(slug, i)
        ax1.plot(centres, mean, marker="o", markersize=3, color=color,
                 label=f"{rs[0]['label']} ({len(shift)} seeds)")
        ax1.fill_between(centres, mean - std, mean + std, color=color, alpha=0.15)
    if control is not None:
        shift = paired_margin_shift(groups["at"], control["runs"], edges)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ax1.plot(centres, np.nanmean(shift, axis=0), color="0.4", linestyle="--",
                     marker=".", label=f"AT, another initialisation (chance; {len(shift)} seeds)")
    ax1.axhline(0, color="k", linewidth=0.8)
    ax1.axvline(0, color="k", linewidth=0.8, linestyle=":")
    ax1.set_xlabel("AT's adversarial margin of the training point")
    ax1.set_ylabel("SOVR's margin minus AT's (same point)")
    ax1.set_title("where SOVR moves the margins (training points)", fontsize=10)
    ax1.legend(fontsize=7)

    at_runs = groups["at"]
    for r in at_runs:
        p = r["push"]
        e = np.asarray(p["edges"])
        ratio = np.array([np.nan if v is None else v for v in p["ratio"]])
        ax2.plot((e[:-1] + e[1:]) / 2, ratio, color=method_color("at"), alpha=0.5,
                 linewidth=1, marker=".", markersize=3)
    m = np.linspace(-6, 6, 200)
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    ax2.plot(m, sig(-m / 2) / sig(-m), color="k", linestyle="--", linewidth=1,
             label="two logits (m/2, -m/2): sigmoid(-m/2) / sigmoid(-m)")
    ax2.plot([], [], color=method_color("at"), label="measured on AT's logits (one line per seed)")
    for frac, style in ((0.2, ":"), (0.4, "-.")):
        q = np.mean([np.quantile(r["margins"]["train_adv"]["values"], frac) for r in at_runs])
        ax2.axvline(q, color="tab:orange", linestyle=style,
                    label=f"ratio {frac:g} switches margins below {q:+.2f} (AT)")
    ax2.axhline(1, color="k", linewidth=0.8)
    ax2.axvline(0, color="k", linewidth=0.8, linestyle=":")
    ax2.set_yscale("log")
    ax2.set_xlabel("adversarial margin")
    ax2.set_ylabel("OVR's push on the margin / CE's (median)")
    ax2.set_title("OVR's push on the margin over CE's", fontsize=10)
    ax2.legend(fontsize=7)

    rows = [r for r in toy_summary(results)]
    xs = np.arange(len(rows))
    for key, style, name in (("q10", "v", "q10"), ("q50", "o", "median"), ("q90", "^", "q90")):
        ax3.errorbar(xs, [r[key][0] for r in rows], yerr=[r[key][1] for r in rows],
                     fmt=style, capsize=3, label=name,
                     color={"q10": "tab:red", "q50": "k", "q90": "tab:blue"}[key])
    ax3.axhline(0, color="k", linewidth=0.8)
    ax3.set_xticks(xs)
    ax3.set_xticklabels([r["label"] for r in rows], rotation=25, ha="right", fontsize=7.5)
    ax3.set_ylabel("adversarial training margin")
    ax3.set_title("training-margin quantiles (mean ± std over seeds)", fontsize=10)
    ax3.legend(fontsize=7)
    seeds = sorted({r["seed"] for r in results})
    fig.suptitle(f"Toy world, seeds {','.join(map(str, seeds))}: SOVR's effect on the margins "
                 "and the push of OVR against CE", fontsize=11)
    fig.tight_layout()
    return fig


def plot_toy_explorer(reference: dict, info: dict, x, *, eps: float, bins=TOY_BINS,
                      title: str | None = None):
    """The toy explorer's picture of one move (:func:`sovr_tutorial.toy.toy_move`).

    Left: the fine-tuned model's decision regions with the held-out points' eps-boxes
    coloured by their adversarial margins; middle: held-out margin histograms of AT
    (``reference``, from :func:`sovr_tutorial.toy.measure_toy_model`) and of SOVR on the
    same bins (fraction of points; hatched edge bins hold the overflow); right: accuracy
    under PGD-20 and under the margin attack, AT against SOVR. x: (N, 2) held-out points.
    """
    fig = Figure(figsize=(13.5, 4.2))
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.5, 0.9]})
    _toy_regions_axes(ax1, info["regions"], info["grid"], x, info["margins"], eps)
    ax1.set_title(f"{info['label']}: regions and held-out eps-boxes\n(red: wrong under "
                  "PGD-20, blue: right)", fontsize=9)
    _toy_hist_axes(ax2, reference["margins"], bins, color=method_color("at"),
                   label=f"AT before fine-tuning (q10 {reference['q10']:+.2f}, median "
                         f"{reference['q50']:+.2f})", filled=False)
    _toy_hist_axes(ax2, info["margins"], bins, color=method_color("sovr"),
                   label=f"{info['label']} (q10 {info['q10']:+.2f}, median {info['q50']:+.2f})")
    ax2.set_xlabel("adversarial margin of held-out points (PGD-20); < 0 = wrong")
    ax2.set_ylabel("fraction of held-out points")
    ax2.legend(fontsize=8, loc="upper left")
    ax2.set_title(f"switched to OVR during fine-tuning: {info['switched_fraction']:.1%} of "
                  "samples", fontsize=9)
    names = ("clean", "PGD-20", "margin attack")
    keys = ("clean_acc", "pgd_acc", "margin_attack_acc")
    xs = np.arange(len(keys))
    for k, (d, name, color) in enumerate(((reference, "AT", method_color("at")),
                                          (info, "SOVR", method_color("sovr")))):
        vals = [100 * d[key] for key in keys]
        ax3.bar(xs + (k - 0.5) * 0.38, vals, 0.38, color=color, alpha=0.8, label=name)
        for x_, v in zip(xs + (k - 0.5) * 0.38, vals):
            ax3.text(x_, v + 0.5, f"{v:.1f}", ha="center", fontsize=7)
    ax3.set_xticks(xs)
    ax3.set_xticklabels(names, fontsize=8)
    ax3.set_ylim(0, 105)
    ax3.set_ylabel("held-out accuracy (%)")
    ax3.legend(fontsize=8, loc="lower right")
    fig.suptitle(title or f"{info['label']}: {info['steps']} fine-tuning steps from AT",
                 fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the margin movie

def _movie_xlim(frames: dict, edges) -> tuple:
    """x limits of every movie panel: all non-empty bins of all frames, and 0, plus a bin."""
    occupied = np.zeros(len(edges) - 1, dtype=bool)
    for r in frames["runs"]:
        for key in ("train", "heldout"):
            occupied |= np.asarray(r[key]).sum(0) > 0
    nz = np.flatnonzero(occupied)
    width = edges[1] - edges[0]
    lo, hi = (edges[nz[0]], edges[nz[-1] + 1]) if nz.size else (edges[0], edges[-1])
    return min(lo, 0.0) - width, max(hi, 0.0) + width


def _movie_panel(ax, run_frames: dict, i: int, edges, color):
    """One frame: the training slice filled, the held-out points as a black line, both in
    fractions of their samples; non-empty edge bins hatched (they hold the overflow)."""
    tr = np.asarray(run_frames["train"][i], float) / run_frames["n_train"]
    he = np.asarray(run_frames["heldout"][i], float) / run_frames["n_heldout"]
    ax.stairs(tr, edges, fill=True, color=color, alpha=0.55,
              label=f"training slice (n={run_frames['n_train']})")
    ax.stairs(he, edges, color="black", lw=1.0, label=f"held-out (n={run_frames['n_heldout']})")
    _mark_edge_bins(ax, edges, int(tr[0] + he[0] > 0), int(tr[-1] + he[-1] > 0))
    ax.axvline(0, color="black", ls="--", lw=0.8)
    ax.grid(alpha=0.3)


def _movie_attack(frames: dict) -> str:
    """The attack of the frames, e.g. "PGD-10, eps 0.0375" (fit's: the tier's training one)."""
    tier = frames.get("tier") or {}
    if "train_steps" not in tier:
        return "PGD"
    return f"PGD-{tier['train_steps']}, eps {tier['eps']:.4g}"


def _movie_note(run_frames: dict, i: int, peaks: list) -> str:
    acc = run_frames["train_slice_pgd_acc"][i]
    acc = "" if acc is None else f"\nPGD acc, train slice {acc:.0%}"
    return f"peaks: {peaks[i]}{acc}"


def plot_margin_frame(frames: dict, epoch: int, *, title: str | None = None):
    """One epoch of the margin movie (:mod:`sovr_tutorial.movie`): a panel per run, side by
    side, each with the adversarial margins of the training slice (filled) and of the
    held-out points (line) on the movie's fixed bins, in fractions of samples.

    All panels share the x range (every frame of the movie fits in it, so it does not jump
    between epochs); y is scaled per panel, so a collapsed run's spike does not flatten the
    others (read the heights on each panel's axis). A hatched edge bin holds margins from
    beyond the bins' range. The note in a panel gives the peak count of the training
    slice's margins (:func:`sovr_tutorial.movie.peak_counts`) and its PGD accuracy.
    """
    from .movie import check_frames, epoch_index, key_epochs, peak_counts

    check_frames(frames)
    edges = np.asarray(frames["edges"], float)
    runs = frames["runs"]
    fig = Figure(figsize=(3.3 * len(runs) + 0.6, 3.2), layout="constrained")
    axes = np.ravel(fig.subplots(1, len(runs), sharex=True, squeeze=False))
    for k, (ax, r) in enumerate(zip(axes, runs)):
        i = epoch_index(r, epoch)
        _movie_panel(ax, r, i, edges, method_color(r["slug"], k))
        ax.set_title(r["label"], fontsize=10)
        ax.text(0.03, 0.80, _movie_note(r, i, peak_counts(r)), transform=ax.transAxes,
                va="top", fontsize=7.5)
        ax.set_xlabel("adversarial margin")
    axes[0].set_xlim(*_movie_xlim(frames, edges))
    axes[0].set_ylabel("fraction of samples")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize=8)
    last = max(runs[0]["epochs"])
    lr = runs[0]["lr"][epoch_index(runs[0], epoch)]
    head = f"epoch {epoch} of {last}" + (f", lr {lr:.3g}" if lr is not None else "") + \
        f"; adversarial margins at {_movie_attack(frames)}"
    notes = [f"{name} {e}" for name, e in key_epochs(frames).items() if e <= epoch]
    fig.suptitle(title or head + (f" ({'; '.join(notes)})" if notes else ""), fontsize=10)
    return fig


def plot_margin_movie(frames: dict, epochs=None, *, n: int = 5, title: str | None = None):
    """The margin movie as small multiples: one row per run, the chosen ``epochs`` as
    columns (default: ``n`` evenly spread ones plus the epochs where the learning rate
    drops and GAIRAT's re-weighting starts, :func:`sovr_tutorial.movie.key_epochs`).

    Every panel uses the movie's fixed bins and the same x range, so widths compare; y is
    the fraction of samples, scaled per panel (a collapsed run's spike would flatten every
    other panel of its column). Training slice filled, held-out points as a line; hatched
    edge bins hold the overflow.
    """
    from .movie import check_frames, common_epochs, epoch_index, key_epochs, peak_counts, pick_epochs

    check_frames(frames)
    keys = key_epochs(frames)
    available = common_epochs(frames)
    epochs = pick_epochs(available, n=n, include=keys.values()) if epochs is None else \
        sorted(int(e) for e in epochs)
    missing = [e for e in epochs if e not in available]
    if missing or not epochs:
        raise ValueError(f"plot_margin_movie: no frames of epochs {missing or epochs} in every "
                         f"run (recorded: {available[0]}..{available[-1]})")
    edges = np.asarray(frames["edges"], float)
    runs = frames["runs"]
    fig = Figure(figsize=(2.5 * len(epochs) + 0.8, 1.9 * len(runs) + 0.8), layout="constrained")
    axes = fig.subplots(len(runs), len(epochs), sharex=True, squeeze=False)
    starts = {e: name.replace(" from", "") for name, e in keys.items()}
    for row, r in enumerate(runs):
        peaks = peak_counts(r)
        for col, e in enumerate(epochs):
            ax = axes[row, col]
            i = epoch_index(r, e)
            _movie_panel(ax, r, i, edges, method_color(r["slug"], row))
            ax.text(0.03, 0.80, _movie_note(r, i, peaks), transform=ax.transAxes, va="top",
                    fontsize=6.5)
            if row == 0:
                ax.set_title(f"epoch {e}" + (f"\n({starts[e]} here)" if e in starts else ""),
                             fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{r['label']}\nfraction", fontsize=9)
            if row == len(runs) - 1:
                ax.set_xlabel("adversarial margin", fontsize=8)
    axes[0, 0].set_xlim(*_movie_xlim(frames, edges))
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize=8)
    fig.suptitle(title or f"margin movie: adversarial margins ({_movie_attack(frames)}) of a "
                 "training slice (filled) and held-out points (line) during training", fontsize=10)
    return fig
