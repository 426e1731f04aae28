"""The figures of the SOVR explorers (their widgets are in :mod:`sovr_tutorial.figures.widgets`):
one fine-tuned model's adversarial-margin histogram next to a reference
(:func:`threshold_figure`, what :func:`sovr_tutorial.figures.widgets.explore_threshold` draws), a
row of them (:func:`compare_thresholds`), and the words and ranges they share.

Like :mod:`sovr_tutorial.figures.plots`: pure functions that take data and return a Figure.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .plots import _hist


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


def threshold_figure(info, reference, *, reference_label, tier, data_label, eval_label,
                     seed, eval_steps, hist_range):
    """The threshold explorer's picture of one :func:`~sovr_tutorial.figures.widgets.explore_threshold`
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
