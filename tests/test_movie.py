"""The margin movie: frames from fit's records, their checks, the toy movie, its figures and
its epoch slider (called directly; the browser test moves it in JupyterLab)."""
import json

import numpy as np
import pytest
import torch

from sovr_tutorial.lab import movie
from sovr_tutorial.figures import frames as movie_frames, movie as movie_plots, toy_widgets
from sovr_tutorial.runs import Run
from sovr_tutorial.tiers import get_tier
from sovr_tutorial.train import MOVIE_BINS, MOVIE_RANGE, _movie_frame

COMMITTED = movie.frames_path(0)


def _history(centres, n=300, spread=0.5, seed=0, lrs=None):
    """A fit-like history: epoch e's margins ~ N(centres[e], spread), histogrammed by fit's
    own _movie_frame (training slice and held-out slice of n samples each)."""
    rng = np.random.default_rng(seed)
    rows = []
    for e, c in enumerate(centres):
        m_tr = torch.from_numpy(rng.normal(c, spread, n))
        m_he = torch.from_numpy(rng.normal(c - 0.5, spread, n))
        rows.append({"epoch": e + 1, "lr": (lrs or [0.1] * len(centres))[e], "loss": 1.0,
                     "pgd_acc": 0.5, "train_slice_pgd_acc": float((m_tr > 0).float().mean()),
                     "hist_train_adv": _movie_frame(m_tr), "hist_heldout_adv": _movie_frame(m_he)})
    return rows


def _frames(n_epochs=6, gairat_burn_in=2):
    lrs = [0.1] * (n_epochs // 2) + [0.01] * (n_epochs - n_epochs // 2)
    runs = [movie_frames.frames_from_history(_history(np.linspace(0, 3, n_epochs), lrs=lrs, seed=s),
                                      run=run, seed=0)
            for s, run in enumerate(("at", "gairat"))]
    return movie_frames.make_frames(runs, tier={"gairat_burn_in": gairat_burn_in}, seed=0)


# --------------------------------------------------------------------------- frames

def test_frames_keep_fit_records_on_the_fixed_bins():
    frames = _frames()
    assert frames["bins"] == MOVIE_BINS == len(frames["edges"]) - 1
    assert frames["edges"][0] == MOVIE_RANGE[0] and frames["edges"][-1] == MOVIE_RANGE[1]
    at = frames["runs"][0]
    assert at["run"] == "at-s0" and at["label"] == "AT" and at["epochs"] == [1, 2, 3, 4, 5, 6]
    assert at["n_train"] == at["n_heldout"] == 300
    assert all(sum(c) == 300 and len(c) == MOVIE_BINS for c in at["train"] + at["heldout"])
    assert movie_frames.check_frames(frames) is frames


def test_overflow_lands_in_the_edge_bins():
    counts = _movie_frame(torch.tensor([-50.0, -10.0, 0.1, 10.0, 99.0]))
    assert sum(counts) == 5 and counts[0] == 2 and counts[-1] == 2


def test_history_without_frames_is_refused():
    with pytest.raises(ValueError, match="no margin frames"):
        movie_frames.frames_from_history([{"epoch": 1, "loss": 1.0}], run="at", seed=0)


@pytest.mark.parametrize("spoil, match", [
    (lambda f: f["runs"][0]["train"][2].__setitem__(40, f["runs"][0]["train"][2][40] + 1),
     "summing to 301"),
    (lambda f: f["runs"][1]["heldout"][0].pop(), "80 summing"),
    (lambda f: f["runs"][0]["train"].pop(), "frames for"),
    (lambda f: f.__setitem__("edges", list(np.linspace(-5, 5, MOVIE_BINS + 1))), "other bins"),
    (lambda f: f.__setitem__("format", "other"), "not a margin-movie"),
])
def test_check_frames_catches_a_spoilt_frame(spoil, match):
    frames = _frames()
    spoil(frames)
    with pytest.raises(ValueError, match=match):
        movie_frames.check_frames(frames)


def test_save_and_load_give_the_same_frames(tmp_path):
    frames = _frames()
    path = movie_frames.save_frames(frames, tmp_path / "frames.json")
    assert movie_frames.load_frames(path) == json.loads(json.dumps(frames))


def test_frames_from_a_runner_result_file(tmp_path):
    result = {"run": "sovr-r0.4-s1", "method": "sovr", "seed": 1, "options": Run("sovr").options(),
              "tier": {"name": "cpu", "gairat_burn_in": 3},
              "data": {"source": "jpeg", "label": "CIFAR-10 (JPEG copy)"},
              "history": _history([0.0, 1.0, 2.0])}
    path = tmp_path / "sovr-r0.4-s1.json"
    path.write_text(json.dumps(result))
    frames = movie.frames_from_results([path])
    (r,) = frames["runs"]
    assert (r["run"], r["label"], r["epochs"]) == ("sovr-r0.4-s1", "SOVR (ratio 0.4)", [1, 2, 3])
    assert frames["data"] == "CIFAR-10 (JPEG copy)"


# --------------------------------------------------------------------------- epochs, peaks

def test_pick_epochs_spreads_and_keeps_the_marks():
    assert movie_frames.pick_epochs(range(1, 181), n=5) == [1, 46, 91, 135, 180]
    assert movie_frames.pick_epochs(range(1, 181), n=3, include=[46, 999]) == [1, 46, 91, 180]
    assert movie_frames.pick_epochs([4, 5], n=5) == [4, 5]


def test_key_epochs_are_read_from_the_frames():
    keys = movie_frames.key_epochs(_frames(n_epochs=6, gairat_burn_in=2))
    assert keys == {"lr x0.1 from": 4, "GAIRAT re-weights from": 3}
    frames = _frames(n_epochs=6, gairat_burn_in=2)
    frames["runs"] = frames["runs"][:1]   # no GAIRAT run: its burn-in is no mark
    assert movie_frames.key_epochs(frames) == {"lr x0.1 from": 4}


def test_histogram_peaks_count_one_and_two_groups():
    edges = movie_frames.movie_edges()
    rng = np.random.default_rng(0)
    one = _movie_frame(torch.from_numpy(rng.normal(1.0, 0.5, 400)))
    two = _movie_frame(torch.from_numpy(np.r_[rng.normal(0.0, 0.4, 200), rng.normal(5.0, 0.4, 200)]))
    assert len(movie_frames.histogram_peaks(one, edges)) == 1
    assert len(movie_frames.histogram_peaks(two, edges)) == 2


# --------------------------------------------------------------------------- the toy movie

@pytest.fixture(scope="module")
def tiny_toy():
    """Three epochs of AT and GAIRAT in the toy world on 256 held-out points (seconds)."""
    tier = get_tier("toy", epochs=3, gairat_burn_in=1)
    return tier, movie.toy_movie(("at", "gairat"), 0, tier=tier, n_heldout=256)


def test_toy_movie_records_every_epoch_of_every_run(tiny_toy):
    tier, frames = tiny_toy
    movie_frames.check_frames(frames)
    assert [r["run"] for r in frames["runs"]] == ["at-s0", "gairat-s0"]
    for r in frames["runs"]:
        assert r["epochs"] == [1, 2, 3] and r["n_train"] == r["n_heldout"] == 256
        assert len(r["train_peaks"]) == len(r["train_quantiles"]) == 3
        assert all(len(p) >= 1 for p in r["train_peaks"])
        q = r["train_quantiles"][-1]
        assert q["q10"] <= q["q50"] <= q["q90"]
    assert frames["tier"]["epochs"] == 3 and frames["n_heldout"] == 256


def test_toy_movie_raw_margins_are_the_histogrammed_ones():
    """The raw margins behind train_peaks are the ones fit measures (same attack, seed,
    model state): on the training slice their frame equals fit's record, on the held-out
    points their median equals fit's to float precision, at every epoch."""
    from sovr_tutorial.toy.world import make_world
    from sovr_tutorial.train import train

    tier = get_tier("toy", epochs=3)
    (x, y, _), (xt, yt, _) = make_world(1, n_train=tier.n_train, n_test=tier.n_test)
    same = []

    def on_epoch(epoch, record, model):
        m = movie._slice_margins(model, x[:128], y[:128], tier, 1)
        m_val = movie._slice_margins(model, xt[:128], yt[:128], tier, 1)
        same.append((_movie_frame(torch.from_numpy(m)) == record["hist_train_adv"],
                     abs(np.median(m_val) - record["adv_margin_median"]) < 1e-5))

    train("at", x, y, tier=tier, seed=1, x_val=xt[:128], y_val=yt[:128], progress=False,
          on_epoch=on_epoch)
    assert same == [(True, True)] * 3


def test_toy_movie_reads_finished_runs_back(tiny_toy, tmp_path, monkeypatch):
    tier, frames = tiny_toy
    path = movie_frames.save_frames(frames, tmp_path / "frames-s0.json")
    monkeypatch.setattr(movie, "toy_movie_run", lambda *a, **k: pytest.fail("trained again"))
    again = movie.toy_movie(("at", "gairat"), 0, tier=tier, n_heldout=256, path=path)
    assert again["runs"] == frames["runs"]


# --------------------------------------------------------------------------- figures

def test_small_multiples_one_row_per_run_one_column_per_epoch():
    frames = _frames()
    fig = movie_plots.plot_margin_movie(frames, epochs=[1, 3, 6])
    axes = fig.axes
    assert len(axes) == 2 * 3
    assert len({a.get_xlim() for a in axes}) == 1            # the same bins and range everywhere
    assert {a.get_ylabel().splitlines()[0] for a in axes if a.get_ylabel()} == {"AT", "GAIRAT"}
    # y = fraction of samples: every bar of a panel sums to 1 (the training slice's stairs)
    heights = axes[0].patches[0].get_data().values
    assert heights.sum() == pytest.approx(1.0)


def test_small_multiples_default_epochs_include_the_marks():
    fig = movie_plots.plot_margin_movie(_frames(n_epochs=6, gairat_burn_in=2), n=2)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert [t.splitlines()[0] for t in titles] == ["epoch 1", "epoch 3", "epoch 4", "epoch 6"]
    assert "GAIRAT re-weights here" in titles[1] and "lr x0.1 here" in titles[2]


def test_the_title_gives_image_budgets_in_255ths_and_toy_budgets_in_input_units():
    frames = _frames()
    frames["tier"] = {"model": "cnn", "train_steps": 10, "eps": 2 / 255}
    assert "PGD-10, eps 2/255" in movie_plots.plot_margin_movie(frames)._suptitle.get_text()
    frames["tier"] = {"model": "mlp", "train_steps": 10, "eps": 0.0375}
    assert "PGD-10, eps 0.0375" in movie_plots.plot_margin_movie(frames)._suptitle.get_text()


def test_small_multiples_refuse_an_epoch_without_frames():
    with pytest.raises(ValueError, match="no frames of epochs"):
        movie_plots.plot_margin_movie(_frames(), epochs=[1, 7])


def test_edge_bins_with_overflow_are_marked():
    frames = _frames()
    quiet = movie_plots.plot_margin_frame(frames, 1)
    frames["runs"][0]["train"][0][0] += 1          # one margin below -10 ...
    frames["runs"][0]["train"][0][40] -= 1
    frames["runs"][0]["train"][0][-1] += 1         # ... and one above +10
    frames["runs"][0]["train"][0][41] -= 1
    marked = movie_plots.plot_margin_frame(frames, 1)
    texts = lambda fig: [t.get_text() for t in fig.axes[0].texts]  # noqa: E731
    assert not any("edge bin" in t for t in texts(quiet))
    assert sum("edge bin" in t for t in texts(marked)) == 2


# --------------------------------------------------------------------------- the slider

def test_slider_figure_and_label_change_with_the_epoch():
    m = toy_widgets.MarginMovie(_frames())
    assert (m.slider.min, m.slider.max, m.slider.value) == (1, 6, 6)
    last_png, last_label = m.figure.value, m.label.value
    m.slider.value = 1
    assert m.figure.value != last_png and m.label.value != last_label
    assert m.label.value.startswith("epoch 1 of 6") and m.message.value == ""
    m.slider.value = 6
    assert m.figure.value == last_png   # the same epoch draws the same picture


def test_slider_shows_an_error_and_stays_usable():
    frames = _frames()
    for r in frames["runs"]:   # epoch 3 recorded by no run
        i = r["epochs"].index(3)
        for key in ("epochs", "lr", "train", "heldout", "pgd_acc", "train_slice_pgd_acc"):
            r[key].pop(i)
    m = toy_widgets.MarginMovie(frames, epoch=2)
    m.slider.value = 3
    assert "no frame of epoch 3" in m.message.value
    m.slider.value = 4
    assert m.message.value == "" and m.label.value.startswith("epoch 4")


# --------------------------------------------------------------------------- committed frames

def test_committed_toy_movie_is_complete():
    if not COMMITTED.exists():
        pytest.fail(f"{COMMITTED} is missing: python -m sovr_tutorial.lab.movie --plot")
    frames = movie_frames.load_frames(COMMITTED)
    tier = get_tier("toy")
    assert [r["slug"] for r in frames["runs"]] == list(movie.DEFAULT_RUNS)
    for r in frames["runs"]:
        assert r["epochs"] == list(range(1, tier.epochs + 1))
        assert r["n_train"] == r["n_heldout"] == movie.TOY_HELDOUT
        assert len(r["train_peaks"]) == tier.epochs
    assert (COMMITTED.parent / "margin_movie-s0.png").exists()


def test_committed_gairat_is_at_through_its_burn_in():
    """GAIRAT trains as plain AT for the tier's burn-in epochs (same seed, same data): its
    frames equal AT's up to the burn-in and differ from the first re-weighted epoch on."""
    if not COMMITTED.exists():
        pytest.fail(f"{COMMITTED} is missing: python -m sovr_tutorial.lab.movie --plot")
    frames = movie_frames.load_frames(COMMITTED)
    runs = {r["slug"]: r for r in frames["runs"]}
    burn_in = frames["tier"]["gairat_burn_in"]
    same = [runs["at"][k][:burn_in] == runs["gairat"][k][:burn_in] for k in ("train", "heldout")]
    assert same == [True, True]
    assert runs["at"]["train"][burn_in] != runs["gairat"]["train"][burn_in]
