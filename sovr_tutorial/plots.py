"""Figures of the course: pure functions that take data and return a matplotlib Figure.

Nothing here trains or attacks a model: the notebooks compute, these functions draw.
Figures are built with ``matplotlib.figure.Figure`` (not ``pyplot``), so calling them in a
loop never piles up open windows; in a notebook, put the figure last in a cell (or call
``display(fig)``) to show it, and ``fig.savefig(path)`` to keep it.

``plot_results(out_dir)`` and ``results_table(out_dir)`` read the result files that
``python -m sovr_tutorial.experiments`` writes (one JSON per run) and draw / tabulate
them, so every figure of a report comes from files, never from memory.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .data import CLASSES
from .losses import DEFAULT_SOVR_RATIO

#: One colour per method, the same in every figure of the course.
METHOD_COLORS = {
    "standard": "#7f7f7f", "at": "#1f77b4", "trades": "#2ca02c", "mart": "#d62728",
    "gairat": "#9467bd", "sovr": "#ff7f0e", "ovr": "#8c564b",
}
_METHOD_NAMES = {"standard": "standard", "at": "AT", "trades": "TRADES", "mart": "MART",
                 "gairat": "GAIRAT", "sovr": "SOVR", "ovr": "OVR"}
_METHOD_ORDER = ("standard", "at", "trades", "mart", "gairat", "sovr", "ovr")
_EXTRA_COLORS = ("#17becf", "#bcbd22", "#e377c2", "#8c564b", "#aec7e8", "#ffbb78")


# ----------------------------------------------------------------------------- helpers

def method_label(method: str, sovr_ratio=None) -> str:
    """Display name of a method: "AT", "TRADES", ..., "SOVR (ratio 0.4)"."""
    name = _METHOD_NAMES.get(str(method).lower(), str(method))
    if str(method).lower() == "sovr" and sovr_ratio is not None:
        name += f" (ratio {sovr_ratio:g})"
    return name


def method_color(name: str, index: int = 0) -> str:
    """The course colour of a method (by key or display name), else a spare colour."""
    key = str(name).lower().split(" ")[0].split("-")[0]
    for k, v in _METHOD_NAMES.items():
        if key == v.lower():
            key = k
    return METHOD_COLORS.get(key, _EXTRA_COLORS[index % len(_EXTRA_COLORS)])


def _to_numpy(a, name="array") -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as err:  # noqa: BLE001
        raise TypeError(f"{name} must be a tensor, array or sequence, got {type(a).__name__}") from err


def _check_dict(name, d):
    if not isinstance(d, dict) or not d:
        raise ValueError(f"{name} must be a non-empty dict name -> values, got {d!r:.80}")


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


def _hline_pct(ax):
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------------------- images

def show_adversarial_examples(x, x_adv, y, pred_clean, pred_adv, classes=CLASSES, n: int = 6,
                              *, title: str | None = None, amplify: float | None = None):
    """Three rows of ``n`` images: clean, perturbation (amplified), adversarial.

    x, x_adv: (N, C, H, W) in [0, 1] (tensors or arrays); y, pred_clean, pred_adv: (N,)
    class indices. Captions give the true class and the predictions, green when correct
    and red when wrong. The perturbation ``x_adv - x`` is shown as ``0.5 + amplify * d``
    (grey = no change); ``amplify`` defaults to the factor that maps the largest
    |change| to 0.5, and is printed on the row.
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
    fig = Figure(figsize=(1.9 * n + 0.6, 6.4), layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
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
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- curves

def plot_accuracy_vs_eps(eps_values, accs: dict, *, title: str | None = None,
                         clean_acc: float | None = None):
    """Accuracy (%) against the attack budget eps (x axis in units of 1/255).

    eps_values: the budgets (in [0, 1] pixel units); accs: name -> accuracies in [0, 1],
    one per eps (e.g. {"FGSM": [...], "PGD-10": [...]}).
    """
    _check_dict("accs", accs)
    eps = _to_numpy(eps_values, "eps_values").astype(float).ravel()
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    markers = "osD^v<>"
    for i, (name, acc) in enumerate(accs.items()):
        a = _to_numpy(acc, f"accs[{name!r}]").astype(float).ravel()
        if len(a) != len(eps):
            raise ValueError(f"accs[{name!r}] has {len(a)} values for {len(eps)} eps values")
        ax.plot(eps * 255, 100 * a, marker=markers[i % len(markers)], label=str(name))
    if clean_acc is not None:
        ax.axhline(100 * clean_acc, color="gray", ls=":", label="clean")
    ax.set_xlabel(r"attack budget $\epsilon$ (in units of 1/255, $L_\infty$)")
    ax.set_ylabel("accuracy (%)")
    _hline_pct(ax)
    ax.legend()
    ax.set_title(title or "accuracy vs attack budget")
    return fig


def plot_training_curves(histories: dict, *, title: str | None = None):
    """Per-epoch training loss, clean accuracy and PGD accuracy, one line per method.

    histories: name -> history list as returned by ``train`` (or ``ckpt["history"]``):
    dicts with "epoch", "loss" and, when a held-out slice was given, "clean_acc" and
    "pgd_acc". The best PGD epoch is circled: a final value clearly below it is robust
    overfitting (Rice et al. 2020).
    """
    _check_dict("histories", histories)
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (("loss", "training loss (each method's own objective)", None),
              ("clean_acc", "clean accuracy, held-out (%)", 100),
              ("pgd_acc", "PGD accuracy, held-out (%)", 100))
    for i, (name, hist) in enumerate(histories.items()):
        if not hist:
            raise ValueError(f"histories[{name!r}] is empty")
        color = method_color(name, i)
        epochs = [h["epoch"] for h in hist]
        for ax, (key, _, scale) in zip(axes, panels):
            vals = [h.get(key) for h in hist]
            if any(v is None for v in vals):
                continue
            vals = np.asarray(vals, float) * (scale or 1)
            ax.plot(epochs, vals, marker="o", ms=3, color=color, label=str(name))
            if key == "pgd_acc" and len(vals) > 1:
                b = int(np.argmax(vals))
                ax.plot(epochs[b], vals[b], "o", ms=10, mfc="none", color=color)
    for ax, (key, ylabel, scale) in zip(axes, panels):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, f"no '{key}' in the histories\n(train with x_val, y_val)",
                    ha="center", va="center", transform=ax.transAxes, color="gray")
    axes[0].set_title("loss")
    axes[1].set_title("clean accuracy")
    axes[2].set_title("PGD accuracy (circle: best epoch)")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- margins

def _as_hist(name, values, bins, range_):
    """(counts, edges) from raw margins, or a precomputed (counts, edges) pair."""
    if isinstance(values, tuple) and len(values) == 2:
        counts, edges = (_to_numpy(v, name).astype(float).ravel() for v in values)
        if len(edges) != len(counts) + 1:
            raise ValueError(f"{name}: a precomputed histogram needs len(edges) == "
                             f"len(counts) + 1, got {len(counts)} and {len(edges)}")
        return counts, edges
    a = _to_numpy(values, name).astype(float).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError(f"margins[{name!r}] holds no finite values")
    if range_ is not None:  # outliers go into the end bins instead of disappearing
        a = np.clip(a, range_[0], range_[1])
    return np.histogram(a, bins=bins, range=range_)


def _common_range(margins: dict, range_):
    if range_ is not None:
        return tuple(range_)
    lo, hi = math.inf, -math.inf
    for v in margins.values():
        if isinstance(v, tuple) and len(v) == 2:
            continue
        a = _to_numpy(v).astype(float).ravel()
        a = a[np.isfinite(a)]
        if a.size:
            # robust limits: a few outliers must not squash the histogram
            lo, hi = min(lo, np.quantile(a, 0.005)), max(hi, np.quantile(a, 0.995))
    if not math.isfinite(lo):
        return None
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return (min(lo, 0.0) - 0.05 * (hi - lo), max(hi, 0.0) + 0.05 * (hi - lo))


def plot_margin_histograms(margins: dict, bins: int = 60, range=None,  # noqa: A002
                           title: str | None = "logit margins", *, layout: str = "overlay",
                           xlabel: str = r"logit margin $z_y - \max_{k\neq y} z_k$",
                           ax=None, colors: dict | None = None):
    """Histograms of logit margins, one per entry of ``margins``.

    margins: name -> 1-D margins (array/tensor), or name -> (counts, edges) for a
    histogram already computed (e.g. read from a results JSON). Each histogram is
    normalised to fractions of its own samples, so sets of different size compare.
    layout: "overlay" (one axis, step lines) or "grid" (small multiples, shared x axis).
    range: (low, high) for the bins; default: common to all entries, from the 0.5% and
    99.5% quantiles. Values outside the range are counted in the end bins.
    ax: draw the overlay into this axis (of your own figure) instead of a new figure.
    colors: name -> matplotlib colour (default: the course's method colours).
    A dashed line marks margin 0: left of it, the sample is misclassified.
    """
    _check_dict("margins", margins)
    if layout not in ("overlay", "grid"):
        raise ValueError(f"layout must be 'overlay' or 'grid', got {layout!r}")
    rng = _common_range(margins, range)
    hists = {k: _as_hist(k, v, bins, rng) for k, v in margins.items()}
    if ax is not None:
        layout = "overlay"
        fig = ax.figure
        axes = [ax]
    elif layout == "overlay":
        fig = Figure(figsize=(7, 4.2), layout="constrained")
        axes = [fig.subplots()]
    else:
        k = len(hists)
        cols = min(k, 3)
        rows = math.ceil(k / cols)
        fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
        axes = list(np.ravel(fig.subplots(rows, cols, sharex=True, squeeze=False)))
        for extra in axes[k:]:
            extra.set_visible(False)
    for i, (name, (counts, edges)) in enumerate(hists.items()):
        a = axes[0] if layout == "overlay" else axes[i]
        total = counts.sum()
        frac = counts / total if total > 0 else counts
        color = (colors or {}).get(name) or method_color(name, i)
        a.stairs(frac, edges, color=color, lw=1.8, label=f"{name} (n={int(total)})",
                 fill=(layout == "grid"), alpha=0.6 if layout == "grid" else 1.0)
        if layout == "grid":
            a.set_title(str(name), fontsize=10)
    for a in (axes if layout == "overlay" else axes[:len(hists)]):
        if layout == "grid":  # a panel above an empty slot must keep its tick labels
            a.xaxis.set_tick_params(labelbottom=True)
        a.axvline(0, color="black", ls="--", lw=0.8)
        a.set_xlabel(xlabel)
        a.set_ylabel("fraction of samples")
        a.grid(alpha=0.3)
    if range is None and any(isinstance(v, tuple) for v in margins.values()):
        # stored histograms span a fixed, wide range: zoom in on the occupied bins
        lo, hi = math.inf, -math.inf
        for counts, edges in hists.values():
            nz = np.nonzero(counts)[0]
            if nz.size:
                lo, hi = min(lo, edges[nz[0]]), max(hi, edges[nz[-1] + 1])
        if math.isfinite(lo):
            lo, hi = min(lo, 0.0), max(hi, 0.0)
            pad = 0.05 * (hi - lo) or 0.5
            for a in (axes if layout == "overlay" else axes[:len(hists)]):
                a.set_xlim(lo - pad, hi + pad)
    if layout == "overlay":
        axes[0].legend(fontsize=8)
        if title:
            axes[0].set_title(title)
    elif title:
        fig.suptitle(title)
    return fig


def plot_margin_vs_gradnorm(margins: dict, gradnorms: dict, *, title: str | None = None,
                            eps: float = 8 / 255, norm: str = "L1", max_points: int = 1500,
                            seed: int = 0):
    """Scatter of logit margin (x) against ``||grad_x margin||`` (y, log scale) per method.

    margins, gradnorms: name -> (N,) arrays with the same names. The line
    ``margin = eps * ||grad||_1`` is the first-order flip boundary at budget ``eps``:
    points to its left (small margin for their gradient) flip within eps to first order.
    At most ``max_points`` points per method are drawn (a fixed random subset).
    """
    _check_dict("margins", margins)
    _check_dict("gradnorms", gradnorms)
    if set(margins) != set(gradnorms):
        raise ValueError(f"margins and gradnorms must have the same names, got "
                         f"{sorted(margins)} and {sorted(gradnorms)}")
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    ax = fig.subplots()
    rng = np.random.default_rng(seed)
    gmin, gmax = math.inf, 0.0
    for i, name in enumerate(margins):
        m = _to_numpy(margins[name], name).astype(float).ravel()
        g = _to_numpy(gradnorms[name], name).astype(float).ravel()
        if m.shape != g.shape:
            raise ValueError(f"{name}: margins and gradnorms differ in length "
                             f"({m.size} vs {g.size})")
        keep = np.isfinite(m) & np.isfinite(g) & (g > 0)
        m, g = m[keep], g[keep]
        if m.size > max_points:
            idx = rng.choice(m.size, max_points, replace=False)
            m, g = m[idx], g[idx]
        if m.size:
            gmin, gmax = min(gmin, g.min()), max(gmax, g.max())
        ax.scatter(m, g, s=7, alpha=0.45, color=method_color(name, i), label=str(name),
                   edgecolors="none")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if eps and math.isfinite(gmin) and gmax > 0:
        gg = np.geomspace(gmin, gmax, 100)
        ax.plot(eps * gg, gg, color="black", lw=1,
                label=rf"flip line: margin = $\epsilon\|\nabla\|$ ($\epsilon$={eps * 255:.0f}/255)")
    ax.axvline(0, color="gray", ls="--", lw=0.8)
    ax.set_xlabel(r"logit margin $m = z_y - \max_{k\neq y} z_k$")
    ax.set_ylabel(rf"$\|\nabla_x m\|_{{{norm[1:] if norm.upper().startswith('L') else norm}}}$ (log scale)")
    ax.grid(alpha=0.3, which="both")
    leg = ax.legend(fontsize=8, markerscale=2)
    for h in leg.legend_handles:
        if hasattr(h, "set_alpha"):
            h.set_alpha(1)
    ax.set_title(title or "margin vs input-gradient norm")
    return fig


# ----------------------------------------------------------------------------- results files

def _pgd_key(result: dict) -> str:
    steps = result.get("tier", {}).get("eval_steps", 20)
    key = f"pgd{steps}_ce_acc"
    if key in result:
        return key
    cands = sorted(k for k in result if k.startswith("pgd") and k.endswith("_ce_acc"))
    if not cands:
        raise KeyError(f"result {result.get('run', '?')} has no pgd*_ce_acc field")
    return cands[0]


def _pgd_name(result: dict) -> str:
    return "PGD-" + _pgd_key(result)[3:-7]


def _group_key(result: dict):
    return (result.get("method"), result.get("sovr_ratio") if result.get("method") == "sovr" else None)


def _order(key):
    method, ratio = key
    i = _METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER)
    return (i, str(method), ratio if ratio is not None else -1.0)


def _group(results):
    groups = {}
    for r in results:
        groups.setdefault(_group_key(r), []).append(r)
    return {k: sorted(groups[k], key=lambda r: r.get("seed", 0))
            for k in sorted(groups, key=_order)}


def _summary_row(rs):
    """Means and stds (over seeds) of clean / PGD / AA / gap for one group of runs."""
    def stats(vals):
        a = np.asarray(vals, float)
        return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else None)
    clean = [r["clean_acc"] for r in rs]
    pgd_ = [r[_pgd_key(r)] for r in rs]
    aa = [r["autoattack"]["robust"] for r in rs]
    # the honest gap compares PGD and AA on the same images (AA sees a subset)
    pgd_sub = [r.get("pgd_acc_on_aa_subset", r[_pgd_key(r)]) for r in rs]
    gap = [p - a for p, a in zip(pgd_sub, aa)]
    return {"clean": stats(clean), "pgd": stats(pgd_), "aa": stats(aa),
            "pgd_sub": stats(pgd_sub), "gap": stats(gap), "seeds": [r.get("seed") for r in rs]}


def _is_result(d) -> bool:
    return (isinstance(d, dict) and "method" in d and "clean_acc" in d
            and isinstance(d.get("autoattack"), dict) and "robust" in d["autoattack"])


#: clean accuracy within this of chance (1 / classes): the run learned nothing
COLLAPSE_MARGIN = 0.02


def is_collapsed(result: dict, num_classes: int = 10) -> bool:
    """True for a run that ended at chance level (clean accuracy at most 1/classes + 2 points).

    Such a model answers (nearly) the same class for every image, so its robust accuracies
    and margins describe a failed run, not its method. Tables and figures leave it out and
    name it; it still counts as a finding (how often a method fails to train).
    """
    return result["clean_acc"] <= 1 / num_classes + COLLAPSE_MARGIN


def load_results(out_dir, *, collapsed: bool = False) -> list:
    """Every run result (``*.json`` written by the experiment runner) in ``out_dir``.

    Runs that collapsed to chance level (``is_collapsed``) are left out unless
    ``collapsed=True``.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"results folder {out_dir} does not exist: run "
                                "`python -m sovr_tutorial.experiments` first")
    results = []
    for path in sorted(out_dir.glob("*.json")):
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if _is_result(d) and (collapsed or not is_collapsed(d)):
            d.setdefault("_path", str(path))
            results.append(d)
    return results


def collapsed_note(runs) -> str:
    """One line naming the collapsed runs, or "" when none.

    runs: a results folder, or results already loaded with ``load_results(..., collapsed=True)``.
    """
    if isinstance(runs, (str, Path)):
        runs = load_results(runs, collapsed=True)
    gone = [r for r in runs if is_collapsed(r)]
    if not gone:
        return ""
    return ("left out, collapsed to chance level: "
            + ", ".join(f"{r['run']} (clean {100 * r['clean_acc']:.1f}%)" for r in gone))


def _setting_line(results) -> str:
    r = results[0]
    t, data = r.get("tier", {}), r.get("data", {})
    hw = r.get("environment", {})
    device = hw.get("gpu") or f"{hw.get('cpu_count', '?')}-core {hw.get('cpu', 'CPU')}"
    return (f"{t.get('name', '?')} tier, {data.get('label', 'data ?')}, "
            f"eps {t.get('eps', 8 / 255) * 255:.0f}/255, {device}")


def plot_pgd_vs_aa(results: list, *, title: str | None = None, note: str = ""):
    """Grouped bars per method: clean, PGD and AutoAttack accuracy (mean ± std over seeds).

    results: result dicts as written by ``sovr_tutorial.experiments`` (fields clean_acc,
    pgd<steps>_ce_acc, pgd_acc_on_aa_subset, autoattack{robust, label, n}). The number
    above each group is the gap PGD - AA, measured on the images AutoAttack attacked.
    ``note`` goes under the figure (e.g. ``collapsed_note(...)``).
    """
    if not results:
        raise ValueError("results is empty: nothing to plot")
    for r in results:
        if not _is_result(r):
            raise ValueError(f"not a result dict of sovr_tutorial.experiments: {str(r)[:80]}")
    groups = _group(results)
    labels = [method_label(m, ratio) for m, ratio in groups]
    rows = [_summary_row(rs) for rs in groups.values()]
    aa0 = results[0]["autoattack"]
    aa_label = aa0.get("label") or aa0.get("version", "AutoAttack")
    pgd_name = _pgd_name(results[0])
    fig = Figure(figsize=(max(7.5, 1.6 * len(labels) + 2.5), 4.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(labels))
    w = 0.26
    series = (("clean", "clean", "#c7c7c7"), ("pgd", pgd_name + " (CE)", "#1f77b4"),
              ("aa", f"AutoAttack [{aa0.get('version', '?')}]", "#d62728"))
    for j, (key, name, color) in enumerate(series):
        means = [100 * r[key][0] for r in rows]
        ax.bar(x + (j - 1) * w, means, w, color=color, label=name)
        # error bars only where there is a spread to show (a single seed has none)
        multi = [i for i, r in enumerate(rows) if r[key][1] is not None]
        if multi:
            ax.errorbar(x[multi] + (j - 1) * w, [means[i] for i in multi],
                        yerr=[100 * rows[i][key][1] for i in multi], fmt="none",
                        ecolor="black", capsize=3, lw=1)
    for i, r in enumerate(rows):
        top = 100 * max(r["clean"][0], r["pgd"][0], r["aa"][0])
        gap = 100 * r["gap"][0]
        ax.annotate(f"gap {gap:+.1f}", (x[i] + 0.5 * w, top + 2), ha="center", fontsize=9,
                    color="#d62728" if gap > 0 else "black")
    ax.set_xticks(x, [f"{lab}\n{len(r['seeds'])} seed{'s' if len(r['seeds']) > 1 else ''}"
                      for lab, r in zip(labels, rows)])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, min(100, 100 * max(max(r["clean"][0], r["pgd"][0]) for r in rows) + 15))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    n_aa = aa0.get("n", "?")
    ax.set_title(title or f"PGD vs AutoAttack\n{_setting_line(results)}", fontsize=10)
    fig.supxlabel(f"AA = {aa_label}, on {n_aa} test images; gap = PGD - AA on those "
                  "images (points); bars: mean over seeds, error bars: std over seeds"
                  + (f"\n{note}" if note else ""), fontsize=8, color="dimgray")
    return fig


def _pct(stat) -> str:
    mean, std = stat
    return f"{100 * mean:.1f}" if std is None else f"{100 * mean:.1f} ± {100 * std:.1f}"


def results_table(out_dir) -> str:
    """Markdown table, one row per method: seeds, clean, PGD, AutoAttack, gap (in %).

    Means ± std over seeds (the mean alone when there is one seed). AutoAttack attacks a
    subset of the test images (its column says the version and count), so PGD is given
    on all test images and on that subset; the gap is PGD - AA on the subset.
    """
    everything = load_results(out_dir, collapsed=True)
    results = [r for r in everything if not is_collapsed(r)]
    if not results:
        raise FileNotFoundError(f"no result JSON files in {out_dir}")
    groups = _group(results)
    aa0 = results[0]["autoattack"]
    pgd_name = _pgd_name(results[0])
    n_aa = aa0.get("n", "?")
    head = ["method", "seeds", "clean (%)", f"{pgd_name} (%)",
            f"{pgd_name} on the {n_aa} AA images (%)",
            f"AA [{aa0.get('version', '?')}, n={n_aa}] (%)", "gap PGD - AA (pts)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for (m, ratio), rs in groups.items():
        row = _summary_row(rs)
        lines.append("| " + " | ".join([
            method_label(m, ratio), ",".join(str(s) for s in row["seeds"]),
            _pct(row["clean"]), _pct(row["pgd"]), _pct(row["pgd_sub"]), _pct(row["aa"]),
            _pct(row["gap"])]) + " |")
    note = collapsed_note(everything)
    return "\n".join(lines) + (f"\n\n{note[0].upper()}{note[1:]}." if note else "")


def _sum_hist(rs, key):
    counts, edges = None, None
    for r in rs:
        h = r.get("margins", {}).get(key)
        if not h or "hist_counts" not in h:
            continue
        c = np.asarray(h["hist_counts"], float)
        e = np.asarray(h["hist_edges"], float)
        if counts is None:
            counts, edges = c, e
        elif len(e) == len(edges) and np.allclose(e, edges):
            counts = counts + c
    return None if counts is None else (counts, edges)


def stored_histograms(results: list, key: str = "test_adv") -> dict:
    """Margin histograms stored in result files, one per method (summed over its seeds).

    key: "test_clean", "test_adv", "train_clean" or "train_adv". Returns
    {label: (counts, edges)}, e.g. "AT (3 seeds)", ready for ``plot_margin_histograms``;
    methods whose files hold no histogram for ``key`` are left out.
    """
    out = {}
    for (m, ratio), rs in _group(results).items():
        h = _sum_hist(rs, key)
        if h is not None:
            n = len(rs)
            out[method_label(m, ratio) + (f" ({n} seeds)" if n > 1 else "")] = h
    return out


def one_sovr_ratio(results: list) -> list:
    """The runs with SOVR at one ratio only: the default ratio when it was run, else the
    smallest one. The other methods' runs are all kept."""
    ratios = sorted({r.get("sovr_ratio") for r in results if r.get("method") == "sovr"})
    keep = DEFAULT_SOVR_RATIO if DEFAULT_SOVR_RATIO in ratios else (ratios or [None])[0]
    return [r for r in results if r.get("method") != "sovr" or r.get("sovr_ratio") == keep]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def plot_results(out_dir) -> list:
    """Draw the report figures from the result JSONs in ``out_dir``; return their paths.

    Writes next to the JSONs: ``margins_<run group>.png`` (per method: test and training
    samples, clean and PGD, from the stored histograms, summed over seeds),
    ``margins_test_adv_all.png`` and ``margins_train_adv_all.png`` (all methods overlaid, SOVR
    at its default ratio), ``margins_{test,train}_adv_sovr_sweep.png`` (when several SOVR
    ratios were run),
    ``pgd_vs_aa.png`` (bars, mean ± std over seeds) and ``training_curves.png`` (held-out
    curves of the lowest seed of every method).
    """
    out_dir = Path(out_dir)
    everything = load_results(out_dir, collapsed=True)
    results = [r for r in everything if not is_collapsed(r)]
    if not results:
        raise FileNotFoundError(f"no result JSON files in {out_dir}: run "
                                "`python -m sovr_tutorial.experiments` first")
    setting = _setting_line(results)
    groups = _group(results)
    paths = []

    def save(fig, name):
        path = out_dir / name
        fig.savefig(path, dpi=110)
        paths.append(path)

    pgd_name = _pgd_name(results[0])
    for (m, ratio), rs in groups.items():
        label = method_label(m, ratio)
        seeds = ",".join(str(r.get("seed")) for r in rs)
        fig = Figure(figsize=(11, 3.8), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        for ax, split in zip(axes, ("test", "train")):
            h = {f"{split}, clean": _sum_hist(rs, f"{split}_clean"),
                 f"{split}, {pgd_name}": _sum_hist(rs, f"{split}_adv")}
            h = {k: v for k, v in h.items() if v is not None}
            if not h:
                ax.text(0.5, 0.5, "no histogram stored", ha="center", transform=ax.transAxes)
                continue
            plot_margin_histograms(h, ax=ax, title=f"{split} samples",
                                   colors={f"{split}, clean": "tab:blue",
                                           f"{split}, {pgd_name}": "tab:red"})
        fig.suptitle(f"{label}: logit margins (seed{'s' if len(rs) > 1 else ''} {seeds})\n{setting}",
                     fontsize=10)
        key = m if ratio is None else f"{m}-r{ratio:g}"
        save(fig, f"margins_{_safe(key)}.png")

    # One SOVR in the figure of all methods: five curves in one colour each stay readable;
    # the ratio sweep gets its own figure.
    ratios = sorted({ratio for m, ratio in groups if m == "sovr"})
    main = one_sovr_ratio(results)
    sweep = [r for r in results if r.get("method") == "sovr"]
    for split in ("test", "train"):
        h = stored_histograms(main, f"{split}_adv")
        if h:
            fig = plot_margin_histograms(
                h, title=f"margins at {pgd_name} points, {split} samples\n{setting}")
            save(fig, f"margins_{split}_adv_all.png")
        h = stored_histograms(sweep, f"{split}_adv")
        if len(ratios) > 1 and h:
            cmap = colormaps["viridis"]
            colors = {k: cmap(0.9 * i / (len(h) - 1)) for i, k in enumerate(h)}
            fig = plot_margin_histograms(
                h, colors=colors, title=f"SOVR ratio sweep (0 = all CE, 1 = all OVR)\n"
                f"margins at {pgd_name} points, {split} samples\n{setting}")
            save(fig, f"margins_{split}_adv_sovr_sweep.png")

    save(plot_pgd_vs_aa(results, note=collapsed_note(everything)), "pgd_vs_aa.png")

    hists = {method_label(m, ratio): rs[0]["history"] for (m, ratio), rs in groups.items()
             if rs[0].get("history")}
    if hists:
        save(plot_training_curves(hists, title=f"training curves, seed "
                                  f"{min(r.get('seed', 0) for r in results)}\n{setting}"),
             "training_curves.png")
    return paths
