"""The figure helpers: shapes of the figures, labels, and plotting from result files."""
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sovr_tutorial import plots  # noqa: E402
from sovr_tutorial.data import CLASSES  # noqa: E402


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_show_adversarial_examples_rows_and_captions():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=g)
    x_adv = (x + 8 / 255 * torch.randn(8, 3, 32, 32, generator=g).sign()).clamp(0, 1)
    y = torch.arange(8)
    pred_clean = torch.arange(8)
    pred_adv = (torch.arange(8) + 1) % 10
    fig = plots.show_adversarial_examples(x, x_adv, y, pred_clean, pred_adv, CLASSES, n=5,
                                          title="demo")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 15                     # 3 rows x 5 columns
    titles = _titles(fig)
    assert titles[0] == "true: airplane\npred: airplane"
    assert titles[10] == "pred: automobile"        # row 3, column 1: adversarial prediction
    assert fig.axes[0].title.get_color() == "green"
    assert fig.axes[10].title.get_color() == "red"
    assert fig.axes[0].get_ylabel() == "clean"
    assert fig.axes[5].get_ylabel().startswith("perturbation")
    assert fig.axes[10].get_ylabel() == "adversarial"
    # the perturbation row is grey where nothing changed and within [0, 1]
    img = fig.axes[5].images[0].get_array()
    assert img.min() >= 0 and img.max() <= 1


def test_show_adversarial_examples_rejects_mismatched_inputs():
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(ValueError, match="same shape"):
        plots.show_adversarial_examples(x, x[:3], torch.zeros(4), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="same number"):
        plots.show_adversarial_examples(x, x, torch.zeros(3), torch.zeros(4), torch.zeros(4))


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


def _hist_block(rng, center):
    vals = rng.normal(center, 1.0, 100)
    counts, edges = np.histogram(vals, bins=80, range=(-10, 10))
    summary = {"n": 100, "mean": float(vals.mean()), "q50": float(np.median(vals))}
    return {"margin": summary, "grad_norm_l1": summary, "flip_budget": summary,
            "hist_counts": counts.tolist(), "hist_edges": edges.tolist(),
            "accuracy": float((vals > 0).mean())}


def _fake_result(method, seed, clean, pgd, aa, ratio=None):
    """A tiny result dict with the fields sovr_tutorial.experiments writes."""
    rng = np.random.default_rng(seed)
    name = f"sovr-r{ratio:g}-s{seed}" if method == "sovr" else f"{method}-s{seed}"
    return name, {
        "run": name, "method": method, "seed": seed, "sovr_ratio": ratio,
        "tier": {"name": "ci", "eps": 8 / 255, "eval_steps": 20, "n_autoattack": 16},
        "data": {"source": "jpeg", "label": "CIFAR-10 (JPEG copy)"},
        "environment": {"cpu": "x86_64", "cpu_count": 2, "gpu": None},
        "history": _history(2, [pgd - 0.05, pgd]),
        "clean_acc": clean, "pgd20_ce_acc": pgd, "pgd20_margin_acc": pgd - 0.01,
        "pgd_acc_on_aa_subset": pgd + 0.01,
        "autoattack": {"backend": "pyautoattack", "version": "custom",
                       "label": "custom (APGD-CE + APGD-T)", "attacks": ["apgd-ce", "apgd-t"],
                       "n": 16, "robust": aa, "per_attack": {"apgd-ce": aa + 0.02, "apgd-t": aa}},
        "margins": {k: _hist_block(rng, c) for k, c in
                    (("test_clean", 1.0), ("test_adv", -0.5), ("train_clean", 1.5),
                     ("train_adv", 0.0))},
    }


@pytest.fixture()
def results_dir(tmp_path):
    runs = [_fake_result("at", 0, 0.50, 0.30, 0.25), _fake_result("at", 1, 0.52, 0.32, 0.27),
            _fake_result("gairat", 0, 0.48, 0.36, 0.20),
            _fake_result("sovr", 0, 0.49, 0.31, 0.28, ratio=0.4)]
    for name, res in runs:
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
    (tmp_path / "notes.json").write_text(json.dumps({"not": "a result"}))   # ignored
    (tmp_path / "broken.json").write_text("{")                               # ignored
    return tmp_path


def test_plot_results_writes_pngs(results_dir):
    paths = plots.plot_results(results_dir)
    names = sorted(p.name for p in paths)
    assert names == sorted(["margins_at.png", "margins_gairat.png", "margins_sovr-r0.4.png",
                            "margins_test_adv_all.png", "margins_train_adv_all.png",
                            "pgd_vs_aa.png", "training_curves.png"])
    for p in paths:
        assert p.parent == results_dir
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 5000


def test_plot_results_draws_the_sovr_ratio_sweep_apart(results_dir):
    for ratio in (0.0, 1.0):
        name, res = _fake_result("sovr", 0, 0.45, 0.3, 0.26, ratio=ratio)
        (results_dir / f"{name}.json").write_text(json.dumps(res))
    names = {p.name for p in plots.plot_results(results_dir)}
    assert {"margins_test_adv_sovr_sweep.png", "margins_train_adv_sovr_sweep.png",
            "margins_sovr-r0.png", "margins_sovr-r1.png"} <= names
    # the all-methods overlay keeps one SOVR: the default ratio, else the smallest
    results = plots.load_results(results_dir)
    main = plots.one_sovr_ratio(results)
    assert list(plots.stored_histograms(main, "test_adv")) == ["AT (2 seeds)", "GAIRAT",
                                                               "SOVR (ratio 0.4)"]
    no_default = [r for r in results if r.get("sovr_ratio") != 0.4]
    assert [r.get("sovr_ratio") for r in plots.one_sovr_ratio(no_default)
            if r["method"] == "sovr"] == [0.0]


def test_a_run_collapsed_to_chance_is_left_out_and_named(results_dir):
    name, res = _fake_result("mart", 1, 0.10, 0.10, 0.10)
    (results_dir / f"{name}.json").write_text(json.dumps(res))
    assert plots.is_collapsed(res) and not plots.is_collapsed(_fake_result("at", 0, 0.2, 0.1, 0.1)[1])
    assert "mart-s1" not in [r["run"] for r in plots.load_results(results_dir)]
    assert "mart-s1" in [r["run"] for r in plots.load_results(results_dir, collapsed=True)]
    table = plots.results_table(results_dir)
    assert "| MART |" not in table     # its only run collapsed: no row of chance-level numbers
    assert table.endswith("Left out, collapsed to chance level: mart-s1 (clean 10.0%).")
    assert plots.collapsed_note(results_dir) == (
        "left out, collapsed to chance level: mart-s1 (clean 10.0%)")
    fig = plots.plot_pgd_vs_aa(plots.load_results(results_dir), note=plots.collapsed_note(results_dir))
    assert "mart-s1" in fig.get_supxlabel()


def test_results_table_one_row_per_method(results_dir):
    table = plots.results_table(results_dir)
    lines = table.splitlines()
    assert lines[0].startswith("| method | seeds | clean (%) | PGD-20 (%)")
    assert "AA [custom, n=16]" in lines[0]
    rows = lines[2:]
    assert len(rows) == 3
    assert rows[0].startswith("| AT | 0,1 | 51.0 ± 1.4 | 31.0 ± 1.4 |")
    assert rows[1].startswith("| GAIRAT | 0 | 48.0 | 36.0 | 37.0 | 20.0 | 17.0 |")
    assert rows[2].startswith("| SOVR (ratio 0.4) | 0 |")


def test_stored_histograms_sum_the_seeds_of_a_method(results_dir):
    results = plots.load_results(results_dir)
    h = plots.stored_histograms(results, "test_adv")
    assert list(h) == ["AT (2 seeds)", "GAIRAT", "SOVR (ratio 0.4)"]
    at_runs = [r for r in results if r["method"] == "at"]
    expected = sum(np.asarray(r["margins"]["test_adv"]["hist_counts"]) for r in at_runs)
    counts, edges = h["AT (2 seeds)"]
    np.testing.assert_array_equal(counts, expected)
    assert len(edges) == len(counts) + 1
    assert plots.stored_histograms(results, "no_such_key") == {}


def test_plot_pgd_vs_aa_bars_and_gap(results_dir):
    results = plots.load_results(results_dir)
    assert len(results) == 4
    fig = plots.plot_pgd_vs_aa(results)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "AT\n2 seeds", "GAIRAT\n1 seed", "SOVR (ratio 0.4)\n1 seed"]
    assert len(ax.patches) == 9                      # 3 methods x (clean, PGD, AA)
    # one error bar per series, for AT only (the one method with two seeds)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3 and all(len(c.lines[2][0].get_segments()) == 1 for c in bars)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["clean", "PGD-20 (CE)", "AutoAttack [custom]"]
    gaps = [t.get_text() for t in ax.texts]
    assert gaps == ["gap +6.0", "gap +17.0", "gap +4.0"]
    assert "custom (APGD-CE + APGD-T)" in fig.get_supxlabel()
    with pytest.raises(ValueError, match="empty"):
        plots.plot_pgd_vs_aa([])


def test_plot_results_on_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        plots.plot_results(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no result"):
        plots.results_table(tmp_path)


def test_method_labels_and_colors():
    assert plots.method_label("sovr", 0.4) == "SOVR (ratio 0.4)"
    assert plots.method_label("mart") == "MART"
    assert plots.method_color("SOVR (ratio 0.4)") == plots.METHOD_COLORS["sovr"]
    assert plots.method_color("at") == plots.method_color("AT")
