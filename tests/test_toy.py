"""The toy world: its data, its measures, its command line, its figures and its explorer."""
import json
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from sovr_tutorial.lab import results as result_files, toy
from sovr_tutorial.toy import world as toy_data, model as toy_model
from sovr_tutorial.figures import toy as toy_plots
from sovr_tutorial.figures.toy_widgets import ToyExplorer
from sovr_tutorial.runs import as_run

# A few seconds of everything: small sets, few epochs, AutoAttack on 64 points.
SMALL = {"epochs": 3, "n_train": 256, "n_test": 256, "n_autoattack": 64, "gairat_burn_in": 1}
SMALL_SET = [f"{k}={v}" for k, v in SMALL.items()]


@pytest.fixture(scope="module")
def small_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    tier = toy_data.toy_tier(**SMALL)
    for slug in ("at", "sovr-r0.4"):
        toy.run_toy(slug, 0, tier, out_dir=out)
    return out


# --------------------------------------------------------------------------- the world

def test_points_lie_in_the_unit_square_with_balanced_classes():
    x, y, wide = toy_data.make_points(600, seed=3)
    assert x.shape == (600, 2) and x.dtype == torch.float32
    assert y.shape == (600,) and y.dtype == torch.int64 and wide.dtype == torch.bool
    assert x.min() >= 0 and x.max() <= 1
    assert torch.bincount(y, minlength=toy_data.NUM_CLASSES).tolist() == [100] * 6
    assert 0.2 < wide.float().mean() < 0.4


def test_the_seed_draws_the_sets():
    a, b = toy_data.make_world(1, n_train=300, n_test=200), toy_data.make_world(1, n_train=300, n_test=200)
    for (xa, ya, wa), (xb, yb, wb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(wa, wb)
    other = toy_data.make_world(2, n_train=300, n_test=200)
    assert not torch.equal(a[0][0], other[0][0])
    assert not torch.equal(a[0][0][:200], a[1][0])           # train and test differ
    # the test set of a seed does not depend on the training-set size
    assert torch.equal(toy_data.make_world(1, n_train=50, n_test=200)[1][0], a[1][0])


def test_cores_are_easy_and_wide_points_overlap_the_neighbours():
    """The design the mechanisms need: core points sit in their own class's sector (the
    class of the nearest centre), a good share of wide points in a neighbour's."""
    x, y, wide = toy_data.make_points(3000, seed=0)
    pts = (x.numpy() - 0.5) / toy_data.SCALE
    angle = 2 * np.pi * np.arange(toy_data.NUM_CLASSES) / toy_data.NUM_CLASSES
    centres = toy_data.RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    nearest = np.argmin(((pts[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    own = nearest == y.numpy()
    assert own[~wide.numpy()].mean() > 0.99
    assert 0.15 < 1 - own[wide.numpy()].mean() < 0.6


def test_eps_of_the_tier_is_0_3_in_data_units():
    assert toy_data.eps_in_data_units(toy_data.toy_tier().eps) == pytest.approx(0.3)


def test_the_region_grid_covers_the_square_row_by_row():
    g = toy_data.region_grid(4)
    assert g.shape == (16, 2)
    assert g[:, 0].min() == pytest.approx(0.125) and g[:, 1].max() == pytest.approx(0.875)
    assert g[1, 0] > g[0, 0] and g[1, 1] == g[0, 1]      # x varies fastest


# --------------------------------------------------------------------------- measures

def test_push_on_the_margin_matches_the_two_logit_formulas():
    m = torch.tensor([-3.0, -1.0, 0.0, 2.0, 5.0])
    logits = torch.stack([m / 2, -m / 2], dim=1)
    ce, ovr = toy_model.margin_push(logits, torch.zeros(5, dtype=torch.long))
    assert torch.allclose(ce, 2 * torch.sigmoid(-m), atol=1e-6)
    assert torch.allclose(ovr, 2 * torch.sigmoid(-m / 2), atol=1e-6)


def test_ovr_pushes_a_wrong_sample_with_positive_logits_less_than_ce():
    """OVR judges each logit against 0: a true logit of +3 already 'says yes', although a
    wrong class leads with +6; CE only sees the difference."""
    logits = torch.tensor([[3.0, 6.0, -2.0, -2.0]])
    ce, ovr = toy_model.margin_push(logits, torch.tensor([0]))
    assert ovr.item() < 0.6 * ce.item()


def test_push_curve_bins_the_samples():
    margins = np.array([-0.7, -0.2, 0.3, 0.4, 9.0])
    ce, ovr = np.ones(5), np.array([1.0, 2.0, 3.0, 5.0, 1.0])
    out = toy_model.push_curve(margins, ce, ovr, edges=(-1.0, 0.0, 1.0))
    assert out["count"] == [2, 2]          # 9.0 lies beyond the edges
    assert out["ratio"] == [1.5, 4.0]


def _fake(slug, seed, values, push_ratio=None, switch=None):
    run = as_run(slug)
    edges = [-1.0, 0.0, 1.0, 2.0]
    return {"run": run.name(seed), "method": run.method, "options": run.options(),
            "seed": seed, "switch": switch,
            "margins": {"train_adv": {"values": values}},
            "push": {"edges": edges, "count": [1, 1, 1],
                     "ratio": push_ratio or [0.5, 1.5, 4.0]}}


def test_paired_shift_compares_the_same_points_of_the_same_seed():
    at = [_fake("at", 0, [-1.0, 0.5, 2.0]), _fake("at", 1, [0.0, 0.0, 0.0])]
    sovr = [_fake("sovr-r0.4", 0, [-2.0, 1.0, 2.0])]
    shift = toy.paired_margin_shift(at, sovr, [-np.inf, 0.0, 1.0, np.inf])
    assert shift.tolist() == [[-1.0, 0.5, 0.0]]
    empty = toy.paired_margin_shift(at, sovr, [5.0, 6.0])
    assert np.isnan(empty).all()


def test_switch_effect_reads_shifts_pushes_and_switched_shares():
    at = [_fake("at", s, [-1.0, 0.5, 2.0]) for s in (0, 1)]
    sovr = [_fake("sovr-b0.4", s, [-1.5 - s, 0.7, 2.4], switch={"misclassified_share": 0.2 + s / 10})
            for s in (0, 1)]
    out = toy.switch_effect(at + sovr)
    wrong, small, large = (out["shift"]["sovr-b0.4"][g[0]] for g in toy.SHIFT_GROUPS)
    assert wrong[0] == pytest.approx(-1.0) and wrong[1] == pytest.approx(math.sqrt(0.5))
    assert small == pytest.approx((0.2, 0.0)) and large == pytest.approx((0.4, 0.0))
    assert out["push"] == pytest.approx({g[0]: r for g, r in zip(toy.SHIFT_GROUPS, (0.5, 1.5, 4.0))})
    assert out["switched_wrong"]["sovr-b0.4"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="AT runs"):
        toy.switch_effect(sovr)


# --------------------------------------------------------------------------- runs

def test_a_short_run_records_what_the_issue_asks_for(small_results):
    r = json.loads((small_results / "sovr-r0.4-s0.json").read_text())
    for key in ("method", "seed", "clean_acc", "pgd20_ce_acc", "margin_attack_acc",
                "train_margin_quantiles", "train_peaks", "test_peaks", "seconds", "label",
                "options", "tier", "environment", "autoattack", "margins", "push", "regions"):
        assert key in r, key
    assert (r["method"], r["seed"], r["label"]) == ("sovr", 0, "SOVR (ratio 0.4)")
    assert r["tier"]["name"] == "toy" and r["tier"]["epochs"] == 3
    assert "git_commit" in r["environment"]
    assert not {"pgd_acc", "per_point", "slug"} & set(r)   # the CIFAR-10 runner's names only
    for key in ("clean_acc", "pgd20_ce_acc", "margin_attack_acc"):
        assert 0.0 <= r[key] <= 1.0
    assert r["pgd20_ce_acc"] <= r["clean_acc"] and r["margin_attack_acc"] <= r["clean_acc"]
    # robust = right clean and at the PGD point; the per-point bits say the same
    clean, pgd = (np.array([c == "1" for c in r["per_image"][k]]) for k in ("clean", "pgd"))
    assert len(clean) == len(pgd) == 256
    assert r["clean_acc"] == pytest.approx(clean.mean())
    assert r["pgd20_ce_acc"] == pytest.approx((clean & pgd).mean())
    assert r["pgd_point_acc"] == pytest.approx(pgd.mean()) and r["pgd_point_acc"] >= r["pgd20_ce_acc"]
    q = r["train_margin_quantiles"]
    assert q["q10"] <= q["q50"] <= q["q90"]
    assert len(r["train_peaks"]) >= 1 and len(r["test_peaks"]) >= 1
    assert r["seconds"] > 0
    assert r["switched"] == pytest.approx(0.4, abs=0.01)
    assert 0.35 <= r["switch"]["fraction"] <= 0.45
    aa = r["autoattack"]
    assert "error" not in aa, aa
    assert aa["n"] == 64 and 0.0 <= aa["robust"] <= aa["clean"]
    # AutoAttack's verdict per point, as the CIFAR-10 runner keeps it: the per-image tests
    # of the verdicts apply to the toy world too; PGD on the same first 64 points beside it
    assert len(aa["broken_by"]) == 64
    assert sum(b is None for b in aa["broken_by"]) / 64 == aa["robust"]
    robust = [c == p == "1" for c, p in zip(r["per_image"]["clean"], r["per_image"]["pgd"])]
    assert r["pgd_acc_on_aa_subset"] == pytest.approx(np.mean(robust[:64]))
    assert len(r["regions"]["labels"]) == r["regions"]["grid"] ** 2
    assert set(r["regions"]["labels"]) <= set("012345")
    assert len(r["margins"]["train_adv"]["values"]) == 256


def test_the_command_line_writes_one_file_per_run_and_skips_finished_ones(tmp_path, capsys):
    args = ["--methods", "gairat,sovr-t1", "--seeds", "1", "--out", str(tmp_path)]
    for item in SMALL_SET + ["n_autoattack=0"]:   # AutoAttack is tested above; here it costs time
        args += ["--set", item]
    assert toy.main(args) == 0
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert names == ["gairat-s1.json", "sovr-t1-s1.json"]
    stamp = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    capsys.readouterr()
    assert toy.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") == 2
    assert stamp == {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    r = json.loads((tmp_path / "sovr-t1-s1.json").read_text())
    assert r["options"]["rule"] == "threshold" and r["seed"] == 1
    assert r["autoattack"] == {"skipped": "the tier's n_autoattack is 0"}
    assert "--methods gairat,sovr-t1" in r["command"]


def test_the_command_line_refuses_an_unknown_run(tmp_path):
    with pytest.raises(SystemExit):
        toy.main(["--methods", "sovr-x1", "--out", str(tmp_path)])


def test_figures_are_drawn_from_the_files(small_results):
    results = result_files.load_results(small_results, collapsed=True)
    x = toy_data.make_world(0, n_train=256, n_test=256)[0][0]
    for fig in (toy_plots.plot_toy_regions(results, x, eps=0.0375), toy_plots.plot_toy_margins(results),
                toy_plots.plot_toy_accuracy(results), toy_plots.plot_toy_switch(results)):
        assert isinstance(fig, Figure)
    paths = toy.plot_toy_results(small_results)
    assert sorted(p.name for p in paths) == ["toy_accuracy.png", "toy_margins.png",
                                             "toy_regions.png", "toy_switch.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    table = toy_plots.toy_table(results)
    assert "| AT | 1 |" in table and "| SOVR (ratio 0.4) | 1 |" in table
    assert toy.results_note(results).startswith("toy tier: MLP 2-128-128-6, 256 training points, "
                                                "3 steps of batch 256")


def test_the_noise_control_is_at_again_with_another_initialisation(small_results):
    tier = toy_data.toy_tier(**SMALL)
    control = toy.run_control([0], tier, out_dir=small_results)
    assert (small_results / toy.CONTROL_FILE).exists()
    assert toy.load_control(small_results)["seeds"] == [0]
    loaded = result_files.load_results(small_results, collapsed=True)
    assert [r["run"] for r in loaded] == ["at-s0", "sovr-r0.4-s0"]   # the two runs, not the control
    at = json.loads((small_results / "at-s0.json").read_text())
    values = control["runs"][0]["margins"]["train_adv"]["values"]
    assert len(values) == 256 and values != at["margins"]["train_adv"]["values"]
    effect = toy.switch_effect(loaded, control)
    assert set(effect["shift"]) == {"sovr-r0.4", "control"}
    assert "control" not in effect["switched_wrong"]


# --------------------------------------------------------------------------- explorer

@pytest.fixture(scope="module")
def at_model():
    model, _, world, _ = toy_model.train_toy("at", 0, toy_data.toy_tier(**SMALL))
    return model, world


def test_a_move_fine_tunes_a_copy_and_measures_held_out_points(at_model):
    model, world = at_model
    before = [p.detach().clone() for p in model.parameters()]
    kwargs = dict(tier=toy_data.toy_tier(), steps=4, batch_size=64, seed=1)
    a = toy_model.toy_move(model, world, rule="ratio", value=0.5, **kwargs)
    b = toy_model.toy_move(model, world, rule="ratio", value=0.5, **kwargs)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    assert a["margins"] == b["margins"] and a["margin_attack_acc"] == b["margin_attack_acc"]
    assert len(a["margins"]) == min(toy_model.EXPLORER_HELDOUT, 256)
    assert a["switched_fraction"] == pytest.approx(0.5)
    assert a["label"] == "SOVR (ratio 0.5)" and a["steps"] == 4
    none = toy_model.toy_move(model, world, rule="threshold", value=-1e6, **kwargs)
    assert none["switched_fraction"] == 0.0


def test_the_toy_explorer_redraws_when_the_slider_moves(at_model):
    model, world = at_model
    ex = ToyExplorer(model, world, tier=toy_data.toy_tier(), steps=3, batch_size=64)
    label, png = ex.label.value, ex.figure.value
    assert label == "switched to OVR: 40.6% of samples"     # round(0.4 * 64) = 26 of 64
    ex.slider.value = 1.0
    assert ex.message.value == ""
    assert ex.label.value == "switched to OVR: 100.0% of samples"
    assert ex.figure.value != png
    ex.rule_buttons.value = "boundary"
    assert ex.slider.value == pytest.approx(0.4) and ex.slider.max == 1.0
    ex.rule_buttons.value = "threshold"
    assert (ex.slider.min, ex.slider.max) == (-2.0, 4.0)
    assert "margin attack" in ex.stats.value
    assert "against CE fine-tuned from the same start" in ex.stats.value


MEASURES = ("margins", "q10", "q50", "q90", "pgd_acc", "clean_acc", "margin_attack_acc",
            "regions", "grid", "eval_steps", "margin_steps", "settings")
FT = {"tier": toy_data.toy_tier(), "steps": 4, "batch_size": 64, "seed": 1}


def test_ratio_0_is_the_toy_ce_reference_exactly(at_model):
    """The explorer's reference is CE fine-tuned from the same start with the same steps,
    seed and batches, measured on the same points: SOVR at ratio 0 gives it to the bit."""
    model, world = at_model
    before = [p.detach().clone() for p in model.parameters()]
    ref = toy_model.toy_reference(model, world, **FT)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    assert ref["label"] == toy_model.TOY_CE_LABEL == "CE fine-tuned (ratio 0)"
    assert (ref["rule"], ref["value"], ref["switched_fraction"]) == ("ratio", 0.0, 0.0)
    assert ref["settings"]["steps"] == 4 and ref["settings"]["batch_size"] == 64
    zero = toy_model.toy_move(model, world, rule="ratio", value=0.0, **FT)
    assert {k: zero[k] for k in MEASURES} == {k: ref[k] for k in MEASURES}
    assert toy_model.check_toy_reference(ref, zero) is ref
    again = toy_model.toy_reference(model, world, **FT)           # pure
    assert {k: again[k] for k in MEASURES} == {k: ref[k] for k in MEASURES}
    one = toy_model.toy_move(model, world, rule="ratio", value=1.0, **FT)
    assert one["margins"] != ref["margins"]
    other = toy_model.toy_move(model, world, rule="ratio", value=0.0, **{**FT, "steps": 5})
    with pytest.raises(ValueError, match="steps 4 != 5"):
        toy_model.check_toy_reference(ref, other)
    with pytest.raises(TypeError):
        toy_model.check_toy_reference({"margins": []}, zero)


def test_the_toy_explorer_computes_its_ce_reference_once(at_model, monkeypatch):
    from sovr_tutorial.figures import toy_widgets
    model, world = at_model
    calls = []
    real = toy_widgets.toy_reference
    monkeypatch.setattr(toy_widgets, "toy_reference",
                        lambda *a, **k: calls.append(k) or real(*a, **k))
    ex = ToyExplorer(model, world, compute=False, **FT)
    assert calls == []                                        # not before the first move
    zero, png = ex.result("ratio", 0.0)
    assert {k: zero[k] for k in MEASURES} == {k: ex.ce_reference[k] for k in MEASURES}
    ex.result("ratio", 1.0)
    ex.result("threshold", 2.0)
    assert len(calls) == 1 and calls[0]["steps"] == 4 and calls[0]["seed"] == 1
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # the first figure's layout is kept for the next ones
    assert set(ex._layout) == {"left", "right", "bottom", "top", "wspace", "hspace"}


def test_the_explorer_defaults_are_its_documented_choices():
    """60 steps at lr 0.1, batch 256, PGD-5; PGD-20 on the margin (see the widget's text)."""
    import inspect
    params = inspect.signature(toy_model.toy_move).parameters
    assert {k: params[k].default for k in ("steps", "lr", "batch_size", "attack_steps",
                                           "margin_steps")} == \
        {"steps": 60, "lr": 0.1, "batch_size": 256, "attack_steps": 5, "margin_steps": 20}
    assert inspect.signature(toy_model.toy_reference).parameters["steps"].default == 60
    assert "60 fine-tuning steps" in ToyExplorer.__doc__ and "PGD-20 on the" in ToyExplorer.__doc__


def test_the_explorer_margin_attack_reports_what_pgd_50_does(at_model):
    """PGD-20 on the margin (the explorer's) against PGD-50 (what it used before) on AT and
    on a copy fine-tuned with SOVR: the same accuracy to within 1 point (the benchmark checks
    the toy tier's full AT model and its moves: 0.1 point there)."""
    from sovr_tutorial.runs import Run
    from sovr_tutorial.train import finetune
    model, world = at_model
    tier = toy_data.toy_tier()
    (x_tr, y_tr, _), (x_te, y_te, _) = world
    moved, _ = finetune(model, Run("sovr", rule="ratio", value=1.0), x_tr, y_tr,
                        tier=tier.replace(train_steps=5), steps=4, batch_size=64)
    for m in (model, moved):
        acc = {steps: toy_model.measure_toy_model(m, x_te, y_te, tier=tier, margin_steps=steps)
               ["margin_attack_acc"] for steps in (toy_model.EXPLORER_MARGIN_STEPS, 50)}
        assert abs(acc[20] - acc[50]) <= 0.01, acc
