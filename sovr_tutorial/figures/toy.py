"""The toy world's figures (the world is :mod:`sovr_tutorial.toy.world`, its runs
:mod:`sovr_tutorial.lab.toy`): decision regions with the points' eps-boxes, margin histograms
per method, accuracies, the switch figure of section 4, the summary table and the toy
explorer's picture of one move.

Like :mod:`sovr_tutorial.figures.plots`: pure functions that take results and return a Figure.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from matplotlib.figure import Figure

from ..runs import DEFAULT_SOVR_RATIO, Run, pgd_key, run_of
from .plots import _mark_edge_bins, _to_numpy, method_color

#: Bins of the toy world's margin histograms (logits): the same for every method and seed;
#: the two edge bins also hold everything beyond them (hatched and labelled, see _hist).
TOY_BINS = np.linspace(-6.0, 6.0, 49)
#: Margins are coloured up to this size (red < 0 = wrong, blue > 0 = right).
TOY_MARGIN_LIMIT = 4.0
_TOY_CLASS_COLORS = ("#fbb4ae", "#b3cde3", "#ccebc5", "#decbe4", "#fed9a6", "#ffffcc")


def paired_margin_shift(at_runs: list, runs: list, edges) -> np.ndarray:
    """A run's adversarial training margins minus AT's on the same points, per bin of AT's.

    Runs pair by seed (same seed: same points, initial weights and batch order). Returns
    (seeds, bins): the mean shift of the points whose AT margin falls in each bin of
    ``edges`` (NaN where a bin is empty), one row per seed present in both lists.
    """
    at = {r["seed"]: np.asarray(r["margins"]["train_adv"]["values"]) for r in at_runs}
    edges = np.asarray(edges, dtype=np.float64)
    rows = []
    for r in runs:
        if r["seed"] not in at:
            continue
        base, mine = at[r["seed"]], np.asarray(r["margins"]["train_adv"]["values"])
        which = np.digitize(base, edges) - 1
        rows.append([float(np.mean(mine[which == b] - base[which == b]))
                     if (which == b).any() else np.nan for b in range(len(edges) - 1)])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(edges) - 1)


def _toy_runs(results: list) -> dict:
    """Results grouped by run slug, in the course's order (AT first, SOVR variants last)."""
    groups = {}
    for r in results:
        groups.setdefault(run_of(r).slug, []).append(r)
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
    """Fractions of ``margins`` per bin of ``bins`` as one stairs artist (the picture of
    :func:`~sovr_tutorial.figures.plots._hist`, without a patch per bin: cheaper to draw in a
    widget), edge bins holding the overflow hatched and labelled."""
    margins = np.asarray(margins, dtype=np.float64).ravel()
    counts, _ = np.histogram(np.clip(margins, bins[0], bins[-1]), bins=bins)
    heights = counts / max(margins.size, 1)
    if filled:
        ax.stairs(heights, bins, fill=True, color=color, alpha=0.55, label=label)
    else:
        ax.stairs(heights, bins, color=color, linewidth=2, label=label)
    _mark_edge_bins(ax, bins, int((margins < bins[0]).sum()), int((margins > bins[-1]).sum()))
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_xlim(bins[0], bins[-1])


def _eps_boxes(x, eps: float) -> np.ndarray:
    """The (N, 4, 2) corners of each point's eps-box (vectorised: no patch per point)."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * eps
    return np.asarray(x, dtype=np.float64)[:, None, :] + corners[None]


def _toy_regions_axes(ax, regions: str, grid: int, x, margins, eps: float):
    """Decision regions (one colour per class, boundaries in black) and each point's eps-box
    coloured by its margin."""
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import ListedColormap, Normalize

    labels = (np.frombuffer(regions.encode(), dtype=np.uint8).astype(int)
              - ord("0")).reshape(grid, grid)
    cmap = ListedColormap(_TOY_CLASS_COLORS[:labels.max() + 1])
    ax.imshow(labels, origin="lower", extent=(0, 1, 0, 1), cmap=cmap,
              interpolation="nearest", vmin=-0.5, vmax=labels.max() + 0.5)
    x = _to_numpy(x, "x")
    norm = Normalize(-TOY_MARGIN_LIMIT, TOY_MARGIN_LIMIT)
    coll = PolyCollection(_eps_boxes(x, eps), cmap="RdBu", norm=norm, alpha=0.55,
                          linewidth=0)
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
    fig = Figure(figsize=(2.9 * cols + 1.0, 3.4 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    coll = None
    for ax, r in zip(axes, _toy_order(results)):
        coll = _toy_regions_axes(ax, r["regions"]["labels"], r["regions"]["grid"], x,
                                 r["margins"]["train_adv"]["values"], eps)
        q = r["train_margin_quantiles"]
        # short lines: a panel is under 3 inches wide at 8.5 points
        ax.set_title(f"{r['label']}\nPGD-20 {r[pgd_key(r)]:.1%}, margin atk "
                     f"{r['margin_attack_acc']:.1%}\ntrain q10 {q['q10']:+.2f}, "
                     f"q50 {q['q50']:+.2f}", fontsize=8.5)
    for ax in axes[n:]:
        ax.set_visible(False)
    bar = fig.colorbar(coll, ax=list(axes[:n]), shrink=0.8, pad=0.02)
    bar.set_label(f"adversarial margin of the point (clipped at +-{TOY_MARGIN_LIMIT:g}); "
                  "< 0 = wrong", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    seed = results[0]["seed"]
    fig.suptitle(title or f"Toy world, seed {seed}: decision regions (colour = predicted "
                 f"class)\nand each training point's eps-box (eps {eps:g}), coloured by its "
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
    fig = Figure(figsize=(2.5 * n + 0.7, 6.2), layout="constrained")
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
            # three short lines: a column is 2.5 inches wide
            ax.set_title(f"{rs[0]['label']}, {name}\nq10/50/90 {q['q10']:+.1f}/{q['q50']:+.1f}/"
                         f"{q['q90']:+.1f}\npeaks per seed {_peak_text(rs, peaks)}", fontsize=8)
            ax.tick_params(labelsize=8)
            if c == 0:
                ax.set_ylabel(f"fraction of {name} points", fontsize=9)
            if row == 1:
                ax.set_xlabel("adversarial margin (PGD-20)", fontsize=8)
    seeds = sorted({r["seed"] for r in results})
    fig.suptitle(f"Toy world: adversarial logit margins, {len(seeds)} seeds pooled "
                 f"(seeds {','.join(map(str, seeds))})\ndotted: q10 and q90, dashed: median; "
                 "hatched: overflow bins", fontsize=10)
    return fig


def _mean_std(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def toy_summary(results: list) -> list:
    """One row per run slug: mean and std over seeds of the toy measures (dicts)."""
    rows = []
    for slug, rs in _toy_runs(results).items():
        row = {"slug": slug, "label": rs[0]["label"], "seeds": [r["seed"] for r in rs]}
        for key, get in (("clean", lambda r: r["clean_acc"]), ("pgd", lambda r: r[pgd_key(r)]),
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
    getters = {"clean": lambda r: r["clean_acc"], "pgd": lambda r: r[pgd_key(r)],
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
    (:func:`sovr_tutorial.toy.model.margin_push`, medians per margin bin of AT's adversarial
    training logits, each seed a line) against the two-logit formula
    sigmoid(-m/2) / sigmoid(-m), with the margins below which the ratio rule switches.
    Right: training-margin q10 / q50 / q90 per run (mean ± std over seeds). ``control``
    (:func:`sovr_tutorial.lab.toy.run_control`): AT retrained with another initialisation,
    drawn on the left as the size of chance differences.
    """

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
    ax1.legend(fontsize=8)

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
    ax2.legend(fontsize=8)

    rows = [r for r in toy_summary(results)]
    xs = np.arange(len(rows))
    for key, style, name in (("q10", "v", "q10"), ("q50", "o", "median"), ("q90", "^", "q90")):
        ax3.errorbar(xs, [r[key][0] for r in rows], yerr=[r[key][1] for r in rows],
                     fmt=style, capsize=3, label=name,
                     color={"q10": "tab:red", "q50": "k", "q90": "tab:blue"}[key])
    ax3.axhline(0, color="k", linewidth=0.8)
    ax3.set_xticks(xs)
    ax3.set_xticklabels([r["label"] for r in rows], rotation=25, ha="right", fontsize=8)
    ax3.set_ylabel("adversarial training margin")
    ax3.set_title("training-margin quantiles (mean ± std over seeds)", fontsize=10)
    ax3.legend(fontsize=8)
    seeds = sorted({r["seed"] for r in results})
    fig.suptitle(f"Toy world, seeds {','.join(map(str, seeds))}: SOVR's effect on the margins "
                 "and the push of OVR against CE", fontsize=11)
    fig.tight_layout()
    return fig


def plot_toy_explorer(reference: dict, info: dict, x, *, eps: float, bins=TOY_BINS,
                      title: str | None = None, layout: dict | None = None):
    """The toy explorer's picture of one move (:func:`sovr_tutorial.toy.model.toy_move`)
    against its CE reference (:func:`sovr_tutorial.toy.model.toy_reference`: the same
    fine-tune from the same AT model under CE, measured on the same points).

    Left: the fine-tuned model's decision regions with the held-out points' eps-boxes
    coloured by their adversarial margins; middle: held-out margin histograms of the CE
    fine-tune (``reference``, outline) and of SOVR (filled) on the same bins (fraction of
    points; hatched edge bins hold the overflow); right: clean accuracy and accuracy under
    PGD-``eval_steps`` and under the margin attack, CE against SOVR. x: (N, 2) held-out
    points. ``layout``: subplot parameters (``left``, ``right``, ``bottom``, ``top``,
    ``wspace``, ``hspace``) to place the axes with; None fits them with tight_layout (the
    explorer fits them once, at its first figure, and passes them on).
    """
    fig = Figure(figsize=(13.5, 4.2))
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.5, 0.9]})
    pgd = f"PGD-{info.get('eval_steps', 20)}"
    ref_label = reference.get("label", "CE fine-tuned (ratio 0)")
    _toy_regions_axes(ax1, info["regions"], info["grid"], x, info["margins"], eps)
    ax1.set_title(f"{info['label']}: regions and held-out eps-boxes\n(red: wrong under "
                  f"{pgd}, blue: right)", fontsize=9)
    _toy_hist_axes(ax2, reference["margins"], bins, color=method_color("at"),
                   label=f"{ref_label} (q10 {reference['q10']:+.2f}, median "
                         f"{reference['q50']:+.2f})", filled=False)
    _toy_hist_axes(ax2, info["margins"], bins, color=method_color("sovr"),
                   label=f"{info['label']} (q10 {info['q10']:+.2f}, median {info['q50']:+.2f})")
    ax2.set_xlabel(f"adversarial margin of held-out points ({pgd}); < 0 = wrong")
    ax2.set_ylabel("fraction of held-out points")
    ax2.set_ylim(0, 1.45 * ax2.get_ylim()[1])   # room for the legend above the bars
    ax2.legend(fontsize=8, loc="upper center", title="same start, steps, batches and seed",
               title_fontsize=8)
    ax2.set_title(f"switched to OVR during fine-tuning: {info['switched_fraction']:.1%} of "
                  "samples (CE: none)", fontsize=9)
    names = ("clean", pgd, f"margin attack\n(PGD-{info.get('margin_steps', 50)})")
    keys = ("clean_acc", "pgd_acc", "margin_attack_acc")
    xs = np.arange(len(keys))
    for k, (d, name, color) in enumerate(((reference, "CE", method_color("at")),
                                          (info, "SOVR", method_color("sovr")))):
        vals = [100 * d[key] for key in keys]
        ax3.bar(xs + (k - 0.5) * 0.38, vals, 0.38, color=color, alpha=0.8, label=name)
        for x_, v in zip(xs + (k - 0.5) * 0.38, vals):
            ax3.text(x_, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
    ax3.set_xticks(xs)
    ax3.set_xticklabels(names, fontsize=8)
    ax3.set_ylim(0, 105)
    ax3.set_ylabel("held-out accuracy (%)")
    ax3.legend(fontsize=8, loc="lower right")
    s = info.get("settings", {})
    how = ", ".join(f"{name} {s[key]:g}" for key, name in (("lr", "lr"), ("batch_size", "batch"))
                    if key in s)
    fig.suptitle(title or f"{info['label']} against CE: {info['steps']} fine-tuning steps each "
                          f"({how + ', ' if how else ''}PGD-{s.get('attack_steps', 5)}), same AT start, "
                          "batches and seed", fontsize=10)
    if layout is None:
        fig.tight_layout()
    else:
        fig.subplots_adjust(**layout)
    return fig
