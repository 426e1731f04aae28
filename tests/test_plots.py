"""The figure helpers: what each figure shows, its labels, and its refusals."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sovr_tutorial.figures import plots  # noqa: E402


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_plot_accuracy_vs_eps():
    eps = [0, 2 / 255, 4 / 255, 8 / 255]
    fig = plots.plot_accuracy_vs_eps(eps, {"FGSM": [0.8, 0.5, 0.3, 0.1],
                                           "PGD-10": [0.8, 0.4, 0.1, 0.0]}, title="t")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "accuracy (%)"
    assert "1/255" in ax.get_xlabel()
    assert [l.get_label() for l in ax.get_lines()] == ["FGSM", "PGD-10"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 2, 4, 8])
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [80, 40, 10, 0])
    with pytest.raises(ValueError, match="3 eps values"):
        plots.plot_accuracy_vs_eps([0, 1, 2], {"a": [1, 2]})


def _history(n, pgd):
    return [{"epoch": e + 1, "loss": 2.0 - 0.1 * e, "clean_acc": 0.3 + 0.02 * e,
             "pgd_acc": p} for e, p in zip(range(n), pgd)]


def test_plot_training_curves_marks_best_epoch():
    fig = plots.plot_training_curves({"AT": _history(4, [0.1, 0.3, 0.2, 0.15]),
                                      "MART": _history(4, [0.1, 0.2, 0.25, 0.3])})
    assert len(fig.axes) == 3
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 3
    assert "PGD" in fig.axes[2].get_title()
    # one line per method per panel, plus a best-epoch circle in the PGD panel
    assert len(fig.axes[0].get_lines()) == 2
    pgd_lines = fig.axes[2].get_lines()
    assert len(pgd_lines) == 4
    circles = [l for l in pgd_lines if len(l.get_xdata()) == 1]
    assert sorted(float(c.get_xdata()[0]) for c in circles) == [2.0, 4.0]


def test_plot_training_curves_without_validation():
    hist = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}]
    fig = plots.plot_training_curves({"standard": hist})
    assert len(fig.axes[0].get_lines()) == 1
    assert len(fig.axes[2].get_lines()) == 0
    assert "no 'pgd_acc'" in fig.axes[2].texts[0].get_text()


def test_plot_margin_histograms_overlay_and_grid():
    rng = np.random.default_rng(0)
    margins = {"AT": rng.normal(1, 2, 500), "MART": torch.from_numpy(rng.normal(0, 0.5, 300))}
    fig = plots.plot_margin_histograms(margins, bins=30, range=(-5, 5), title="hist")
    (ax,) = fig.axes
    assert ax.get_title() == "hist"
    assert ax.get_ylabel() == "fraction of samples"
    assert "margin" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["AT (n=500)", "MART (n=300)"]
    # normalised, and values outside the range land in the end bins: each sums to 1
    for patch in ax.patches:
        vals = patch.get_data().values
        assert vals.sum() == pytest.approx(1.0)
    grid = plots.plot_margin_histograms(margins, layout="grid", title="g")
    assert len([a for a in grid.axes if a.get_visible()]) == 2
    assert [a.get_title() for a in grid.axes[:2]] == ["AT", "MART"]


def test_plot_margin_histograms_accepts_precomputed_and_axis():
    counts, edges = np.histogram(np.linspace(-1, 1, 100), bins=10, range=(-2, 2))
    fig = Figure()
    ax = fig.subplots()
    out = plots.plot_margin_histograms({"AT": (counts, edges)}, ax=ax, title="into ax")
    assert out is fig
    assert ax.get_title() == "into ax"
    with pytest.raises(ValueError, match="len\\(edges\\)"):
        plots.plot_margin_histograms({"AT": (counts, edges[:-2])})
    with pytest.raises(ValueError, match="layout"):
        plots.plot_margin_histograms({"AT": [1.0]}, layout="side")
    with pytest.raises(ValueError, match="non-empty dict"):
        plots.plot_margin_histograms({})


def test_plot_margin_vs_gradnorm():
    rng = np.random.default_rng(0)
    m = {"AT": rng.normal(1, 1, 200), "GAIRAT": rng.normal(0.2, 0.3, 200)}
    g = {"AT": rng.uniform(5, 50, 200), "GAIRAT": rng.uniform(1, 10, 200)}
    fig = plots.plot_margin_vs_gradnorm(m, g, max_points=100)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert "margin" in ax.get_xlabel()
    assert "nabla" in ax.get_ylabel()
    assert len(ax.collections) == 2
    assert all(len(c.get_offsets()) == 100 for c in ax.collections)
    assert any("flip line" in l.get_label() for l in ax.get_lines())
    with pytest.raises(ValueError, match="same names"):
        plots.plot_margin_vs_gradnorm(m, {"AT": g["AT"]})


def test_method_colors_are_the_same_for_a_run_its_slug_and_its_label():
    from sovr_tutorial.runs import Run
    sovr = plots.METHOD_COLORS["sovr"]
    assert plots.method_color(Run("sovr", "threshold", 1.0)) == sovr
    assert plots.method_color("sovr-r0.2") == plots.method_color("SOVR (ratio 0.4)") == sovr
    assert plots.method_color("at") == plots.method_color("AT (3 seeds)") == plots.METHOD_COLORS["at"]
    assert plots.method_color("ovr") == plots.METHOD_COLORS["ovr"]
    # anything else gets a spare colour, a different one per index
    assert plots.method_color("mystery", 0) != plots.method_color("mystery", 1)
