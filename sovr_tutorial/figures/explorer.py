"""The figures of the SOVR explorers (their widgets are in :mod:`sovr_tutorial.figures.widgets`):
one SOVR fine-tune's adversarial-margin histogram next to the same fine-tune under CE
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


#: the colours of the threshold explorer: the CE reference (outline) and SOVR (filled)
CE_COLOR, SOVR_COLOR = "0.3", "tab:orange"


def sovr_label(info) -> str:
    """``SOVR fine-tuned, ratio 0.4`` (``..., ratio 0 = CE`` where nothing was switched)."""
    same = " = CE" if info["switched_fraction"] == 0 else ""
    return f"SOVR fine-tuned, {rule_text(info['rule'], info['value'])}{same}"


def shift_text(info, reference) -> str:
    """``SOVR - CE: median margin +0.12, PGD accuracy +1.5 pts``."""
    dm = info["margin_median"] - reference["margin_median"]
    da = 100 * (info["pgd_acc"] - reference["pgd_acc"])
    return f"SOVR - CE: median margin {dm:+.2f}, PGD accuracy {da:+.1f} pts"


def _check_info(info, name):
    if not isinstance(info, dict) or "margins" not in info:
        raise TypeError(f"{name} must be an info dict from explore_threshold / ce_reference")
    return info


def _pair_hist(ax, info, reference, edges):
    """CE's histogram (outline) and SOVR's (filled) on ``edges``, with both medians."""
    _hist(ax, reference["margins"], edges, histtype="step", color=CE_COLOR, linewidth=2,
          label=f"{reference.get('label', 'CE fine-tuned (ratio 0)')}, "
                f"median {reference['margin_median']:.2f}")
    _hist(ax, info["margins"], edges, alpha=0.55, color=SOVR_COLOR,
          label=f"{sovr_label(info)}, median {info['margin_median']:.2f}")
    ax.axvline(0, color="k", linewidth=1)
    ax.axvline(reference["margin_median"], color=CE_COLOR, linestyle=":", linewidth=1.5)
    ax.axvline(info["margin_median"], color=SOVR_COLOR, linestyle=":", linewidth=1.5)
    ax.set_xlim(edges[0], edges[-1])


def threshold_figure(info, reference, *, tier, data_label, eval_label, seed, eval_steps,
                     hist_range):
    """The threshold explorer's picture of one :func:`~sovr_tutorial.figures.widgets.explore_threshold`
    result against its CE reference (:func:`~sovr_tutorial.figures.widgets.ce_reference`, the
    same fine-tune under CE): adversarial-margin histograms of both on the same bins, the
    differences of median and PGD accuracy, and the fraction switched to OVR per step."""
    _check_info(info, "info")
    _check_info(reference, "reference")
    lo, hi = hist_range if hist_range is not None else histogram_range(
        reference["margins"], info["margins"])
    edges = np.linspace(lo, hi, 41)
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    _pair_hist(ax, info, reference, edges)
    if info["rule"] == "threshold" and lo <= info["value"] <= hi:
        ax.axvline(info["value"], color="tab:purple", linestyle="--", linewidth=1.5,
                   label="switching threshold (on training margins)")
    ax.set_xlabel(f"adversarial logit margin z_y - max_(k!=y) z_k  (PGD-{eval_steps}, "
                  f"eps {eps_text(tier.eps)}; < 0 = wrong)")
    ax.set_ylabel("fraction of samples")
    ax.legend(fontsize=8, loc="upper left")
    ax.text(0.99, 0.97, f"PGD accuracy\nCE {reference['pgd_acc']:.1%}\n"
            f"SOVR {info['pgd_acc']:.1%}", transform=ax.transAxes, ha="right", va="top",
            fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    ax.set_title(f"{info['n_eval']} {eval_label}: {shift_text(info, reference)}", fontsize=10)
    per_step = info["switched_per_step"]
    ax2.plot(np.arange(1, len(per_step) + 1), per_step, marker="o", markersize=3,
             color=SOVR_COLOR)
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_xlabel("fine-tuning step")
    ax2.set_ylabel("fraction of the batch switched to OVR")
    ax2.set_title(f"switched to OVR: {info['switched_fraction']:.1%} of samples", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"SOVR ({rule_text(info['rule'], info['value'])}) against CE, both fine-tuned "
                 f"{info['steps']} steps from the same model - {tier.name} tier, {data_label}, "
                 f"seed {seed}", fontsize=11)
    return fig


def compare_thresholds(infos, reference, *, tier=None, data_label="CIFAR-10",
                       eval_label="held-out images", seed=0, hist_range=None):
    """One panel per :func:`~sovr_tutorial.figures.widgets.explore_threshold` result, each
    against the CE reference (:func:`~sovr_tutorial.figures.widgets.ce_reference` with the
    same settings), all on the same margin axis; each panel's title gives SOVR's median and
    PGD accuracy minus CE's.

    infos: list of info dicts (each with "margins"); reference: the CE info dict. Returns a
    Figure, the non-interactive view of the threshold explorer.
    """
    infos = [_check_info(info, f"infos[{i}]") for i, info in enumerate(infos)]
    if not infos:
        raise ValueError("infos must hold at least one explore_threshold result")
    _check_info(reference, "reference")
    for i, info in enumerate(infos):
        if "settings" in info and "settings" in reference and \
                info["settings"] != reference["settings"]:
            raise ValueError(f"infos[{i}] was fine-tuned or measured with other settings than "
                             f"the reference: {info['settings']} != {reference['settings']}")
    lo, hi = hist_range if hist_range is not None else histogram_range(
        reference["margins"], *[i["margins"] for i in infos])
    edges = np.linspace(lo, hi, 41)
    fig = Figure(figsize=(4.4 * len(infos), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(infos), sharey=True))
    for ax, info in zip(axes, infos):
        _pair_hist(ax, info, reference, edges)
        dm = info["margin_median"] - reference["margin_median"]
        da = 100 * (info["pgd_acc"] - reference["pgd_acc"])
        ax.set_title(f"{rule_text(info['rule'], info['value'])}: "
                     f"{info['switched_fraction']:.0%} switched to OVR\n"
                     f"vs CE: median {dm:+.2f}, PGD acc {da:+.1f} pts "
                     f"({info['pgd_acc']:.1%})", fontsize=9)
        ax.set_xlabel("adversarial logit margin")
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel(f"fraction of {eval_label}")
    where = f" - {getattr(tier, 'name', tier)} tier" if tier else ""
    fig.suptitle(f"SOVR at several switching values against CE (ratio 0), each fine-tuned "
                 f"{infos[0]['steps']} steps from the same model; {reference['n_eval']} "
                 f"{eval_label}{where}, {data_label}, seed {seed}", fontsize=10)
    return fig
