"""Tiers: their overrides from the command line, their results folders, their PGD step size."""
import dataclasses

import pytest

from sovr_tutorial.lab.experiments import default_folder
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


def test_a_tier_states_its_two_step_sizes_and_every_other_attack_takes_the_rule():
    cpu, ci = get_tier("cpu"), get_tier("ci")
    assert cpu.eval_step_size == cpu.alpha == 2 / 255          # eval_alpha unset: alpha
    assert ci.alpha == 2 / 255                                  # 3 training steps, stated
    assert ci.replace(eval_alpha=1 / 255).eval_step_size == 1 / 255
    assert parse_overrides(["eval_alpha=1/255"]) == {"eval_alpha": pytest.approx(1 / 255)}
    # no coincidence of step counts decides: the tier has no step_size(steps) any more, and
    # the rule for ci's own 3 steps is not ci's stated alpha
    assert not hasattr(ci, "step_size")
    assert pgd_step_size(ci.eps, ci.train_steps) == pytest.approx(2.5 * ci.eps / 3) != ci.alpha


def test_a_checkpoint_from_before_eval_alpha_resumes_as_the_same_run():
    from sovr_tutorial.train import _settings
    tier = dataclasses.asdict(get_tier("cpu"))
    old = {k: v for k, v in tier.items() if k != "eval_alpha"}
    assert _settings({"tier": old}) == _settings({"tier": tier})
    assert _settings({"tier": {**tier, "eval_alpha": 1 / 255}}) != _settings({"tier": tier})


def test_the_small_tier_is_the_configuration_the_search_picked():
    # the search ran it as cpu-tier overrides in bf16 on a CPU with native bf16, where the
    # tier's "auto" precision is bf16 too; as a named tier it must train the same runs
    assert TIERS["small"].precision == "auto"
    searched = TIERS["small"].replace(name="cpu", precision="bf16")
    assert default_folder(searched) == "cpu-cnn-w32-n1000-nheldout_200-e60-eps2-alpha0.5-burn27-bf16"


def test_auto_precision_takes_bf16_only_where_it_runs_natively(monkeypatch):
    from sovr_tutorial import devices
    assert isinstance(devices.cpu_runs_bf16_natively(), bool)   # this machine's answer
    assert devices.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(devices, "cpu_runs_bf16_natively", lambda: False)   # AVX2 only
    assert devices.resolve_precision("auto", "cpu") == "fp32"
    assert devices.resolve_precision("bf16", "cpu") == "bf16"   # as stated, even if slow
    monkeypatch.setattr(devices, "cpu_runs_bf16_natively", lambda: True)    # AVX-512 / AMX
    assert devices.resolve_precision("auto", "cpu") == "bf16"
    assert devices.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        devices.resolve_precision("fp16", "cpu")
