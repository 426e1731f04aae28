"""The margin movie's frames: the histograms of adversarial margins that
:func:`sovr_tutorial.train.fit` records epoch by epoch, as one JSON-ready dict, and what the
figures and the epoch slider read from it (epochs, peaks, the epochs where training changes).

Frames are made by the lab's runners (:mod:`sovr_tutorial.lab.movie` for the toy world,
:func:`sovr_tutorial.lab.movie.frames_from_results` for result files)::

    {"format": "sovr-margin-movie/1", "range": [-10, 10], "bins": 80, "edges": [81 floats],
     "tier": {...}, "seed": 0, "data": "...", "environment": {...},
     "runs": [{"run": "at-s0", "slug": "at", "label": "AT", "method": "at", "seed": 0,
               "n_train": N, "n_heldout": N, "epochs": [1, ..., E], "lr": [...],
               "train": [[80 counts] per epoch], "heldout": [[80 counts] per epoch],
               "pgd_acc": [...], "train_slice_pgd_acc": [...],
               # toy movie only, from the raw margins of the training slice:
               "train_peaks": [[peak positions] per epoch], "train_quantiles": [{...}]}]}
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..checks import check_number
from ..files import atomic_write_text
from ..margins import margin_peaks
from ..runs import as_run
from ..train import MOVIE_BINS, MOVIE_RANGE

FORMAT = "sovr-margin-movie/1"


def movie_edges() -> list:
    """The MOVIE_BINS + 1 bin edges of every frame (the same for all epochs and methods)."""
    return np.linspace(*MOVIE_RANGE, MOVIE_BINS + 1).tolist()


def frames_from_history(history: list, *, run, seed: int) -> dict:
    """One run's entry of a frames dict, from the history ``fit`` returned (or stored in a
    result file or checkpoint). Epochs without frames (fit got no ``x_val``) are skipped;
    a history without any raises ValueError."""
    run = as_run(run)
    rows = [h for h in history if "hist_train_adv" in h and "hist_heldout_adv" in h]
    if not rows:
        raise ValueError(f"{run.name(seed)}: the history has no margin frames (fit records "
                         "them only when it is given x_val)")
    for h in rows:
        for key in ("hist_train_adv", "hist_heldout_adv"):
            if len(h[key]) != MOVIE_BINS:
                raise ValueError(f"{run.name(seed)}, epoch {h['epoch']}: {key} has "
                                 f"{len(h[key])} bins, expected {MOVIE_BINS}")
    return {"run": run.name(seed), "slug": run.slug, "label": run.label,
            "method": run.method, "seed": seed,
            "n_train": int(sum(rows[0]["hist_train_adv"])),
            "n_heldout": int(sum(rows[0]["hist_heldout_adv"])),
            "epochs": [int(h["epoch"]) for h in rows],
            "lr": [h.get("lr") for h in rows],
            "train": [list(map(int, h["hist_train_adv"])) for h in rows],
            "heldout": [list(map(int, h["hist_heldout_adv"])) for h in rows],
            "pgd_acc": [h.get("pgd_acc") for h in rows],
            "train_slice_pgd_acc": [h.get("train_slice_pgd_acc") for h in rows]}


def make_frames(runs: list, **meta) -> dict:
    """A frames dict of the run entries ``runs`` (from :func:`frames_from_history`);
    ``meta`` (tier, seed, data, environment, command ...) is stored beside them."""
    return {"format": FORMAT, "range": list(MOVIE_RANGE), "bins": MOVIE_BINS,
            "edges": movie_edges(), **meta, "runs": list(runs)}


def check_frames(frames: dict) -> dict:
    """Raise ValueError unless ``frames`` is a frames dict whose every frame has the
    movie's bins and sums to its slice size; returns it."""
    if not isinstance(frames, dict) or frames.get("format") != FORMAT:
        raise ValueError(f"not a margin-movie frames dict (format {FORMAT!r})")
    if frames["bins"] != MOVIE_BINS or list(frames["range"]) != list(MOVIE_RANGE) or \
            not np.allclose(frames["edges"], movie_edges()):
        raise ValueError(f"frames on other bins than {MOVIE_BINS} over {MOVIE_RANGE}")
    if not frames["runs"]:
        raise ValueError("frames without runs")
    for r in frames["runs"]:
        for key, n in (("train", r["n_train"]), ("heldout", r["n_heldout"])):
            if len(r[key]) != len(r["epochs"]):
                raise ValueError(f"{r['run']}: {len(r[key])} {key} frames for "
                                 f"{len(r['epochs'])} epochs")
            for epoch, counts in zip(r["epochs"], r[key]):
                if len(counts) != MOVIE_BINS or sum(counts) != n:
                    raise ValueError(f"{r['run']}, epoch {epoch}: the {key} frame has "
                                     f"{len(counts)} bins summing to {sum(counts)}, "
                                     f"expected {MOVIE_BINS} summing to {n}")
    return frames


def save_frames(frames: dict, path) -> Path:
    """Write ``frames`` (checked) as JSON, atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, json.dumps(check_frames(frames), separators=(",", ":")))
    return path


def load_frames(path) -> dict:
    """The frames dict of a file :func:`save_frames` wrote (checked)."""
    return check_frames(json.loads(Path(path).read_text()))


def epoch_index(run_frames: dict, epoch: int) -> int:
    """Position of ``epoch`` (1-based, as recorded) in a run's frames; KeyError if absent."""
    try:
        return run_frames["epochs"].index(int(epoch))
    except ValueError:
        raise KeyError(f"{run_frames['run']} has no frame of epoch {epoch} (it has "
                       f"{run_frames['epochs'][0]}..{run_frames['epochs'][-1]})") from None


def common_epochs(frames: dict) -> list:
    """The epochs every run of ``frames`` has a frame of, ascending."""
    common = set(frames["runs"][0]["epochs"])
    for r in frames["runs"][1:]:
        common &= set(r["epochs"])
    return sorted(common)


def key_epochs(frames: dict) -> dict:
    """Epochs where training changes, read from the frames: {what: first epoch of it}.

    "lr x0.1 from": each epoch whose learning rate is lower than the one before;
    "GAIRAT re-weights from": the first epoch after the tier's ``gairat_burn_in`` (only if
    a GAIRAT run is in the frames and the burn-in ends inside them).
    """
    out = {}
    r = frames["runs"][0]
    drops = [e for e, lr0, lr1 in zip(r["epochs"][1:], r["lr"], r["lr"][1:])
             if lr0 is not None and lr1 is not None and lr1 < lr0]
    for i, e in enumerate(drops):
        out[f"lr x{0.1 ** (i + 1):g} from"] = e
    burn_in = int((frames.get("tier") or {}).get("gairat_burn_in") or 0)
    if burn_in and any(r["method"] == "gairat" and burn_in + 1 in r["epochs"]
                       for r in frames["runs"]):
        out["GAIRAT re-weights from"] = burn_in + 1
    return out


def pick_epochs(epochs, n: int = 5, include=()) -> list:
    """``n`` epochs spread evenly over ``epochs`` (first and last included), plus the ones
    in ``include`` that are among them; sorted, without repeats."""
    epochs = sorted(int(e) for e in epochs)
    if not epochs:
        raise ValueError("pick_epochs: no epochs to pick from")
    n = check_number("n", n, low=1, integer=True)
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, min(n, len(epochs)))).astype(int))
    picked = {epochs[i] for i in idx} | (set(int(e) for e in include) & set(epochs))
    return sorted(picked)


def histogram_peaks(counts, edges) -> list:
    """:func:`sovr_tutorial.margins.margin_peaks` of a frame: each sample placed at its bin's
    centre (the edge bins' overflow too). For frames without raw values (the runner's);
    the bins are 0.25 wide, finer than the density's bandwidth at a few hundred samples."""
    counts = np.asarray(counts, dtype=int)
    centres = (np.asarray(edges[:-1], float) + np.asarray(edges[1:], float)) / 2
    return margin_peaks(np.repeat(centres, counts))


def peak_counts(run_frames: dict, key: str = "train") -> list:
    """Number of peaks per epoch: of the raw margins where the frames keep them
    (``train_peaks``, the toy movie), else of the histograms (:func:`histogram_peaks`)."""
    raw = run_frames.get(f"{key}_peaks")
    if raw is not None:
        return [len(p) for p in raw]
    edges = movie_edges()
    return [len(histogram_peaks(c, edges)) for c in run_frames[key]]
