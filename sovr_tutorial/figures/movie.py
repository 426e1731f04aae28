"""The margin movie's figures (its frames, :mod:`sovr_tutorial.figures.frames`, are made by
:mod:`sovr_tutorial.lab.movie`; its
epoch slider is :class:`sovr_tutorial.figures.toy_widgets.MarginMovie`): one epoch's histograms
per run (:func:`plot_margin_frame`) and a strip of epochs (:func:`plot_margin_movie`).

Like :mod:`sovr_tutorial.figures.plots`: pure functions that take frames and return a Figure.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .explorer import eps_text
from .frames import (check_frames, common_epochs, epoch_index, key_epochs,
                     peak_counts, pick_epochs)
from .plots import _mark_edge_bins, method_color


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
    """The attack of the frames, e.g. "PGD-10, eps 2/255" for images, "PGD-10, eps 0.0375"
    for the toy world's points, whose budget is off the 1/255 grid (fit's attack: the
    tier's training one)."""
    tier = frames.get("tier") or {}
    if "train_steps" not in tier:
        return "PGD"
    return f"PGD-{tier['train_steps']}, eps {eps_text(tier['eps'])}"


#: the note's backdrop: readable over the bars it may cover
_NOTE_BOX = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.0}


def _movie_note(run_frames: dict, i: int, peaks: list) -> str:
    acc = run_frames["train_slice_pgd_acc"][i]
    acc = "" if acc is None else f"\nPGD acc, train slice {acc:.0%}"
    return f"peaks: {peaks[i]}{acc}"


def plot_margin_frame(frames: dict, epoch: int, *, title: str | None = None):
    """One epoch of the margin movie (:mod:`sovr_tutorial.lab.movie`): a panel per run, side by
    side, each with the adversarial margins of the training slice (filled) and of the
    held-out points (line) on the movie's fixed bins, in fractions of samples.

    All panels share the x range (every frame of the movie fits in it, so it does not jump
    between epochs); y is scaled per panel, so a collapsed run's spike does not flatten the
    others (read the heights on each panel's axis). A hatched edge bin holds margins from
    beyond the bins' range. The note in a panel gives the peak count of the training
    slice's margins (:func:`sovr_tutorial.figures.frames.peak_counts`) and its PGD accuracy.
    """

    check_frames(frames)
    edges = np.asarray(frames["edges"], float)
    runs = frames["runs"]
    fig = Figure(figsize=(3.3 * len(runs) + 0.6, 3.2), layout="constrained")
    axes = np.ravel(fig.subplots(1, len(runs), sharex=True, squeeze=False))
    for k, (ax, r) in enumerate(zip(axes, runs)):
        i = epoch_index(r, epoch)
        _movie_panel(ax, r, i, edges, method_color(r["slug"], k))
        ax.set_title(r["label"], fontsize=10)
        ax.text(0.03, 0.97, _movie_note(r, i, peak_counts(r)), transform=ax.transAxes,
                va="top", fontsize=8, bbox=_NOTE_BOX)
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


#: columns (epochs) of the small multiples at most: at 2 inches each the figure fits a
#: notebook's width, so it is shown at 100% and its 8-point text stays 8 points
MAX_MOVIE_COLUMNS = 5


def _thin_epochs(epochs: list, most: int, keep) -> list:
    """At most ``most`` of ``epochs``: the first and last, then the ``keep`` ones (epochs
    where training changes), then evenly spread others."""
    if len(epochs) <= most:
        return epochs
    chosen = [epochs[0], epochs[-1]] + [e for e in epochs if e in set(keep)]
    chosen = list(dict.fromkeys(chosen))[:most]
    for e in pick_epochs(epochs, n=most):
        if len(chosen) >= most:
            break
        if e not in chosen:
            chosen.append(e)
    return sorted(chosen)


def plot_margin_movie(frames: dict, epochs=None, *, n: int = 5, title: str | None = None,
                      max_columns: int = MAX_MOVIE_COLUMNS):
    """The margin movie as small multiples: one row per run, the chosen ``epochs`` as
    columns (default: ``n`` evenly spread ones plus the epochs where the learning rate
    drops and GAIRAT's re-weighting starts, :func:`sovr_tutorial.figures.frames.key_epochs`).

    Every panel uses the movie's fixed bins and the same x range, so widths compare; y is
    the fraction of samples, scaled per panel (a collapsed run's spike would flatten every
    other panel of its column). Training slice filled, held-out points as a line; hatched
    edge bins hold the overflow. More than ``max_columns`` epochs are thinned to that many
    (first, last, the key epochs, then evenly spread ones; the title says so), so the
    figure stays readable at 100%: every text is at least 8 points.
    """

    check_frames(frames)
    keys = key_epochs(frames)
    available = common_epochs(frames)
    epochs = pick_epochs(available, n=n, include=keys.values()) if epochs is None else \
        sorted(int(e) for e in epochs)
    missing = [e for e in epochs if e not in available]
    if missing or not epochs:
        raise ValueError(f"plot_margin_movie: no frames of epochs {missing or epochs} in every "
                         f"run (recorded: {available[0]}..{available[-1]})")
    asked = len(epochs)
    epochs = _thin_epochs(epochs, max_columns, keys.values())
    edges = np.asarray(frames["edges"], float)
    runs = frames["runs"]
    fig = Figure(figsize=(2.0 * len(epochs) + 0.9, 1.8 * len(runs) + 1.1), layout="constrained")
    axes = fig.subplots(len(runs), len(epochs), sharex=True, squeeze=False)
    starts = {e: name.replace(" from", "") for name, e in keys.items()}
    for row, r in enumerate(runs):
        peaks = peak_counts(r)
        for col, e in enumerate(epochs):
            ax = axes[row, col]
            i = epoch_index(r, e)
            _movie_panel(ax, r, i, edges, method_color(r["slug"], row))
            ax.text(0.03, 0.97, _movie_note(r, i, peaks), transform=ax.transAxes, va="top",
                    fontsize=8, bbox=_NOTE_BOX)
            ax.tick_params(labelsize=8)
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
    thinned = f" ({len(epochs)} of the {asked} epochs asked for)" if len(epochs) < asked else ""
    fig.suptitle(title or f"margin movie: adversarial margins ({_movie_attack(frames)})\nof a "
                 f"training slice (filled) and held-out points (line){thinned}", fontsize=10)
    return fig
