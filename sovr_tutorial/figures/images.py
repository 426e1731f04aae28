"""Adversarial examples as pictures: clean image, perturbation, adversarial image and the
class probabilities before and after the attack (notebook 01 and the FGSM/PGD explorer).

Like every figure of the course, a pure function that returns a matplotlib ``Figure``.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..data import CLASSES
from .plots import _to_numpy


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
