"""The figures of a results folder, drawn from the runner's files (never from memory).

``plot_results(out_dir)`` writes every report figure next to the JSONs;
``plot_pgd_vs_aa(results)`` is the accuracy-bars figure alone. Reading and grouping the
files is :mod:`sovr_tutorial.lab.results`; the drawing primitives are :mod:`sovr_tutorial.figures.plots`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ..figures.plots import plot_margin_histograms, plot_training_curves
from ..runs import NAMES
from .results import (collapsed_note, group_runs, is_collapsed, is_result, load_results,
                      one_setting_per_method, pgd_name, setting_line, stored_histograms,
                      summary_row, summed_histogram)


def plot_pgd_vs_aa(results: list, *, title: str | None = None, note: str = ""):
    """Grouped bars per run: clean, PGD and AutoAttack accuracy (mean ± std over seeds).

    results: result dicts as written by ``sovr_tutorial.lab.experiments`` (fields clean_acc,
    pgd<steps>_ce_acc, pgd_acc_on_aa_subset, autoattack{robust, label, n}). Clean accuracy is
    on all test images; PGD and AA on the images AutoAttack attacked (the first n), so the
    two bars and the gap above them (PGD - AA) compare the same images.
    ``note`` goes under the figure (e.g. ``collapsed_note(...)``).
    """
    if not results:
        raise ValueError("results is empty: nothing to plot")
    for r in results:
        if not is_result(r):
            raise ValueError(f"not a result dict of sovr_tutorial.lab.experiments: {str(r)[:80]}")
    groups = group_runs(results)
    labels = [run.label for run in groups]
    rows = [summary_row(rs) for rs in groups.values()]
    aa0 = results[0]["autoattack"]
    aa_label = aa0.get("label") or aa0.get("version", "AutoAttack")
    name = pgd_name(results[0])
    fig = Figure(figsize=(max(7.5, 1.6 * len(labels) + 2.5), 4.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(labels))
    w = 0.26
    series = (("clean", "clean", "#c7c7c7"), ("pgd_sub", name + " (CE)", "#1f77b4"),
              ("aa", f"AutoAttack [{aa0.get('version', '?')}]", "#d62728"))
    for j, (key, series_name, color) in enumerate(series):
        means = [100 * r[key][0] for r in rows]
        ax.bar(x + (j - 1) * w, means, w, color=color, label=series_name)
        # error bars only where there is a spread to show (a single seed has none)
        multi = [i for i, r in enumerate(rows) if r[key][1] is not None]
        if multi:
            ax.errorbar(x[multi] + (j - 1) * w, [means[i] for i in multi],
                        yerr=[100 * rows[i][key][1] for i in multi], fmt="none",
                        ecolor="black", capsize=3, lw=1)
    for i, r in enumerate(rows):
        top = 100 * max(r["clean"][0], r["pgd_sub"][0], r["aa"][0])
        gap = 100 * r["gap"][0]
        ax.annotate(f"gap {gap:+.1f}", (x[i] + 0.5 * w, top + 2), ha="center", fontsize=9,
                    color="#d62728" if gap > 0 else "black")
    ax.set_xticks(x, [f"{lab}\n{len(r['seeds'])} seed{'s' if len(r['seeds']) > 1 else ''}"
                      for lab, r in zip(labels, rows)])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, min(100, 100 * max(max(r["clean"][0], r["pgd_sub"][0]) for r in rows) + 15))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    n_aa = aa0.get("n", "?")
    ax.set_title(title or f"PGD vs AutoAttack\n{setting_line(results)}", fontsize=10)
    n_test = results[0].get("tier", {}).get("n_test", "the")
    fig.supxlabel(f"clean: all {n_test} test images; {name} and AA = {aa_label}: "
                  f"the first {n_aa} of them;\ngap = PGD - AA on those images (points); "
                  "bars: mean over seeds, error bars: std over seeds"
                  + (f"\n{note}" if note else ""), fontsize=8, color="dimgray")
    return fig


def _run_margins_figure(run, rs, pgd, setting):
    """Test and training margins of one run (clean and at PGD points), summed over seeds."""
    seeds = ",".join(str(r.get("seed")) for r in rs)
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, split in zip(axes, ("test", "train")):
        h = {f"{split}, clean": summed_histogram(rs, f"{split}_clean"),
             f"{split}, {pgd}": summed_histogram(rs, f"{split}_adv")}
        h = {k: v for k, v in h.items() if v is not None}
        if not h:
            ax.text(0.5, 0.5, "no histogram stored", ha="center", transform=ax.transAxes)
            continue
        plot_margin_histograms(h, ax=ax, title=f"{split} samples",
                               colors={f"{split}, clean": "tab:blue",
                                       f"{split}, {pgd}": "tab:red"})
    fig.suptitle(f"{run.label}: logit margins (seed{'s' if len(rs) > 1 else ''} {seeds})\n"
                 f"{setting}", fontsize=10)
    return fig


def plot_results(out_dir) -> list:
    """Draw the report figures from the result JSONs in ``out_dir``; return their paths.

    Writes next to the JSONs: ``margins_<run slug>.png`` (per run: test and training
    samples, clean and PGD, from the stored histograms, summed over seeds),
    ``margins_test_adv_all.png`` and ``margins_train_adv_all.png`` (all methods overlaid,
    one setting each: see :func:`~sovr_tutorial.lab.results.one_setting_per_method`),
    ``margins_{test,train}_adv_<method>_sweep.png`` (a method run at several settings, e.g.
    SOVR's ratios), ``pgd_vs_aa.png`` (bars, mean ± std over seeds) and
    ``training_curves.png`` (held-out curves of the lowest seed of every run). Collapsed
    runs are left out and named under ``pgd_vs_aa.png``.
    """
    out_dir = Path(out_dir)
    everything = load_results(out_dir, collapsed=True)
    results = [r for r in everything if not is_collapsed(r)]
    if not results:
        raise FileNotFoundError(f"no result JSON files in {out_dir}: run "
                                "`python -m sovr_tutorial.lab.experiments` first")
    setting = setting_line(results)
    groups = group_runs(results)
    pgd = pgd_name(results[0])
    paths = []

    def save(fig, name):
        path = out_dir / name
        fig.savefig(path, dpi=110)
        paths.append(path)

    for run, rs in groups.items():
        save(_run_margins_figure(run, rs, pgd, setting), f"margins_{run.slug}.png")

    # One setting per method in the figure of all methods: five curves in one colour each
    # stay readable; a method run at several settings gets a sweep figure of its own.
    main = one_setting_per_method(results)
    swept = sorted({run.method for run in groups
                    if sum(other.method == run.method for other in groups) > 1})
    for split in ("test", "train"):
        h = stored_histograms(main, f"{split}_adv")
        if h:
            fig = plot_margin_histograms(
                h, title=f"margins at {pgd} points, {split} samples\n{setting}")
            save(fig, f"margins_{split}_adv_all.png")
        for method in swept:
            h = stored_histograms([r for r in results if r["method"] == method],
                                  f"{split}_adv")
            if len(h) < 2:
                continue
            cmap = colormaps["viridis"]
            colors = {k: cmap(0.9 * i / (len(h) - 1)) for i, k in enumerate(h)}
            hint = " (ratio 0 = all CE, 1 = all OVR)" if method == "sovr" else ""
            fig = plot_margin_histograms(
                h, colors=colors, title=f"{NAMES[method]} settings{hint}\n"
                f"margins at {pgd} points, {split} samples\n{setting}")
            save(fig, f"margins_{split}_adv_{method}_sweep.png")

    save(plot_pgd_vs_aa(results, note=collapsed_note(everything)), "pgd_vs_aa.png")

    hists = {run.label: rs[0]["history"] for run, rs in groups.items() if rs[0].get("history")}
    if hists:
        save(plot_training_curves(hists, title=f"training curves, seed "
                                  f"{min(r.get('seed', 0) for r in results)}\n{setting}"),
             "training_curves.png")
    return paths
