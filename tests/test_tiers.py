"""Tiers: their overrides from the command line, their results folders, their PGD step size."""
import pytest

from sovr_tutorial.experiments import default_folder
from sovr_tutorial.tiers import TIERS, get_tier, parse_overrides, pgd_step_size


def test_overrides_are_parsed_to_the_fields_types():
    got = parse_overrides(["n_train=2000", "eps=4/255", "model=cnn", "lr=0.01",
                           "precision=bf16"])
    assert got == {"n_train": 2000, "eps": pytest.approx(4 / 255), "model": "cnn",
                   "lr": 0.01, "precision": "bf16"}
    assert isinstance(got["n_train"], int)
    assert get_tier("cpu", **got).eps == pytest.approx(4 / 255)


@pytest.mark.parametrize("item, words", [
    ("n_train", "FIELD=VALUE"), ("name=cpu", "FIELD"), ("size=3", "FIELD"),
    ("n_train=2.5", "not a valid"), ("eps=a/255", "not a valid"),
])
def test_bad_overrides_raise(item, words):
    with pytest.raises(ValueError, match=words):
        parse_overrides([item])


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        get_tier("cpu", precision="fp16")


@pytest.mark.parametrize("changes, folder", [
    ({}, "cpu"),
    ({"epochs": 30}, "cpu-e30"),           # the stored results/cpu-e30 keep their name
    ({"lr": 0.01}, "cpu-lr0.01"),          # and results/cpu-lr0.01
    ({"epochs": 30, "lr": 0.01}, "cpu-e30-lr0.01"),
    ({"epochs": 10}, "cpu"),               # the tier's own value changes nothing
    ({"model": "cnn", "width": 32, "n_train": 1000, "epochs": 60, "eps": 2 / 255},
     "cpu-cnn-w32-n1000-e60-eps2"),
    ({"precision": "bf16"}, "cpu-bf16"),
])
def test_runs_with_other_settings_get_their_own_folder(changes, folder):
    assert default_folder(get_tier("cpu", **changes)) == folder


def test_the_step_size_rule():
    eps = 8 / 255
    # eps / 4 from 10 steps on: the stored cpu-tier numbers used 2/255 for PGD-10 and PGD-20
    assert pgd_step_size(eps, 10) == pytest.approx(2 / 255)
    assert pgd_step_size(eps, 20) == pytest.approx(2 / 255)
    # fewer steps take longer ones (2.5 eps / steps), never longer than eps
    assert pgd_step_size(eps, 5) == pytest.approx(4 / 255)
    assert pgd_step_size(eps, 1) == pytest.approx(eps)


def test_a_tier_keeps_its_alpha_for_its_own_step_counts():
    cpu, ci = get_tier("cpu"), get_tier("ci")
    assert cpu.step_size(cpu.train_steps) == cpu.step_size(cpu.eval_steps) == cpu.alpha
    assert ci.step_size(ci.train_steps) == ci.alpha == 2 / 255      # 3 steps
    assert cpu.step_size(5) == pytest.approx(pgd_step_size(cpu.eps, 5))


def test_the_small_tier_is_the_configuration_the_search_picked():
    # the search ran it as cpu-tier overrides; as a named tier it must train the same runs
    searched = TIERS["small"].replace(name="cpu")
    assert default_folder(searched) == "cpu-cnn-w32-n1000-nheldout_200-e60-eps2-alpha0.5-burn27-bf16"
