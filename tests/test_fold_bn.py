"""BatchNorm folded into the convs for the training attack (the tier option ``fold_bn``):
the folded model computes the eval-mode model's outputs and input gradients to float
rounding, follows the model's weights after a step, and training with it differs from
training without it only by rounding; off by default, so stored results stay reproducible."""
import copy

import pytest
import torch

from sovr_tutorial import build_model, get_tier, train
from sovr_tutorial.attacks import _pgd
from sovr_tutorial.models import FoldedBN, fold_bn
from sovr_tutorial.tiers import TIERS, parse_overrides
from sovr_tutorial.train import attack_view, step_models


def _with_bn_statistics(model, seed=0):
    """Non-trivial running statistics and affine parameters in every BatchNorm."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(0.3 + 2 * torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.4 * torch.rand(c, generator=g) - 0.2)
    return model


def _output_and_input_grad(model, x):
    x = x.clone().requires_grad_(True)
    out = model(x)
    y = torch.arange(len(x)) % out.shape[1]               # fixed labels: no ties to round
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), [x])
    return out.detach(), grad


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name, width, folded, left", [("small_cnn", 16, 3, 0), ("cnn", 8, 6, 0),
                                                       ("preact_resnet18", 64, 8, 9)])
def test_the_folded_model_matches_the_eval_mode_model(name, width, folded, left):
    torch.manual_seed(0)
    model = _with_bn_statistics(build_model(name, width=width)).eval()
    before = copy.deepcopy(model.state_dict())
    view = fold_bn(model).eval()
    assert view.folded == folded
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in view.modules()) == left
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # the math, in float64: equal to rounding
    exact = copy.deepcopy(model).double()
    out64, grad64 = _output_and_input_grad(exact, x.double())
    out64_f, grad64_f = _output_and_input_grad(fold_bn(exact).eval(), x.double())
    assert _rel(out64_f, out64) < 1e-12 and _rel(grad64_f, grad64) < 1e-12
    # in float32, as training runs it: outputs and input gradients within 1e-5, image by
    # image. A ReLU network's gradient jumps where a pre-activation crosses 0, so an image
    # with one within rounding of 0 (this PreAct batch's image 1 has one at 4e-8) may take
    # either side in either model; all but one image must agree
    out, grad = _output_and_input_grad(model, x)
    out_f, grad_f = _output_and_input_grad(view, x)
    assert max(_rel(out_f[i], out[i]) for i in range(8)) < 1e-5
    close = [_rel(grad_f[i], grad[i]) < 1e-5 for i in range(8)]
    assert sum(close) >= (7 if name == "preact_resnet18" else 8), close
    assert not torch.equal(out_f, out)                    # really another computation
    # the model itself is untouched, and a train-mode model is folded as its eval mode
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    model.train()
    with torch.no_grad():
        assert _rel(fold_bn(model).eval()(x), out) < 1e-5


def test_refresh_follows_the_models_weights_and_statistics():
    torch.manual_seed(0)
    model = _with_bn_statistics(build_model("small_cnn", width=8)).train()
    view = fold_bn(model)
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = model(x).logsumexp(1).mean()      # train mode: the running statistics move too
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        now = model(x)
        assert _rel(view.eval()(x), now) > 1e-3           # stale until refreshed
        assert _rel(view.refresh()(x), now) < 1e-5


def test_pgd_on_the_folded_model_finds_nearly_the_same_images():
    torch.manual_seed(0)
    model = _with_bn_statistics(build_model("small_cnn", width=16)).train()
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.arange(32) % 10
    torch.manual_seed(7)
    plain = _pgd(model, x, y, 8 / 255, 2 / 255, 10)
    torch.manual_seed(7)
    folded = _pgd(fold_bn(model), x, y, 8 / 255, 2 / 255, 10)
    assert model.training                                 # the attack gave the mode back
    assert (plain == folded).float().mean() > 0.99       # a sign flips only at a ~0 gradient
    assert (plain - folded).abs().max() <= 2 * 8 / 255 + 1e-6


def test_the_option_is_off_in_every_tier_and_parses_as_a_flag():
    assert all(t.fold_bn is False for t in TIERS.values())
    assert parse_overrides(["fold_bn=true", "epochs=2"]) == {"fold_bn": True, "epochs": 2}
    assert parse_overrides(["fold_bn=False"]) == {"fold_bn": False}
    with pytest.raises(ValueError, match="fold_bn"):
        parse_overrides(["fold_bn=maybe"])


def test_fit_attacks_the_folded_model_and_updates_the_real_one():
    tier = get_tier("ci", fold_bn=True)
    model = build_model("small_cnn", width=8)
    step, attack = step_models(model, tier)
    assert step is model and isinstance(attack, FoldedBN)
    with torch.no_grad():                                 # as an SGD step would
        for q in model.parameters():
            q.mul_(1.1)
    assert attack_view(attack, tier) is attack           # refolded in place every step
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert _rel(attack.eval()(x), model.eval()(x)) < 1e-5
    assert attack_view(model, tier.replace(fold_bn=False)) is model
    assert isinstance(attack_view(model, tier), FoldedBN)  # other callers: folded afresh


def test_training_with_folded_attacks_differs_only_by_rounding(small_split):
    (x, y), _ = small_split
    tier = get_tier("ci", epochs=1)
    plain, h_plain = train("at", x, y, tier=tier, seed=0, progress=False)
    folded, h_fold = train("at", x, y, tier=tier.replace(fold_bn=True), seed=0, progress=False)
    assert h_fold[0]["loss"] == pytest.approx(h_plain[0]["loss"], rel=1e-2)
    assert h_fold[0]["loss"] != h_plain[0]["loss"]       # the option is in effect
    # the update pass ran the real BatchNorms in train mode: their statistics moved alike
    bn = [(a, b) for a, b in zip(plain.modules(), folded.modules())
          if isinstance(a, torch.nn.BatchNorm2d)]
    assert bn and all(_rel(b.running_mean, a.running_mean) < 0.05 for a, b in bn)
    assert all(b.num_batches_tracked == a.num_batches_tracked > 0 for a, b in bn)
