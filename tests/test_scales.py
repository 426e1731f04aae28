"""The three scales side by side (sovr_tutorial/lab/scales.py), on hand-made result folders."""
import json

import numpy as np

from sovr_tutorial.lab import scales
from sovr_tutorial.runs import as_run


def _margins(values):
    v = np.asarray(values, float)
    q = {k: float(np.quantile(v, p)) for k, p in (("q05", .05), ("q25", .25), ("q50", .5),
                                                  ("q75", .75), ("q95", .95))}
    return {"margin": q, "flip_budget": {"q75": 0.1}, "grad_norm_l1": {"q50": 1.0},
            "values": v.tolist()}


def _toy(slug, seed, values):
    m = _margins(values)
    run = as_run(slug)
    return {"run": run.name(seed), "method": run.method, "label": run.label,
            "options": run.options(), "seed": seed,
            "tier": {"name": "toy", "eval_steps": 20, "num_classes": 6},
            "clean_acc": 0.9, "pgd20_ce_acc": 0.8,
            "pgd_point_acc": 0.8, "margin_attack_acc": 0.8,
            "autoattack": {"robust": 0.8, "n": 64, "label": "custom"}, "environment": {},
            "train_peaks": [1.0], "train_margin_quantiles": {"q10": -1.0, "q50": 1.0, "q90": 2.0},
            "margins": {"train_clean": m, "train_adv": m}}


def _cpu(method, seed, values):
    m = _margins(values)
    return {"run": f"{method}-s{seed}", "method": method, "seed": seed,
            "options": {"method": method}, "tier": {"name": "cpu", "eval_steps": 20,
                                                    "model": "small_cnn", "width": 16,
                                                    "n_train": 100, "epochs": 1, "eps": 8 / 255},
            "data": {"label": "hand-made"}, "environment": {}, "clean_acc": 0.4,
            "pgd20_ce_acc": 0.2, "autoattack": {"robust": 0.2, "broken_by": [None, "apgd-ce"],
                                                "n": 2, "label": "custom"},
            "margins": {"train_clean": m, "train_adv": m}}


def _root(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "toy").mkdir()
    (tmp_path / "cpu").mkdir()
    two = np.r_[rng.normal(-2, 0.3, 300), rng.normal(2, 0.3, 300)]
    for slug, values in (("at", two), ("gairat", rng.normal(0, 0.05, 600))):
        (tmp_path / "toy" / f"{slug}-s0.json").write_text(json.dumps(_toy(slug, 0, values)))
    (tmp_path / "cpu" / "at-s0.json").write_text(json.dumps(_cpu("at", 0, rng.normal(-0.4, 0.8, 500))))
    return tmp_path


def test_summary_reads_each_scale_and_says_what_is_not_run_yet(tmp_path):
    root = _root(tmp_path)
    table = scales.scale_summary(root)
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]]
    rows = {(c[0], c[2]): c for c in cells}
    assert rows["toy", "AT"][3:5] == ["1", "2"]          # one seed, two peaks
    assert rows["toy", "GAIRAT"][3:5] == ["1", "1"]
    assert rows["cpu", "GAIRAT"][3] == "not run yet"
    assert rows["small", "not run yet"][1] == "-"


def test_verdicts_per_scale_and_the_figure_cope_with_missing_scales(tmp_path):
    root = _root(tmp_path)
    table = scales.scale_verdicts(root)
    assert table.splitlines()[0] == "| claim | toy | cpu | small |"
    assert all(line.endswith("| not run yet |") for line in table.splitlines()[2:])
    fig = scales.plot_scale_margins(root)
    assert [ax.texts[0].get_text() for ax in fig.axes if ax.texts] == ["no result files yet"]
    assert len(fig.axes[0].patches) > 0 and fig.axes[2].get_title() == "small: not run yet"


def test_verdicts_per_scale_can_show_one_claim(tmp_path):
    table = scales.scale_verdicts(_root(tmp_path), claims=(1,))
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| 1"]


def test_the_small_tier_is_read_once_it_has_result_files(tmp_path):
    root = _root(tmp_path)
    (root / "small").mkdir()
    assert scales.scale_folders(root)["small"] is None     # an empty folder is not a scale yet
    run = _cpu("gairat", 1, np.random.default_rng(1).normal(0.2, 0.1, 500))
    run["tier"].update(name="small", model="cnn", width=32, n_train=1000, epochs=60, eps=2 / 255)
    (root / "small" / "gairat-s1.json").write_text(json.dumps(run))
    rows = [line for line in scales.scale_summary(root).splitlines() if line.startswith("| small")]
    assert any("| GAIRAT | 1 | 1 |" in line for line in rows)
    assert any("| AT | not run yet |" in line for line in rows)
    title = scales.plot_scale_margins(root).axes[2].get_title()
    assert title == "small tier (cnn w32, 1000 images, 60 ep, eps 2/255)"
