"""Result files: read back, grouped by run (old and new files alike), summarised, drawn."""
import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from sovr_tutorial.lab import report, results  # noqa: E402
from sovr_tutorial.runs import Run  # noqa: E402


def _history(n, pgd):
    return [{"epoch": e + 1, "loss": 2.0 - 0.1 * e, "clean_acc": 0.3 + 0.02 * e,
             "pgd_acc": p} for e, p in zip(range(n), pgd)]


def _hist_block(rng, center):
    vals = rng.normal(center, 1.0, 100)
    counts, edges = np.histogram(vals, bins=80, range=(-10, 10))
    summary = {"n": 100, "mean": float(vals.mean()), "q50": float(np.median(vals))}
    return {"margin": summary, "grad_norm_l1": summary, "flip_budget": summary,
            "hist_counts": counts.tolist(), "hist_edges": edges.tolist(),
            "accuracy": float((vals > 0).mean())}


def _fake_result(run, seed, clean, pgd, aa, *, old_format=False):
    """A tiny result dict with the fields sovr_tutorial.lab.experiments writes; ``old_format``:
    as written before Run existed (``method`` and ``sovr_ratio``, no ``options``)."""
    rng = np.random.default_rng(seed)
    name = run.name(seed)
    ident = ({"sovr_ratio": run.value if run.method == "sovr" else None} if old_format
             else {"label": run.label, "options": run.options()})
    return name, {
        "run": name, "method": run.method, "seed": seed, **ident,
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


def _write(folder, *runs):
    for name, res in runs:
        (folder / f"{name}.json").write_text(json.dumps(res))


@pytest.fixture()
def results_dir(tmp_path):
    """AT (seeds 0 and 1), GAIRAT and SOVR at ratio 0.4 (seeds 0 and 1); seed 0 of AT and
    SOVR in the old file format, seed 1 in the new one."""
    _write(tmp_path,
           _fake_result(Run("at"), 0, 0.50, 0.30, 0.25, old_format=True),
           _fake_result(Run("at"), 1, 0.52, 0.32, 0.27),
           _fake_result(Run("gairat"), 0, 0.48, 0.36, 0.20),
           _fake_result(Run("sovr"), 0, 0.49, 0.31, 0.28, old_format=True),
           _fake_result(Run("sovr"), 1, 0.49, 0.31, 0.28))
    (tmp_path / "notes.json").write_text(json.dumps({"not": "a result"}))   # ignored
    (tmp_path / "broken.json").write_text("{")                               # ignored
    return tmp_path


def test_old_and_new_result_files_name_the_same_run():
    old = _fake_result(Run("sovr", value=0.2), 0, 0.5, 0.3, 0.2, old_format=True)[1]
    new = _fake_result(Run("sovr", value=0.2), 1, 0.5, 0.3, 0.2)[1]
    assert "options" not in old and results.run_of(old) == results.run_of(new) == Run("sovr", value=0.2)
    assert results.run_of(_fake_result(Run("mart"), 0, 0.5, 0.3, 0.2, old_format=True)[1]) == Run("mart")
    threshold = _fake_result(Run("sovr", "threshold", 1.0), 0, 0.5, 0.3, 0.2)[1]
    assert results.run_of(threshold) == Run("sovr", "threshold", 1.0)


def test_runs_are_grouped_over_seeds_in_the_course_order(results_dir):
    groups = results.group_runs(results.load_results(results_dir))
    assert list(groups) == [Run("at"), Run("gairat"), Run("sovr")]
    assert [r["seed"] for r in groups[Run("sovr")]] == [0, 1]   # one old file, one new


def test_results_table_one_row_per_run(results_dir):
    table = results.results_table(results_dir)
    lines = table.splitlines()
    assert lines[0].startswith("| method | seeds | clean (%) | PGD-20 (%)")
    assert "AA [custom, n=16]" in lines[0]
    rows = lines[2:]
    assert len(rows) == 3
    assert rows[0].startswith("| AT | 0,1 | 51.0 ± 1.4 | 31.0 ± 1.4 |")
    assert rows[1].startswith("| GAIRAT | 0 | 48.0 | 36.0 | 37.0 | 20.0 | 17.0 |")
    assert rows[2].startswith("| SOVR (ratio 0.4) | 0,1 |")


def test_a_run_collapsed_to_chance_is_left_out_and_named(results_dir):
    name, res = _fake_result(Run("mart"), 1, 0.10, 0.10, 0.10)
    _write(results_dir, (name, res))
    assert results.is_collapsed(res)
    assert not results.is_collapsed(_fake_result(Run("at"), 0, 0.2, 0.1, 0.1)[1])
    with pytest.warns(UserWarning, match=r"collapsed to chance level: mart-s1 \(clean 10.0%\)"):
        kept = results.load_results(results_dir)
    assert "mart-s1" not in [r["run"] for r in kept]
    assert "mart-s1" in [r["run"] for r in results.load_results(results_dir, collapsed=True)]
    table = results.results_table(results_dir)
    assert "| MART |" not in table     # its only run collapsed: no row of chance-level numbers
    assert table.endswith("Left out, collapsed to chance level: mart-s1 (clean 10.0%).")
    assert results.collapsed_note(results_dir) == (
        "left out, collapsed to chance level: mart-s1 (clean 10.0%)")
    fig = report.plot_pgd_vs_aa(kept, note=results.collapsed_note(results_dir))
    assert "mart-s1" in fig.get_supxlabel()


def test_chance_level_depends_on_the_number_of_classes():
    six = _fake_result(Run("at"), 0, 0.18, 0.1, 0.1)[1]
    assert not results.is_collapsed(six)                       # 10 classes: chance is 10%
    six["tier"]["num_classes"] = 6
    assert results.is_collapsed(six)                           # 6 classes: chance is 16.7%


def test_stored_histograms_sum_the_seeds_of_a_run(results_dir):
    loaded = results.load_results(results_dir)
    h = results.stored_histograms(loaded, "test_adv")
    assert list(h) == ["AT (2 seeds)", "GAIRAT", "SOVR (ratio 0.4) (2 seeds)"]
    at_runs = [r for r in loaded if r["method"] == "at"]
    expected = sum(np.asarray(r["margins"]["test_adv"]["hist_counts"]) for r in at_runs)
    counts, edges = h["AT (2 seeds)"]
    np.testing.assert_array_equal(counts, expected)
    assert len(edges) == len(counts) + 1
    assert results.stored_histograms(loaded, "no_such_key") == {}


def test_one_setting_per_method_prefers_the_default(results_dir):
    _write(results_dir, _fake_result(Run("sovr", value=0.0), 0, 0.45, 0.3, 0.26),
           _fake_result(Run("sovr", "threshold", 1.0), 0, 0.45, 0.3, 0.26, old_format=False))
    loaded = results.load_results(results_dir)
    main = results.one_setting_per_method(loaded)
    assert {results.run_of(r) for r in main} == {Run("at"), Run("gairat"), Run("sovr")}
    no_default = [r for r in loaded if results.run_of(r) != Run("sovr")]
    kept = {results.run_of(r) for r in results.one_setting_per_method(no_default)}
    assert kept == {Run("at"), Run("gairat"), Run("sovr", value=0.0)}


def test_plot_results_writes_pngs(results_dir):
    paths = report.plot_results(results_dir)
    names = sorted(p.name for p in paths)
    assert names == sorted(["margins_at.png", "margins_gairat.png", "margins_sovr-r0.4.png",
                            "margins_test_adv_all.png", "margins_train_adv_all.png",
                            "pgd_vs_aa.png", "training_curves.png"])
    for p in paths:
        assert p.parent == results_dir
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 5000


def test_plot_results_draws_a_method_at_several_settings_apart(results_dir):
    _write(results_dir, _fake_result(Run("sovr", value=0.0), 0, 0.45, 0.3, 0.26),
           _fake_result(Run("sovr", value=1.0), 0, 0.45, 0.3, 0.26, old_format=True))
    names = {p.name for p in report.plot_results(results_dir)}
    assert {"margins_test_adv_sovr_sweep.png", "margins_train_adv_sovr_sweep.png",
            "margins_sovr-r0.png", "margins_sovr-r1.png"} <= names


def test_plot_pgd_vs_aa_bars_and_gap(results_dir):
    loaded = results.load_results(results_dir)
    fig = report.plot_pgd_vs_aa(loaded)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "AT\n2 seeds", "GAIRAT\n1 seed", "SOVR (ratio 0.4)\n2 seeds"]
    assert len(ax.patches) == 9                      # 3 runs x (clean, PGD, AA)
    # one error bar per series, for AT and SOVR (the runs with two seeds)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3 and all(len(c.lines[2][0].get_segments()) == 2 for c in bars)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["clean", "PGD-20 (CE)", "AutoAttack [custom]"]
    assert [t.get_text() for t in ax.texts] == ["gap +6.0", "gap +17.0", "gap +4.0"]
    assert "custom (APGD-CE + APGD-T)" in fig.get_supxlabel()
    # PGD's bar is on AutoAttack's images, as the gap is: bar heights differ by the gap
    pgd_bars, aa_bars = ax.patches[3:6], ax.patches[6:9]
    gaps = [float(t.get_text().split()[1]) for t in ax.texts]
    assert [round(p.get_height() - a.get_height(), 1) for p, a in zip(pgd_bars, aa_bars)] == gaps
    with pytest.raises(ValueError, match="empty"):
        report.plot_pgd_vs_aa([])


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        report.plot_results(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no result"):
        results.results_table(tmp_path)


# --------------------------------------------------------------------------- one schema

def _fresh_results(tmp_path):
    """A toy world result and a CIFAR-10 runner result, both written now (a second of work:
    one toy epoch on 64 points; one ci epoch of a small CNN on 20 random images)."""
    import torch
    from sovr_tutorial.lab import experiments, toy
    from sovr_tutorial.tiers import get_tier
    from sovr_tutorial.toy.world import toy_tier
    toy_r = toy.run_toy("at", 0, toy_tier(epochs=1, n_train=64, n_test=64, n_autoattack=8),
                        out_dir=tmp_path / "toy")
    tier = get_tier("ci").replace(n_train=20, n_test=20, n_heldout=10, n_autoattack=4,
                                  epochs=1, batch_size=10)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
             torch.arange(n) % 10) for n in (20, 10, 20)]
    cifar_r = experiments.run_one(Run("at"), 0, tier, data, {"label": "random images"},
                                  tmp_path / "cifar", tmp_path / "runs", torch.device("cpu"),
                                  progress=False)
    return toy_r, cifar_r


def test_a_toy_result_has_the_cifar_runners_keys_for_the_same_quantities(tmp_path):
    toy_r, cifar_r = _fresh_results(tmp_path)
    shared = {"run", "method", "label", "options", "seed", "tier", "clean_acc",
              "robust_train_acc", "per_image", "margins", "autoattack", "history", "data",
              "environment", "command"}
    assert shared <= set(toy_r) and shared <= set(cifar_r)
    for r in (toy_r, cifar_r):   # robust PGD (CE) accuracy at the tier's eval steps
        assert results.pgd_key(r) == f"pgd{r['tier']['eval_steps']}_ce_acc"
        assert not {"pgd_acc", "per_point", "slug"} & set(r)   # no key of the old toy schema
    assert results.pgd_key(toy_r) == "pgd20_ce_acc" and results.pgd_key(cifar_r) == "pgd5_ce_acc"
    assert set(toy_r["per_image"]) == {"clean", "pgd"} <= set(cifar_r["per_image"])
    assert set(toy_r["margins"]) == set(cifar_r["margins"]) == {
        "test_clean", "test_adv", "train_clean", "train_adv"}
    for r in (toy_r, cifar_r):
        assert (r["run"], r["label"], Run(**r["options"])) == ("at-s0", "AT", Run("at"))
    # and the one reader reads both folders the same way
    for folder, r in (("toy", toy_r), ("cifar", cifar_r)):
        back = results.load_runs(tmp_path / folder)["at"][0]
        assert {k: v for k, v in back.items() if k != "_path"} == json.loads(json.dumps(r))




def test_every_committed_toy_result_is_written_in_the_one_schema():
    """results/toy and results/toy-two were regenerated under the CIFAR-10 runner's keys,
    from a clean commit, with AutoAttack's verdict per point: no reader renames keys any
    more, and the per-image tests of the verdicts apply to them."""
    from sovr_tutorial.paths import results_dir as committed
    for world in ("toy", "toy-two"):
        files = results.load_results(committed() / world, collapsed=True)
        assert len(files) >= 20, world
        for r in files:
            assert not {"pgd_acc", "per_point", "slug"} & set(r), r["_path"]
            assert results.pgd_key(r) in r and "per_image" in r
            assert len(r["autoattack"]["broken_by"]) == r["autoattack"]["n"], r["_path"]
            assert not r["environment"]["git_commit"].endswith("+dirty"), r["_path"]
