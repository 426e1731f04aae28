"""The margin movie: how the adversarial margins move, epoch by epoch, while a model trains.

:func:`sovr_tutorial.train.fit`, given held-out data, records at the end of every epoch the
histogram of the adversarial margins (PGD-``train_steps`` at the tier's eps) of the held-out
points and of an equally large slice of the training set (its first points), on the fixed
bins ``train.MOVIE_RANGE`` / ``train.MOVIE_BINS`` (values beyond the range are counted in
the edge bins). This module turns those records into *frames* and makes a movie of the toy
world, where every method trains in seconds.

The frames' format and what is read from them are :mod:`sovr_tutorial.figures.frames`.

    python -m sovr_tutorial.lab.movie --runs at,gairat,sovr-r0.4,mart --seeds 0 --plot

trains each run in the toy world (seed by seed, a finished run is read back from its file)
and writes ``results/toy-movie/frames-s<seed>.json`` and, with ``--plot``, the static
figure ``margin_movie-s<seed>.png``. ``--from-results FILE ...`` makes frames from the
runner's result files (their ``history``) instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..checks import check_number
from ..devices import model_device
from ..figures.frames import (common_epochs, epoch_index, frames_from_history,
                              key_epochs, load_frames, make_frames, peak_counts, pick_epochs,
                              save_frames)
from ..evaluate import adversarial_margins
from ..margins import margin_peaks, margin_summary
from ..paths import results_dir
from ..runs import as_run
from ..tiers import get_tier
from ..train import train
from .experiments import command_line, environment
from .results import run_of

#: the runs of the toy movie, in the order of the figure's rows
DEFAULT_RUNS = ("at", "gairat", "sovr-r0.4", "mart")
#: held-out points of the toy movie: the whole test set of the world (2,048 points), so the
#: training slice is the whole training set too
TOY_HELDOUT = 2048
#: the columns of the toy movie's static figure: the start, AT's histogram taking shape,
#: the last plain-AT epoch of GAIRAT's burn-in (45) and the first re-weighted one, then
#: before and after the learning-rate drops (91, 136) and the end
TOY_FIGURE_EPOCHS = (1, 5, 45, 46, 60, 120, 180)
_QUANTILES = ("q10", "q25", "q50", "q75", "q90", "frac_negative", "frac_small")


# --------------------------------------------------------------------------- frames

def frames_from_results(paths) -> dict:
    """Frames of the runner's result files (JSON with ``history``), in the given order."""
    results = [json.loads(Path(p).read_text()) for p in paths]
    entries = [frames_from_history(r["history"], run=run_of(r), seed=int(r.get("seed", 0)))
               for r in results]
    data = sorted({str((r.get("data") or {}).get("label") or (r.get("data") or {}).get("source"))
                   for r in results})
    return make_frames(entries, tier=results[0].get("tier"), data=", ".join(data),
                       sources=[str(p) for p in paths])


# --------------------------------------------------------------------------- toy movie

def _slice_margins(model, x, y, tier, seed: int) -> np.ndarray:
    """The adversarial margins fit's epoch metrics histogram: PGD-``train_steps`` at the
    tier's eps and step size, random starts under ``seed``, in attack_dataset's batches."""
    return adversarial_margins(model, x, y, eps=tier.eps, steps=tier.train_steps,
                               step_size=tier.alpha, seed=seed, batch_size=500,
                               gradients=False)["margin"]


def toy_movie_run(run, seed: int = 0, *, tier=None, n_heldout: int = TOY_HELDOUT,
                  device=None, progress: bool = False) -> dict:
    """Train ``run`` in the toy world of ``seed`` with frames recorded every epoch.

    The held-out points are the first ``n_heldout`` test points of
    :func:`sovr_tutorial.toy.world.make_world`, the training slice the first ``n_heldout``
    training points. Besides fit's histograms, each epoch keeps the peaks and quantiles
    of the training slice's *raw* adversarial margins (``train_peaks``,
    ``train_quantiles``; the same attack as the histograms). Returns the run's entry.
    """
    from ..toy.world import make_world

    run = as_run(run)
    tier = get_tier("toy") if tier is None else tier
    n_heldout = check_number("n_heldout", n_heldout, low=2, high=min(tier.n_train, tier.n_test),
                             integer=True)
    (x_tr, y_tr, _), (x_te, y_te, _) = make_world(seed, n_train=tier.n_train, n_test=tier.n_test)
    x_slice, y_slice = x_tr[:n_heldout], y_tr[:n_heldout]
    peaks, quantiles = [], []

    def on_epoch(epoch, record, model):
        device = model_device(model)
        m = _slice_margins(model, x_slice.to(device), y_slice.to(device), tier, seed)
        peaks.append([round(p, 3) for p in margin_peaks(m)])
        s = margin_summary(m)
        quantiles.append({k: round(s[k], 4) for k in _QUANTILES})

    t0 = time.perf_counter()
    _, history = train(run, x_tr, y_tr, tier=tier, seed=seed, x_val=x_te[:n_heldout],
                       y_val=y_te[:n_heldout], device=device, progress=progress,
                       on_epoch=on_epoch)
    entry = frames_from_history(history, run=run, seed=seed)
    entry.update(train_peaks=peaks, train_quantiles=quantiles,
                 seconds=round(time.perf_counter() - t0, 1))
    return entry


def toy_movie(runs=DEFAULT_RUNS, seed: int = 0, *, tier=None, n_heldout: int = TOY_HELDOUT,
              device=None, path=None, command: str = "") -> dict:
    """The toy world's margin movie of ``runs`` at ``seed``: a frames dict.

    With ``path`` the frames are written there after every run, and runs already in the
    file (same tier and held-out size) are read back instead of trained again.
    """
    tier = get_tier("toy") if tier is None else tier
    meta = {"tier": dataclasses.asdict(tier), "seed": seed,
            "data": "toy world (sovr_tutorial.toy.make_world), held-out = its first "
                    f"{n_heldout} test points, training slice = its first {n_heldout} "
                    "training points",
            "n_heldout": n_heldout}
    done = {}
    if path is not None and Path(path).exists():
        old = load_frames(path)
        if old.get("tier") == meta["tier"] and old.get("n_heldout") == n_heldout:
            done = {r["run"]: r for r in old["runs"]}
    entries = []
    for run in map(as_run, runs):
        entry = done.get(run.name(seed)) or toy_movie_run(run, seed, tier=tier,
                                                          n_heldout=n_heldout, device=device)
        entries.append(entry)
        frames = make_frames(entries, **meta, environment=environment(), command=command,
                             finished=dt.datetime.now(dt.timezone.utc).isoformat(
                                 timespec="seconds"))
        if path is not None:
            save_frames(frames, path)
    return frames


def movie_folder() -> Path:
    """The toy movie's folder: ``results/toy-movie``."""
    return results_dir() / "toy-movie"


def frames_path(seed: int, folder=None) -> Path:
    """``<folder or results/toy-movie>/frames-s<seed>.json``."""
    return Path(folder or movie_folder()) / f"frames-s{seed}.json"


# --------------------------------------------------------------------------- summary

def movie_summary(frames: dict) -> list:
    """Per run and per key epoch (first, last, lr drops, GAIRAT burn-in and the epoch
    before each), what the frames show: a list of rows (dicts) for a table."""
    keys = key_epochs(frames)
    marks = set(keys.values())
    marks |= {e - 1 for e in marks}
    rows = []
    for r in frames["runs"]:
        counts = peak_counts(r, "train")
        chosen = pick_epochs(r["epochs"], n=2, include=marks)
        for e in chosen:
            i = epoch_index(r, e)
            row = {"run": r["run"], "label": r["label"], "epoch": e,
                   "train_peaks": counts[i],
                   "train_slice_pgd_acc": r["train_slice_pgd_acc"][i],
                   "heldout_pgd_acc": r["pgd_acc"][i]}
            if r.get("train_quantiles"):
                row.update(r["train_quantiles"][i])
            if r.get("train_peaks"):
                row["peak_positions"] = r["train_peaks"][i]
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.lab.movie",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default=",".join(DEFAULT_RUNS), help="comma-separated run slugs")
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--out", default=str(movie_folder()), help="folder of the frames and figures")
    p.add_argument("--n-heldout", type=int, default=TOY_HELDOUT)
    p.add_argument("--device", default=None)
    p.add_argument("--plot", action="store_true", help="draw the static figure(s)")
    p.add_argument("--from-results", nargs="+", metavar="FILE",
                   help="make frames of the runner's result files instead of training")
    return p.parse_args(argv)


def save_movie_figure(frames: dict, path, epochs=None) -> Path:
    """Draw :func:`sovr_tutorial.figures.movie.plot_margin_movie` of ``frames`` into ``path``."""
    from ..figures.movie import plot_margin_movie

    fig = plot_margin_movie(frames, epochs=epochs)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return Path(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    command = command_line("sovr_tutorial.lab.movie", argv)
    if args.from_results:
        frames = frames_from_results(args.from_results)
        path = save_frames(frames, out / "frames.json")
        print("wrote", path)
        if args.plot:
            print("wrote", save_movie_figure(frames, out / "margin_movie.png"))
        return 0
    runs = [as_run(r) for r in args.runs.split(",") if r.strip()]
    for seed in (int(s) for s in args.seeds.split(",") if s.strip()):
        path = frames_path(seed, out)
        frames = toy_movie(runs, seed, n_heldout=args.n_heldout, device=args.device,
                           path=path, command=command)
        for row in movie_summary(frames):
            q = f"  q10/q50/q90 {row['q10']:+.2f}/{row['q50']:+.2f}/{row['q90']:+.2f}" \
                if "q50" in row else ""
            print(f"{row['run']:>14} epoch {row['epoch']:>3}: peaks {row['train_peaks']}"
                  f"  train-slice PGD acc {row['train_slice_pgd_acc']:.3f}{q}", flush=True)
        if args.plot:
            epochs = [e for e in TOY_FIGURE_EPOCHS if e in common_epochs(frames)] or None
            print("wrote", save_movie_figure(frames, out / f"margin_movie-s{seed}.png", epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
