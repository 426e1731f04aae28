"""The widgets' callbacks, called directly (no browser): pure, deterministic, robust."""
import math
import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import sovr_tutorial.figures.eps_widgets as ew
import sovr_tutorial.figures.widgets as sw
from sovr_tutorial import Run, accuracy, get_tier
from sovr_tutorial.figures import explorer as explorer_plots, widget_parts

# a tiny fine-tune: 4 SGD steps of 20 images, margins of 32 images -> well under a second
FT = {"tier": "ci", "steps": 4, "batch_size": 20}


@pytest.fixture(scope="module")
def data(small_split):
    (x, y), (xe, ye) = small_split
    return x[:120], y[:120], xe[:32].float() / 255, ye[:32]


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- eps_view

def test_eps_zero_is_the_clean_accuracy_and_flips_nothing(trained_model, eval_batch):
    x, y = eval_batch
    info, fig = ew.eps_view(trained_model, x, y, 0.0)
    assert info["accuracy"] == info["clean_accuracy"] == pytest.approx(accuracy(trained_model, x, y))
    assert info["n_flipped"] == 0 and info["n"] == len(y)
    assert isinstance(fig, Figure) and len(fig.axes) == 4 * 6   # 3 image rows + class probabilities


def test_larger_eps_never_raises_accuracy_much(trained_model, eval_batch):
    x, y = eval_batch
    accs = [ew.eps_view(trained_model, x, y, k / 255, steps=5)[0]["accuracy"] for k in (0, 2, 8)]
    assert accs[2] < accs[0], f"PGD at 8/255 did not lower the accuracy: {accs}"
    for a, b in zip(accs, accs[1:]):
        assert b <= a + 0.05, f"accuracy rose with eps: {accs}"


def test_eps_view_is_deterministic_and_leaves_rng_and_model_alone(trained_model, eval_batch):
    x, y = eval_batch
    before = _state(trained_model)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    a, _ = ew.eps_view(trained_model, x, y, 4 / 255, steps=3, n_show=2)
    b, _ = ew.eps_view(trained_model, x, y, 4 / 255, steps=3, n_show=2)
    assert a == b
    assert torch.equal(torch.get_rng_state(), rng)
    assert _same_state(before, _state(trained_model))


def test_eps_view_accepts_uint8_and_one_step(trained_model, small_split):
    _, (xe, ye) = small_split
    info, fig = ew.eps_view(trained_model, xe[:8], ye[:8], 16 / 255, steps=1, n_show=20)
    assert info["n"] == 8 and len(fig.axes) == 4 * 8     # n_show capped at the batch


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps"), ({"eps": 8.0}, "eps"), ({"eps": float("nan")}, "eps"),
    ({"eps": 0.03, "steps": 0}, "steps"), ({"eps": 0.03, "n_show": 0}, "n_show"),
])
def test_eps_view_rejects_bad_arguments(trained_model, eval_batch, kwargs, match):
    x, y = eval_batch
    with pytest.raises(ValueError, match=match):
        ew.eps_view(trained_model, x, y, **kwargs)


def test_eps_view_rejects_images_outside_unit_range(trained_model, eval_batch):
    x, y = eval_batch
    with pytest.raises(ValueError, match="x must be images in"):
        ew.eps_view(trained_model, x * 255, y, 0.01)


def test_eps_explorer_slider_updates_the_label(trained_model, eval_batch):
    x, y = eval_batch
    box = ew.eps_explorer(trained_model, x, y, steps=3)
    ex = box.explorer
    assert "sovr-eps-slider" in ex.slider._dom_classes
    assert ex.slider.description == "eps (/255)" and ex.slider.value == 8 and ex.slider.max == 16
    assert ex.label.value.startswith("eps = 8/255") and ex.figure.value[:4] == b"\x89PNG"
    ex.slider.value = 0
    assert ex.label.value.startswith("eps = 0/255") and "0 of 64" in ex.label.value
    other = ew.eps_explorer(trained_model, x, y, steps=3)
    assert other is not box and other.explorer.cache is not ex.cache
    assert other.explorer.slider.value == 8


# --------------------------------------------------------------------------- explore_threshold

def test_ratio_0_and_1_switch_nothing_and_everything(trained_model, data):
    x, y, xe, ye = data
    a, fa = sw.explore_threshold(trained_model, x, y, xe, ye, rule="ratio", value=0.0, **FT)
    b, fb = sw.explore_threshold(trained_model, x, y, xe, ye, rule="ratio", value=1.0, **FT)
    assert a["switched_fraction"] == 0.0 and b["switched_fraction"] == 1.0
    assert a["switched_per_step"] == [0.0] * 4 and b["switched_per_step"] == [1.0] * 4
    assert a["margins"] != b["margins"], "CE and OVR fine-tuning gave identical margins"
    assert widget_parts.figure_png(fa) != widget_parts.figure_png(fb)
    for info in (a, b):
        assert set(info) >= {"rule", "value", "switched_fraction", "margin_median",
                             "frac_small", "pgd_acc"}
        assert 0 <= info["pgd_acc"] <= 1 and 0 <= info["frac_small"] <= 1
        assert info["n_eval"] == len(ye) and math.isfinite(info["margin_median"])


def test_base_model_is_never_changed(trained_model, data):
    x, y, xe, ye = data
    before = _state(trained_model)
    grads = [None if p.grad is None else p.grad.clone() for p in trained_model.parameters()]
    mode = trained_model.training
    sw.explore_threshold(trained_model, x, y, xe, ye, value=1.0, **FT)
    sw.explore_threshold(trained_model, x, y, xe, ye, rule="threshold", value=6.0, **FT)
    assert _same_state(before, _state(trained_model))
    assert trained_model.training == mode
    for g, p in zip(grads, trained_model.parameters()):
        assert (g is None and p.grad is None) or torch.equal(g, p.grad)


def test_same_arguments_give_the_same_info(trained_model, data):
    x, y, xe, ye = data
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    a, _ = sw.explore_threshold(trained_model, x, y, xe, ye, value=0.4, **FT)
    torch.manual_seed(99)   # the global stream must not matter
    b, _ = sw.explore_threshold(trained_model, x, y, xe, ye, value=0.4, **FT)
    assert a == b
    c, _ = sw.explore_threshold(trained_model, x, y, xe, ye, value=0.4, seed=1, **FT)
    assert c["margins"] != a["margins"]
    torch.manual_seed(7)
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.fixture(scope="module")
def ce_ref(trained_model, data):
    """The CE reference of the FT settings on the held-out images of ``data``."""
    x, y, xe, ye = data
    return sw.ce_reference(trained_model, x, y, xe, ye, **FT)


@pytest.mark.parametrize("rule, value", [("ratio", 0.0), ("ratio", 1.0),
                                         ("threshold", -2.0), ("threshold", 6.0)])
def test_extremes_work(trained_model, data, rule, value, ce_ref):
    x, y, xe, ye = data
    info, fig = sw.explore_threshold(trained_model, x, y, xe, ye, rule=rule, value=value,
                                     reference=ce_ref, **FT)
    assert 0.0 <= info["switched_fraction"] <= 1.0
    assert info["rule"] == rule and info["value"] == value
    assert isinstance(fig, Figure)


def test_the_explorer_measures_with_the_packages_adversarial_margins(trained_model, data, ce_ref):
    """The CE reference's margins are adversarial_margins of its fine-tuned model at the
    explorer's PGD (the tier's eps, eval_steps, the step-size rule, the fine-tune's seed)."""
    from sovr_tutorial.evaluate import adversarial_margins
    from sovr_tutorial.tiers import pgd_step_size
    from sovr_tutorial.train import finetune
    x, y, xe, ye = data
    x = widget_parts.float_images(x, "x")
    tier = get_tier("ci")
    s = ce_ref["settings"]
    ft_tier = tier.replace(train_steps=s["attack_steps"],
                           alpha=pgd_step_size(tier.eps, s["attack_steps"]))
    model, _ = finetune(trained_model, Run("sovr", value=0.0), x, y, tier=ft_tier,
                        steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"])
    out = adversarial_margins(model, xe, ye, eps=tier.eps, steps=s["eval_steps"], seed=s["seed"])
    assert out["margin"].shape == (len(ye),)
    assert np.allclose(out["margin"], ce_ref["margins"], atol=1e-6)


def test_ratio_0_is_the_ce_reference_exactly(trained_model, data, ce_ref):
    """SOVR at ratio 0 is CE: the same fine-tune, the same margins, no difference drawn."""
    x, y, xe, ye = data
    info, fig = sw.explore_threshold(trained_model, x, y, xe, ye, value=0.0, reference=ce_ref,
                                     **FT)
    assert info["margins"] == ce_ref["margins"]
    assert info["pgd_acc"] == ce_ref["pgd_acc"] and info["settings"] == ce_ref["settings"]
    assert info["median_shift"] == 0.0 and info["pgd_acc_shift"] == 0.0
    texts = [t for ax in fig.axes for t in ax.get_legend_handles_labels()[1]]
    assert any(t.startswith("CE fine-tuned (ratio 0)") for t in texts), texts
    assert any(t.startswith("SOVR fine-tuned, ratio 0 = CE") for t in texts), texts
    assert "SOVR - CE: median margin +0.00, PGD accuracy +0.0 pts" in fig.axes[0].get_title()
    # computed here when not passed: the same reference
    again, _ = sw.explore_threshold(trained_model, x, y, xe, ye, value=0.0, **FT)
    assert again == info


def test_a_nonzero_ratio_differs_from_the_ce_reference(trained_model, data, ce_ref):
    x, y, xe, ye = data
    info, fig = sw.explore_threshold(trained_model, x, y, xe, ye, value=1.0, reference=ce_ref,
                                     **FT)
    assert info["margins"] != ce_ref["margins"]
    assert info["median_shift"] == pytest.approx(info["margin_median"] - ce_ref["margin_median"])
    assert info["pgd_acc_shift"] == pytest.approx(info["pgd_acc"] - ce_ref["pgd_acc"])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any(t.startswith("SOVR fine-tuned, ratio 1, median") for t in labels), labels
    _, t_fig = sw.explore_threshold(trained_model, x, y, xe, ye, rule="threshold", value=1.0,
                                    reference=ce_ref, **FT)
    labels = t_fig.axes[0].get_legend_handles_labels()[1]
    assert any(t.startswith("SOVR fine-tuned, margin threshold 1") for t in labels), labels


def test_ce_reference_is_ce_from_the_same_start(trained_model, data, ce_ref):
    x, y, xe, ye = data
    assert ce_ref["label"] == sw.CE_LABEL == "CE fine-tuned (ratio 0)"
    assert ce_ref["switched_fraction"] == 0.0 and (ce_ref["rule"], ce_ref["value"]) == ("ratio", 0.0)
    assert ce_ref["settings"]["n_eval"] == len(ye) and ce_ref["settings"]["steps"] == 4
    assert sw.ce_reference(trained_model, x, y, xe, ye, **FT) == ce_ref   # pure


@pytest.mark.parametrize("change", [{"seed": 1}, {"steps": 3}, {"eval_steps": 3}, {"lr": 0.01}])
def test_a_reference_with_other_settings_is_refused(trained_model, data, ce_ref, change):
    x, y, xe, ye = data
    with pytest.raises(ValueError, match="other settings"):
        sw.explore_threshold(trained_model, x, y, xe, ye, value=0.4, reference=ce_ref,
                             **{**FT, **change})


def test_threshold_6_switches_everything_and_minus_100_nothing(trained_model, data):
    x, y, xe, ye = data
    hi, _ = sw.explore_threshold(trained_model, x, y, xe, ye, rule="threshold", value=100.0, **FT)
    lo, _ = sw.explore_threshold(trained_model, x, y, xe, ye, rule="threshold", value=-100.0, **FT)
    assert hi["switched_fraction"] == 1.0 and lo["switched_fraction"] == 0.0


@pytest.mark.parametrize("rule, value, exc, match", [
    ("ratio", -0.1, ValueError, "value"), ("ratio", 1.5, ValueError, "value"),
    ("ratio", float("nan"), ValueError, "value"), ("threshold", float("nan"), ValueError, "value"),
    ("threshold", float("inf"), ValueError, "value"), ("margin", 0.5, ValueError, "rule"),
    ("ratio", "0.4", TypeError, "value"),
])
def test_invalid_inputs_raise(trained_model, data, rule, value, exc, match):
    x, y, xe, ye = data
    with pytest.raises(exc, match=match):
        sw.explore_threshold(trained_model, x, y, xe, ye, rule=rule, value=value, **FT)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps"), ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"tier": "tpu"}, "tier"),
    ({"reference": {"margins": [float("nan")], "settings": {}}}, "finite margins"),
])
def test_invalid_options_raise(trained_model, data, kwargs, match):
    x, y, xe, ye = data
    with pytest.raises(ValueError, match=match):
        sw.explore_threshold(trained_model, x, y, xe, ye, value=0.4, **{**FT, **kwargs})


def test_compare_thresholds_draws_one_panel_per_value(trained_model, data, ce_ref):
    x, y, xe, ye = data
    infos = [sw.explore_threshold(trained_model, x, y, xe, ye, value=v, reference=ce_ref, **FT)[0]
             for v in (0.0, 1.0)]
    fig = explorer_plots.compare_thresholds(infos, ce_ref, tier="ci")
    assert len(fig.axes) == 2
    assert "vs CE: median +0.00, PGD acc +0.0 pts" in fig.axes[0].get_title()
    for ax in fig.axes:
        assert ax.get_legend_handles_labels()[1][0].startswith("CE fine-tuned (ratio 0)")
    with pytest.raises(ValueError):
        explorer_plots.compare_thresholds([], ce_ref)
    other = dict(infos[1], settings={**infos[1]["settings"], "seed": 5})
    with pytest.raises(ValueError, match="other settings"):
        explorer_plots.compare_thresholds([other], ce_ref)


# --------------------------------------------------------------------------- the widget

def _explorer(trained_model, data, **kw):
    x, y, xe, ye = data
    return sw.threshold_explorer(trained_model, x, y, xe, ye, tier="ci", steps=4, batch_size=20,
                                 **kw).explorer


def test_setting_the_slider_updates_the_label(trained_model, data):
    ex = _explorer(trained_model, data)
    assert ex.label.value == "switched to OVR: 40.0% of samples"     # computed at build
    png = ex.figure.value
    ex.slider.value = 0.6
    assert ex.label.value == "switched to OVR: 60.0% of samples"
    assert ex.figure.value != png and ex.message.value == ""
    assert re.match(r"ratio 0\.6: median adversarial margin", ex.stats.value)


def test_widget_parts_have_stable_descriptions_and_css_classes(trained_model, data):
    ex = _explorer(trained_model, data, compute=False)
    assert ex.slider.description == "switching ratio"
    assert (ex.slider.min, ex.slider.max, ex.slider.step) == (0.0, 1.0, 0.1)
    assert ex.slider.continuous_update is False
    assert "sovr-threshold-slider" in ex.slider._dom_classes
    assert "sovr-switched-label" in ex.label._dom_classes
    assert "sovr-rule-toggle" in ex.rule_buttons._dom_classes
    assert "sovr-threshold-figure" in ex.figure._dom_classes
    assert ex.cache == {} and ex.figure.value == b"" and ex._reference is None


def test_building_twice_gives_independent_widgets(trained_model, data):
    a = _explorer(trained_model, data, compute=False)
    b = _explorer(trained_model, data, compute=False)
    assert a.widget is not b.widget and a.slider is not b.slider and a.cache is not b.cache
    a.slider.value = 1.0
    assert b.slider.value == pytest.approx(0.4) and b.cache == {}
    assert a.label.value == "switched to OVR: 100.0% of samples"
    assert b.label.value.endswith("(not computed yet)")


def test_rule_toggle_changes_the_range_and_back(trained_model, data):
    ex = _explorer(trained_model, data, compute=False)
    ex.slider.value = 0.2
    ex.rule_buttons.value = "threshold"
    assert (ex.slider.min, ex.slider.max, ex.slider.description) == (-2.0, 6.0, "margin threshold")
    assert ex.slider.value == 1.0
    assert ("threshold", 1.0) in ex.cache and ex.message.value == ""
    ex.slider.value = 6.0
    assert ("threshold", 6.0) in ex.cache
    ex.rule_buttons.value = "ratio"
    assert (ex.slider.min, ex.slider.max, ex.slider.description) == (0.0, 1.0, "switching ratio")
    assert ex.slider.value == pytest.approx(0.2)
    assert ex.label.value == "switched to OVR: 20.0% of samples"


def test_seen_values_come_from_the_cache(trained_model, data, monkeypatch):
    ex = _explorer(trained_model, data, compute=False)
    calls, refs = [], []
    real, real_ref = sw.explore_threshold, sw.ce_reference
    monkeypatch.setattr(sw, "explore_threshold", lambda *a, **k: calls.append(k["value"]) or real(*a, **k))
    monkeypatch.setattr(sw, "ce_reference", lambda *a, **k: refs.append(k) or real_ref(*a, **k))
    for v in (0.0, 1.0, 0.5, 0.0, 1.0, 0.0):
        ex.slider.value = v
    assert calls == [0.0, 1.0, 0.5]
    assert len(refs) == 1, "the CE reference must be computed once per explorer"
    assert all(c[0]["median_shift"] == 0.0 for k, c in ex.cache.items() if k == ("ratio", 0.0))
    assert ex.label.value == "switched to OVR: 0.0% of samples"


def test_fast_drag_ends_on_the_last_value(trained_model, data):
    ex = _explorer(trained_model, data, compute=False)
    for v in (0.1, 0.9, 0.3, 0.0, 1.0, 0.5):
        ex.slider.value = v
    assert ex.label.value == "switched to OVR: 50.0% of samples"
    assert ex.figure.value == ex.cache[("ratio", 0.5)][1]


def test_a_failing_callback_shows_a_message_and_the_widget_stays_usable(trained_model, data):
    ex = _explorer(trained_model, data, compute=False)
    ex.slider.value = 0.3
    label, png = ex.label.value, ex.figure.value
    assert ex.show("ratio", float("nan")) is None
    assert "ValueError" in ex.message.value and "value" in ex.message.value
    assert ex.label.value == label and ex.figure.value == png      # last good picture kept
    ex.slider.value = 0.7
    assert ex.label.value == "switched to OVR: 70.0% of samples" and ex.message.value == ""
