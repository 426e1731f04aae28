"""Where SOVR's switch falls on the margins, and how hard OVR pushes a margin compared with CE.

Two pieces of notebook 05, section 2:

* ``switch_stats``: the ratio rule picks the ``value`` fraction of smallest adversarial
  margins *of each batch*; on a set of measured margins it returns the margins where the cut
  falls and the share of the switched samples that are misclassified (margin < 0).
* the two-logit gradient flow: logits ``(m/2, -m/2)``, true class 0, gradient flow on the
  logits themselves (docs/method.md, "Why OVR grows margins faster"). CE with weight ``w``
  gives ``dm/dt = 2 w sigmoid(-m)``, OVR gives ``dm/dt = 2 sigmoid(-m/2)`` (the logits stay
  symmetric), so in closed form

      CE (weight w):  m + e^m     = 2 w t + m0 + e^m0
      OVR:            m + 2 e^m/2 = 2 t   + m0 + 2 e^(m0/2)

  OVR's push over CE's is ``sigmoid(-m/2) / sigmoid(-m) = (1 + e^m) / (1 + e^(m/2))``: below 1
  for every m < 0, above 1 for m > 0. "OVR grows margins twice as fast" is the large-t limit
  (m ~ 2 log t against log t); before it, CE (and more so weighted CE) can be ahead:
  ``flow_crossing`` says where the curves cross.

``plot_switch_cut`` and ``plot_push_and_flow`` draw both.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

from ..checks import check_number
from ..losses import sovr_select


# --------------------------------------------------------------------------- the switch

def switch_stats(margins, value: float = 0.4, batch_size: int = 128, seed: int = 0) -> dict:
    """The ratio rule applied batch by batch to measured adversarial margins.

    margins: (N,) floats. The samples are shuffled (``seed``) into batches of ``batch_size``
    (the last, shorter batch included) and :func:`sovr_selects <sovr_tutorial.losses.sovr_select>`
    ratio rule picks each batch's smallest ``value`` fraction, as in training. Returns
    {"n", "switched" (fraction of all samples), "cut" (median over batches of the largest
    switched margin), "cut_range" (min, max over batches), "misclassified_share" (share of
    the switched samples with margin < 0), "negative" (share of all samples with margin < 0)}.
    """
    m = torch.as_tensor(np.asarray(margins, dtype=np.float64).ravel())
    if m.numel() == 0 or not torch.isfinite(m).all():
        raise ValueError("switch_stats needs a non-empty vector of finite margins")
    value = check_number("value", value, low=0.0, high=1.0)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    order = torch.randperm(m.numel(), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(m.numel(), dtype=torch.bool)
    cuts = []
    for start in range(0, m.numel(), batch_size):
        idx = order[start:start + batch_size]
        pick = sovr_select(m[idx], rule="ratio", value=value)
        mask[idx[pick]] = True
        if pick.any():
            cuts.append(float(m[idx][pick].max()))
    chosen = m[mask]
    return {"n": int(m.numel()), "switched": float(mask.float().mean()),
            "cut": float(np.median(cuts)) if cuts else None,
            "cut_range": (min(cuts), max(cuts)) if cuts else None,
            "misclassified_share": float((chosen < 0).float().mean()) if chosen.numel() else None,
            "negative": float((m < 0).float().mean())}


# --------------------------------------------------------------------------- two-logit flow

def push_ratio(m):
    """OVR's push on the margin over CE's for two symmetric logits (m/2, -m/2):
    ``sigmoid(-m/2) / sigmoid(-m) = (1 + e^m) / (1 + e^(m/2))``; m any shape, same shape out."""
    m = np.asarray(m, dtype=np.float64)
    # log-space so large |m| neither overflows nor cancels
    return np.exp(np.logaddexp(0.0, m) - np.logaddexp(0.0, m / 2))


def _solve(f, df, target, start):
    """Newton on the increasing convex f(m) = target from ``start`` >= the root: the
    iterates decrease monotonically to it (no overshoot, no overflow)."""
    m = np.asarray(start, dtype=np.float64)
    for _ in range(200):
        step = (f(m) - target) / df(m)
        m = m - step
        if np.all(np.abs(step) <= 1e-13 * np.maximum(1.0, np.abs(m))):
            break
    return m


def margin_flow(t, loss: str = "ce", m0: float = 0.0, weight: float = 1.0):
    """Margin at gradient-flow time t (any shape, t >= 0) of two symmetric logits, true
    class 0, started at margin m0; ``loss`` "ce" (times ``weight``) or "ovr" (closed form of
    the module docstring, solved by Newton)."""
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    weight = check_number("weight", weight, low=0.0, low_open=True)
    if loss == "ce":
        f, df = (lambda m: m + np.exp(m)), (lambda m: 1 + np.exp(m))
        target = 2 * weight * t + m0 + math.exp(m0)
        # m < target always, and e^m <= target once target >= 1 (then m >= 0)
        start = np.where(target >= 1, np.log(np.maximum(target, 1.0)), target)
    elif loss == "ovr":
        f, df = (lambda m: m + 2 * np.exp(m / 2)), (lambda m: 1 + np.exp(m / 2))
        target = 2 * t + m0 + 2 * math.exp(m0 / 2)
        start = np.where(target >= 2, 2 * np.log(np.maximum(target, 2.0) / 2), target)
    else:
        raise ValueError(f"loss must be 'ce' or 'ovr', got {loss!r}")
    return _solve(f, df, target, start)


def flow_crossing(m0: float = 0.0, weight: float = 1.0):
    """Where OVR's flow catches CE's (weight ``weight``) started together at m0.

    Returns (t, m), the first time t > 0 at which both margins equal m, or None if OVR never
    falls behind (then it is ahead from the start: weight 1 and m0 >= 0). Equal margins at
    time t mean ``(m + e^m - m0 - e^m0) / w = m + 2 e^(m/2) - m0 - 2 e^(m0/2)``.
    """
    weight = check_number("weight", weight, low=0.0, low_open=True)
    g = lambda m: ((m + math.exp(m) - m0 - math.exp(m0)) / weight  # noqa: E731
                   - (m + 2 * math.exp(m / 2) - m0 - 2 * math.exp(m0 / 2)))
    # at the start CE is ahead iff its push is larger: 2 w sigmoid(-m0) > 2 sigmoid(-m0/2)
    if weight / (1 + math.exp(m0)) <= 1 / (1 + math.exp(m0 / 2)):
        return None
    # CE is ahead just after m0 (g < 0) and OVR far out (g > 0): the first sign change on a
    # fine grid brackets the crossing, bisection refines it
    grid = m0 + np.arange(1, 8001) * 0.01
    vals = np.array([g(m) for m in grid])
    first = int(np.argmax(vals > 0))
    lo, hi = (grid[first - 1] if first else m0), grid[first]
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) < 0 else (lo, mid)
    m = 0.5 * (lo + hi)
    return (m + 2 * math.exp(m / 2) - m0 - 2 * math.exp(m0 / 2)) / 2, m


# --------------------------------------------------------------------------- figures

def _log_ticks(axis, low: float, high: float):
    """Labelled ticks on a log axis viewing [low, high] (plain numbers): at 1, 2 and 5 of each
    decade when it spans three decades or fewer (an axis of one or two decades then reads
    with several labels, not two), at each decade beyond."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(max(high, low) / min(high, low))
    subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=30))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0, numticks=30))
    axis.set_minor_formatter(NullFormatter())
    axis.set_tick_params(labelsize=8)


def plot_switch_cut(margins: dict, value: float = 0.4, batch_size: int = 128, *,
                    bins=None, title: str | None = None):
    """Adversarial margin histograms with the ratio rule's cut, one panel per model.

    margins: {name: (N,) margins}. Each panel marks the median cut over batches
    (:func:`switch_stats`), shades the switched side and says which share of the switched
    samples are misclassified. Returns the Figure.
    """
    if not margins:
        raise ValueError("plot_switch_cut needs at least one set of margins")
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in margins.items()}
    if bins is None:
        lo = min(float(np.quantile(a, 0.005)) for a in arrays.values())
        hi = max(float(np.quantile(a, 0.995)) for a in arrays.values())
        bins = np.linspace(math.floor(lo), math.ceil(hi), 41)
    fig = Figure(figsize=(5.2 * len(arrays), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(arrays), sharey=True))
    for ax, (name, a) in zip(axes, arrays.items()):
        s = switch_stats(a, value, batch_size)
        ax.hist(a, bins=bins, color="0.6", label=f"all ({s['n']} samples)")
        ax.hist(a[a <= s["cut"]], bins=bins, color="tab:orange", alpha=0.8,
                label=f"below the cut: {100 * s['switched']:.0f}% switched to OVR")
        ax.axvline(s["cut"], color="tab:orange", linestyle="--")
        ax.axvline(0, color="k", linewidth=0.8)
        ax.set_title(f"{name}\ncut at {s['cut']:+.2f} (batches {s['cut_range'][0]:+.2f} to "
                     f"{s['cut_range'][1]:+.2f}); {100 * s['misclassified_share']:.0f}% of "
                     "switched are misclassified", fontsize=9)
        ax.set_xlabel("adversarial margin")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("samples")
    fig.suptitle(title or f"where the ratio rule at {value:g} switches (batches of {batch_size})",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_push_and_flow(measured: dict | None = None, *, m0: float = -1.0, weights=(1.0, 2.0),
                       cut: float | None = None, t_max: float = 1e4, title: str | None = None):
    """Left: OVR's push on the margin over CE's against the margin (two-logit formula, and
    ``measured`` = {label: :func:`sovr_tutorial.toy.model.push_curve` dict} on a model's logits).
    Right: margin against gradient-flow time (log scale) of CE at each weight and of OVR,
    started at ``m0``, with the crossings of :func:`flow_crossing` marked. ``cut``: a margin to
    mark on the left (where the ratio rule switches). Returns the Figure."""
    fig = Figure(figsize=(12.5, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    grid = np.linspace(-6, 6, 241)
    ax1.plot(grid, push_ratio(grid), color="k", linestyle="--",
             label="two logits (m/2, -m/2): sigmoid(-m/2) / sigmoid(-m)")
    for i, (label, curve) in enumerate((measured or {}).items()):
        e = np.asarray(curve["edges"])
        ratio = np.array([np.nan if v is None else v for v in curve["ratio"]])
        ax1.plot((e[:-1] + e[1:]) / 2, ratio, marker="o", markersize=3,
                 color=("tab:blue", "tab:green", "tab:purple")[i % 3], label=label)
    ax1.axhline(1, color="k", linewidth=0.8)
    ax1.set_yscale("log")
    ax1.set_xlim(grid[0], grid[-1])
    low, high = ax1.get_ylim()   # autoscaled to the curves
    # the bands say what they show: below the line y = 1 every curve drawn means OVR
    # pushes less than CE (a statement about y, read off each curve); m < 0 is misclassified
    if low < 1:
        ax1.axhspan(low, 1, color="tab:red", alpha=0.07,
                    label="ratio < 1: OVR pushes less than CE")
    ax1.axvspan(grid[0], 0, facecolor="none", edgecolor="0.6", hatch="..", linewidth=0,
                label="m < 0: misclassified")
    if cut is not None:
        ax1.axvline(cut, color="tab:orange", label=f"switch cut {cut:+.2f}")
    ax1.set_ylim(low, high)
    _log_ticks(ax1.yaxis, low, high)
    ax1.set_xlabel("margin m")
    ax1.set_ylabel("OVR's push / CE's push on the margin")
    ax1.legend(fontsize=8)
    ax1.set_title("push ratio against the margin", fontsize=10)

    t = np.geomspace(1e-3, t_max, 300)
    ax2.semilogx(t, margin_flow(t, "ovr", m0), color="tab:orange", linewidth=2, label="OVR")
    for w, color in zip(weights, ("tab:blue", "tab:purple", "tab:cyan")):
        ax2.semilogx(t, margin_flow(t, "ce", m0, w), color=color,
                     label="CE" if w == 1 else f"CE x{w:g} (weighted)")
        cross = flow_crossing(m0, w)
        if cross is not None and cross[0] <= t_max:
            ax2.plot(*cross, "ko", markersize=5)
            ax2.annotate(f"m = {cross[1]:.2f}\nt = {cross[0]:.3g}", cross, fontsize=8,
                         xytext=(5, -18), textcoords="offset points")
    ax2.axhline(0, color="k", linewidth=0.8)
    _log_ticks(ax2.xaxis, *ax2.get_xlim())
    ax2.set_xlabel("gradient-flow time t (log scale)")
    ax2.set_ylabel("margin m")
    ax2.legend(fontsize=8)
    ax2.set_title(f"two logits started at margin {m0:+.2f}: where OVR overtakes CE", fontsize=10)
    fig.suptitle(title or "OVR's push against CE's: it wins only above the crossing", fontsize=11)
    return fig
