"""Figures readable at 100% zoom: every visible text at least 8 points, axes titles that do
not collide, log axes with at least three labelled ticks in view.

Rendered from small synthetic inputs (no training): the toy regions and margin grid, the
margin movie's small multiples and the push-and-flow figure.
"""
import numpy as np
import pytest
import torch
from matplotlib.text import Text

from sovr_tutorial.figures import frames as movie_frames
from sovr_tutorial.figures import movie as movie_plots
from sovr_tutorial.figures import push
from sovr_tutorial.figures import toy as toy_plots
from sovr_tutorial.runs import as_run
from sovr_tutorial.train import _movie_frame

MIN_POINTS = 8


# --------------------------------------------------------------------------- the checks

def _draw(fig):
    """Draw ``fig`` on an Agg canvas (a bare Figure has none) and return its renderer."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _visible_texts(fig):
    """Every Text artist that is drawn with some characters (tick labels included)."""
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        ax = t.axes
        if ax is not None and not ax.get_visible():
            continue
        out.append(t)
    return out


def _small_texts(fig):
    _draw(fig)     # tick labels exist only once drawn
    return [(t.get_text()[:40], t.get_fontsize()) for t in _visible_texts(fig)
            if t.get_fontsize() < MIN_POINTS]


def _title_boxes(fig):
    renderer = _draw(fig)
    boxes = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for title in (ax.title, ax._left_title, ax._right_title):
            if title.get_visible() and title.get_text().strip():
                boxes.append((title.get_text()[:30], title.get_window_extent(renderer)))
    return boxes


def _overlapping_titles(fig):
    boxes = _title_boxes(fig)
    pairs = []
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            # touching edges are fine; a shared area is a collision
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if w > 0.5 and h > 0.5:
                pairs.append((ta, tb))
    return pairs


def _log_axes_with_few_labels(fig, least=3):
    _draw(fig)
    poor = []
    for k, ax in enumerate(fig.axes):
        for name, axis, lim in (("x", ax.xaxis, ax.get_xlim()), ("y", ax.yaxis, ax.get_ylim())):
            if axis.get_scale() != "log":
                continue
            lo, hi = sorted(lim)
            labels = [t for t, loc in zip(axis.get_majorticklabels(), axis.get_majorticklocs())
                      if lo <= loc <= hi and t.get_visible() and t.get_text().strip()]
            if len(labels) < least:
                poor.append((k, name, [t.get_text() for t in labels]))
    return poor


def _assert_readable(fig):
    small = _small_texts(fig)
    assert not small, f"texts under {MIN_POINTS} pt: {small[:8]}"
    clash = _overlapping_titles(fig)
    assert not clash, f"axes titles overlap: {clash[:5]}"
    poor = _log_axes_with_few_labels(fig)
    assert not poor, f"log axes with fewer than 3 labelled ticks in view: {poor}"


# --------------------------------------------------------------------------- the inputs

TOY_LABELS = {"at": "AT", "trades": "TRADES", "mart": "MART", "gairat": "GAIRAT",
              "sovr-r0.4": "SOVR (ratio 0.4)", "sovr-t1": "SOVR (threshold 1)",
              "sovr-b0.4": "SOVR (boundary 0.4)"}


def _toy_result(slug, seed, rng, grid=40, n=120):
    labels = (np.add.outer(np.arange(grid), np.arange(grid)) * 3 // grid) % 3
    regions = "".join(str(v) for v in labels.ravel())

    def margins(shift):
        # a few beyond the bins' range, as GAIRAT's spike: the labelled overflow bins
        v = np.concatenate([rng.normal(shift, 1.5, n - 4), [-9.0, -8.0, 8.0, 9.0]])
        q = dict(zip(("q10", "q50", "q90"), np.quantile(v, [0.1, 0.5, 0.9]).tolist()))
        return {"values": v.tolist(), "margin": q}

    train, test = margins(0.8), margins(0.3)
    run = as_run(slug)
    return {"run": run.name(seed), "method": run.method, "label": TOY_LABELS[slug],
            "options": run.options(), "seed": seed, "tier": {"name": "toy", "eval_steps": 20},
            "regions": {"labels": regions, "grid": grid},
            "margins": {"train_adv": train, "test_adv": test},
            "pgd20_ce_acc": 0.823, "margin_attack_acc": 0.811,
            "train_margin_quantiles": train["margin"], "test_margin_quantiles": test["margin"],
            "train_peaks": [0.9], "test_peaks": [0.2, 1.4]}


@pytest.fixture(scope="module")
def toy_results():
    rng = np.random.default_rng(0)
    return [_toy_result(slug, seed, rng) for seed in (0, 1) for slug in TOY_LABELS]


def _history(centres, n=300, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for e, c in enumerate(centres):
        m_tr = torch.from_numpy(rng.normal(c, 0.7, n))
        m_he = torch.from_numpy(rng.normal(c - 0.5, 0.7, n))
        rows.append({"epoch": e + 1, "lr": 0.1 if e < len(centres) // 2 else 0.01, "loss": 1.0,
                     "pgd_acc": 0.5, "train_slice_pgd_acc": float((m_tr > 0).float().mean()),
                     "hist_train_adv": _movie_frame(m_tr), "hist_heldout_adv": _movie_frame(m_he)})
    return rows


@pytest.fixture(scope="module")
def toy_movie_frames():
    """Four runs over 12 epochs, as the toy movie (whose saved figure asks for 7 epochs)."""
    runs = [movie_frames.frames_from_history(_history(np.linspace(-1, 2 + s, 12), seed=s),
                                             run=run, seed=0)
            for s, run in enumerate(("at", "gairat", "sovr-r0.4", "mart"))]
    return movie_frames.make_frames(runs, tier={"gairat_burn_in": 5, "train_steps": 10,
                                                "eps": 0.0375}, seed=0)


# --------------------------------------------------------------------------- the figures

def test_toy_regions_are_readable(toy_results):
    x = np.random.default_rng(1).uniform(0, 1, (120, 2))
    fig = toy_plots.plot_toy_regions([r for r in toy_results if r["seed"] == 0], x, eps=0.0375)
    _assert_readable(fig)


def test_toy_margin_grid_is_readable(toy_results):
    _assert_readable(toy_plots.plot_toy_margins(toy_results))


def test_toy_movie_is_readable_and_thinned_to_a_notebook_width(toy_movie_frames):
    asked = [1, 2, 5, 6, 8, 10, 12]                       # seven, as the toy movie's PNG
    fig = movie_plots.plot_margin_movie(toy_movie_frames, epochs=asked)
    n_cols = len({ax.get_subplotspec().colspan.start for ax in fig.axes})
    assert n_cols <= movie_plots.MAX_MOVIE_COLUMNS
    assert len(fig.axes) == 4 * n_cols
    assert fig.get_figwidth() <= 12, "wider than a notebook: shown shrunk, text below 8 pt"
    titles = [ax.get_title().splitlines()[0] for ax in fig.axes if ax.get_title()]
    assert titles[0] == "epoch 1" and titles[-1] == "epoch 12"
    assert "of the 7 epochs asked for" in fig._suptitle.get_text()
    _assert_readable(fig)
    _assert_readable(movie_plots.plot_margin_frame(toy_movie_frames, 6))


def test_push_and_flow_is_readable_and_its_band_says_what_it_shows():
    # a measured curve above 1 even at negative margins (as on a model's logits)
    curve = {"edges": [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0], "ratio": [1.2, 1.3, 1.5, 1.9, 2.6],
             "count": [5] * 5}
    fig = push.plot_push_and_flow({"measured on SOVR's logits": curve}, m0=-1.0, cut=-0.5)
    _assert_readable(fig)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert not any("misclassified: OVR pushes less" in t for t in labels), labels
    assert "ratio < 1: OVR pushes less than CE" in labels
    # the band lies below y = 1 only: nothing above the line is shaded as "pushes less"
    band = next(h for h, t in zip(*ax.get_legend_handles_labels())
                if t.startswith("ratio < 1"))
    ys = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1] \
        if hasattr(band, "get_patch_transform") else band.get_xy()[:, 1]
    assert ys.max() <= 1.0 + 1e-9


@pytest.mark.parametrize("check", [_small_texts, _overlapping_titles, _log_axes_with_few_labels])
def test_the_checks_can_fail(check):
    """Each check finds the fault it looks for in a figure made to have it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    a, b = fig.subplots(1, 2)
    a.set_title("a long title that runs into the next panel's", fontsize=10)
    b.set_title("and this one into the first panel's title", fontsize=10)
    a.text(0.5, 0.5, "tiny", fontsize=5)
    a.set_yscale("log")
    a.plot([1, 2], [1.5, 20])
    a.set_ylim(1.5, 20)
    assert check(fig)


def _explorer_info(label, shift, rng, n=300, grid=40):
    labels = (np.add.outer(np.arange(grid), np.arange(grid)) * 3 // grid) % 3
    v = np.concatenate([rng.normal(shift, 1.5, n - 2), [-9.0, 9.0]])
    q = dict(zip(("q10", "q50", "q90"), np.quantile(v, [0.1, 0.5, 0.9]).tolist()))
    return {"label": label, "margins": v.tolist(), **q, "regions": "".join(map(str, labels.ravel())),
            "grid": grid, "clean_acc": 0.89, "pgd_acc": 0.82, "margin_attack_acc": 0.81,
            "switched_fraction": 0.4, "steps": 60, "eval_steps": 20, "margin_steps": 20}


def test_toy_explorer_is_readable_with_its_kept_layout():
    """The toy explorer's figure (SOVR against its CE reference), laid out once and then drawn
    with that layout for another move: readable, every text inside the canvas."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (300, 2))
    ref = _explorer_info("CE fine-tuned (ratio 0)", 1.5, rng)
    first = toy_plots.plot_toy_explorer(ref, ref, x, eps=0.0375)
    _assert_readable(first)
    p = first.subplotpars
    layout = {k: getattr(p, k) for k in ("left", "right", "bottom", "top", "wspace", "hspace")}
    fig = toy_plots.plot_toy_explorer(ref, _explorer_info("SOVR (threshold -1.5)", 2.5, rng), x,
                                      eps=0.0375, layout=layout)
    _assert_readable(fig)
    renderer = _draw(fig)
    canvas = fig.bbox
    outside = [t.get_text()[:30] for t in _visible_texts(fig)
               if not canvas.contains(*t.get_window_extent(renderer).p0)
               or not canvas.contains(*t.get_window_extent(renderer).p1)]
    assert not outside, outside
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert labels[0].startswith("CE fine-tuned (ratio 0)") and labels[1].startswith("SOVR")
    assert fig.axes[2].get_legend_handles_labels()[1] == ["CE", "SOVR"]
