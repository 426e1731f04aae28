"""The course's three scales side by side: the toy world, the ``cpu`` tier, the ``small`` tier.

Notebooks 03-06 read the committed result files of each scale through this module:

* ``toy``: ``results/toy`` (``python -m sovr_tutorial.lab.toy``, five seeds per method);
* ``cpu``: ``results/cpu`` (the experiment runner at the ``cpu`` tier);
* ``small``: ``results/small``, the CIFAR-10 budget search's pick as a named tier (a 6-conv
  CNN on 1,000 images, eps 2/255, 60 epochs); whatever seeds exist when a notebook runs.

``scale_margins`` gathers the adversarial training margins per scale and method,
``plot_scale_margins`` draws them, ``scale_summary`` tabulates them and ``scale_verdicts``
gives the verdict per claim per scale (:func:`verdicts_by_scale`). ``tier_models`` and
``tier_margins`` load a tier's shipped checkpoints and measure them live (notebooks 03-05
put the ``small`` tier's models beside the ``cpu`` tier's).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..evaluate import adversarial_margins
from ..checkpoint import shipped_path
from ..figures.plots import method_color
from ..paths import results_dir
from ..runs import Run, as_run
from ..sampling import load_data
from ..tiers import get_tier
from ..train import trained_model
from .results import is_collapsed, load_runs
from .verdicts import _hist_values, claim_verdicts, n_peaks

SHOWN = ("at", "gairat", "mart", "sovr-r0.4")


def _root(root=None) -> Path:
    """The results folder this module reads: ``root``, or :func:`sovr_tutorial.paths.results_dir`."""
    return Path(root) if root is not None else results_dir()


def scale_folders(root=None) -> dict:
    """{scale: folder or None}: the folders this module reads under ``root`` (default
    :func:`sovr_tutorial.paths.results_dir`)."""
    root = _root(root)
    return {"toy": root / "toy" if (root / "toy").is_dir() else None,
            "cpu": root / "cpu" if (root / "cpu").is_dir() else None,
            "small": root / "small" if any((root / "small").glob("*.json")) else None}


def tier_models(tier_name: str, methods=SHOWN, seed: int = 0, data_path=None, device=None):
    """A tier's shipped models with the data they were trained on.

    Returns (tier, data, data_info, models, missing): ``data`` and ``data_info`` as from
    :func:`load_data` for the tier (its training images are the checkpoints' training set);
    ``models`` {slug: model in eval mode} for each of ``methods`` whose checkpoint
    ``data/checkpoints/<tier>-<slug>-s<seed>.pt`` ships (sha256-checked); ``missing`` the
    slugs without one (a seed not trained yet). A checkpoint that is there but fails its
    sha256 or does not load raises :class:`CheckpointError`: a broken file is not a missing one."""
    tier = get_tier(tier_name)
    data, data_info = load_data(tier, data_path)
    models, missing = {}, []
    for slug in methods:
        if not shipped_path(as_run(slug).name(seed), tier.name).is_file():
            missing.append(slug)
            continue
        models[slug] = trained_model(slug, retrain=False, shipped_tier=tier.name, seed=seed,
                                     device=device)[0]
    return tier, data, data_info, models, missing


def tier_margins(models: dict, data, tier, n: int, seed: int = 0) -> dict:
    """{slug: {"train": stats, "test": stats}}: :func:`adversarial_margins` of the first ``n``
    training and test images of ``data`` at the tier's *training* attack (PGD-``train_steps``
    at the tier's eps and step size, random starts under ``seed``), the margins SOVR
    switches on."""
    (x_tr, y_tr), _, (x_te, y_te) = data
    sets = {"train": (x_tr[:n].float().div(255), y_tr[:n]),
            "test": (x_te[:n].float().div(255), y_te[:n])}
    return {as_run(slug).slug: {split: adversarial_margins(model, x, y, eps=tier.eps,
                                                           steps=tier.train_steps,
                                                           step_size=tier.alpha, seed=seed)
                                for split, (x, y) in sets.items()}
            for slug, model in models.items()}


def _cell(verdict: str) -> str:
    """A verdict as one table cell: missing files read "not run yet"."""
    text = re.sub(r"not measured: no result files for ([^;]*?) in [^\s;]+", r"not run yet (\1)",
                  verdict)
    return text.replace("|", "/").replace("\n", " ")


def verdicts_by_scale(scales: dict, claims=(1, 2, 3, 4)) -> str:
    """One markdown table: a row per claim (of ``claims``), a column per scale.

    scales: {column name: verdicts dict of :func:`claim_verdicts`,
    or None for a scale with no result files yet}.
    """
    cols = list(scales)
    lines = ["| claim | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for k in claims:
        cells = []
        for col in cols:
            v = scales[col]
            c = None if v is None else next((c for c in v["claims"] if c["claim"] == k), None)
            cells.append("not run yet" if c is None else _cell(c["verdict"]))
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _values(result: dict) -> np.ndarray:
    m = result["margins"]["train_adv"]
    return np.asarray(m["values"], float) if "values" in m else _hist_values(m)


def scale_margins(root=None, slugs=SHOWN) -> dict:
    """{scale: {slug: [result, ...]}} of the runs in ``slugs`` found at each scale (missing
    scales and methods are simply absent; runs collapsed to chance level are left out)."""
    out = {}
    for scale, folder in scale_folders(root).items():
        if folder is None:
            out[scale] = {}
            continue
        runs, out[scale] = load_runs(folder), {}
        for s in slugs:
            # chance-level runs have no margins worth drawing (the verdicts set them aside too)
            rs = [r for r in runs.get(s, {}).values() if not is_collapsed(r)]
            if rs:
                out[scale][s] = rs
    return out


def _title(scale: str, runs: dict, folder) -> str:
    if scale == "toy":
        return "toy world (MLP, 2-D points)"
    if not runs:
        return f"{scale}: not run yet"
    t = next(iter(runs.values()))[0]["tier"]
    what = f"{t['model']} w{t['width']}, {t['n_train']} images, {t['epochs']} ep, eps {t['eps'] * 255:g}/255"
    return f"{scale} tier ({what})"


def plot_scale_margins(root=None, slugs=SHOWN):
    """Adversarial training margins per scale (one panel each), every method's margins
    pooled over its seeds, as densities on the panel's bins. Returns the Figure."""
    margins, folders = scale_margins(root, slugs), scale_folders(root)
    fig = Figure(figsize=(16, 3.9))
    axes = fig.subplots(1, len(margins))
    for ax, (scale, runs) in zip(axes, margins.items()):
        ax.set_title(_title(scale, runs, folders[scale]), fontsize=9)
        ax.axvline(0, color="k", linewidth=0.8)
        ax.set_xlabel("adversarial margin of training samples")
        if not runs:
            ax.text(0.5, 0.5, "no result files yet", ha="center", transform=ax.transAxes)
            continue
        pooled = {s: np.concatenate([_values(r) for r in rs]) for s, rs in runs.items()}
        lo = min(np.quantile(v, 0.01) for v in pooled.values())
        hi = max(np.quantile(v, 0.99) for v in pooled.values())
        stored = [np.diff(r["margins"]["train_adv"]["hist_edges"]).max() for rs in runs.values()
                  for r in rs if "values" not in r["margins"]["train_adv"]]
        # files with only a histogram are redrawn on their own bin width (no comb of empty bins)
        bins = (np.arange(np.floor(lo), np.ceil(hi) + 1e-9, max(stored)) if stored
                else np.linspace(np.floor(lo), np.ceil(hi), 50))
        for s, v in pooled.items():
            ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.6,
                    color=method_color(s), label=f"{Run.parse(s).label} ({len(runs[s])} seeds)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("density")
    fig.suptitle("The same methods at three scales: adversarial (PGD) margins of the training "
                 "samples, pooled over seeds", fontsize=11)
    fig.tight_layout()
    return fig


def scale_summary(root=None, slugs=SHOWN) -> str:
    """Markdown table: per scale and method, the seeds, the peaks of the adversarial training
    margins per seed (:func:`sovr_tutorial.lab.verdicts.n_peaks`) and their q05 / q50 / q95
    (mean over seeds); a scale without files reads "not run yet"."""
    margins, folders = scale_margins(root, slugs), scale_folders(root)
    lines = ["| scale | folder | run | seeds | peaks per seed | q05 / q50 / q95 (mean over seeds) |",
             "|---|---|---|---|---|---|"]
    for scale, runs in margins.items():
        where = f"`{folders[scale].relative_to(folders[scale].parents[1])}`" if folders[scale] else "-"
        if not runs:
            lines.append(f"| {scale} | {where} | not run yet | | | |")
        for s in slugs:
            if s not in runs:
                if runs:
                    lines.append(f"| {scale} | {where} | {Run.parse(s).label} | not run yet | | |")
                continue
            rs = sorted(runs[s], key=lambda r: r["seed"])
            q = [np.mean([r["margins"]["train_adv"]["margin"][k] for r in rs]) for k in ("q05", "q50", "q95")]
            lines.append(f"| {scale} | {where} | {Run.parse(s).label} | {len(rs)} | "
                         f"{', '.join(str(n_peaks(r)) for r in rs)} | "
                         f"{q[0]:+.2f} / {q[1]:+.2f} / {q[2]:+.2f} |")
    return "\n".join(lines) + "\n"


def scale_verdicts(root=None, sovr: str | None = None, claims=(1, 2, 3, 4)) -> str:
    """The verdict per claim (of ``claims``) per scale as one markdown table (columns toy,
    cpu, small, and "toy, two populations" where ``results/toy-two`` holds runs: the world
    built for claim 3)."""
    folders = scale_folders(root)
    out = {scale: claim_verdicts(folders[scale], sovr) if folders[scale] else None
           for scale in ("toy", "cpu", "small")}
    two = _root(root) / "toy-two"
    if any(two.glob("*-s*.json")):
        out["toy, two populations"] = claim_verdicts(two, sovr)
    return verdicts_by_scale(out, claims)
