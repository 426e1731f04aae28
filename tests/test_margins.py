"""Margins and their input gradients against closed forms and finite differences."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from sovr_tutorial.attacks import attack_dataset
from sovr_tutorial.evaluate import adversarial_margins
from sovr_tutorial.tiers import pgd_step_size
from sovr_tutorial.margins import (
    kde_bandwidth,
    collect_margins,
    flip_budget,
    logit_margin,
    margin_grad_norm,
    margin_histogram,
    margin_peaks,
    margin_summary,
)


def linear_model(seed=0, shape=(1, 2, 3), k=4):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), k))
    return model.double()


class ModeSpy(nn.Module):
    """Identity that records whether it ran in training mode."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


def nonlinear_model(seed=0, shape=(1, 3, 3), k=3):
    torch.manual_seed(seed)
    model = nn.Sequential(ModeSpy(), nn.Flatten(), nn.Linear(int(np.prod(shape)), 8), nn.Tanh(),
                          nn.Dropout(0.5), nn.Linear(8, k))
    return model.double()


def images(n, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    # keep away from 0 and 1 so finite differences stay in the valid pixel box
    return 0.1 + 0.8 * torch.rand((n, *shape), generator=g, dtype=torch.float64)


# --- logit_margin -------------------------------------------------------------------------

def test_logit_margin_by_hand():
    z = torch.tensor([[2.0, 1.0, -1.0], [0.5, 1.5, 0.0], [3.0, 3.0, 0.0]])
    y = torch.tensor([0, 2, 1])
    # 2 - 1, 0 - 1.5, 3 - 3 (a tie is margin 0)
    assert logit_margin(z, y).tolist() == [1.0, -1.5, 0.0]


def test_logit_margin_gradient_is_plus_one_minus_one():
    z = torch.tensor([[0.2, 1.0, -0.3, 0.7]], requires_grad=True)
    logit_margin(z, torch.tensor([3])).sum().backward()
    assert z.grad.tolist() == [[0.0, -1.0, 0.0, 1.0]]


# --- margin_grad_norm ---------------------------------------------------------------------

@pytest.mark.parametrize("p", [1, 2])
def test_grad_norm_of_linear_model_is_row_difference(p):
    shape = (1, 2, 3)
    model = linear_model(shape=shape)
    x = images(6, shape)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    W = model[1].weight.detach()
    z = model(x).detach()
    want = []
    for i in range(6):
        others = [k for k in range(4) if k != y[i]]
        j = max(others, key=lambda k: z[i, k].item())
        diff = (W[y[i]] - W[j]).tolist()
        want.append(sum(abs(d) for d in diff) if p == 1 else math.sqrt(sum(d * d for d in diff)))
    got = margin_grad_norm(model, x, y, p=p)
    assert got.shape == (6,)
    assert got.tolist() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_grad_norm_matches_finite_differences_on_a_nonlinear_model(p):
    shape = (1, 3, 3)
    model = nonlinear_model(shape=shape)
    model.eval()
    x = images(3, shape, seed=1)
    y = torch.tensor([0, 1, 2])
    h = 1e-6
    want = []
    with torch.no_grad():
        for i in range(3):
            grad = []
            for d in range(9):
                step = torch.zeros(9, dtype=torch.float64)
                step[d] = h
                step = step.view(1, *shape)
                up = logit_margin(model(x[i:i + 1] + step), y[i:i + 1]).item()
                down = logit_margin(model(x[i:i + 1] - step), y[i:i + 1]).item()
                grad.append((up - down) / (2 * h))
            want.append(sum(abs(g) for g in grad) if p == 1 else math.sqrt(sum(g * g for g in grad)))
    model.train()
    got = margin_grad_norm(model, x, y, p=p)
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_grad_norm_runs_in_eval_mode_restores_mode_and_leaves_no_param_grad():
    shape = (1, 3, 3)
    model = nonlinear_model(shape=shape)
    model.train()
    model[4].eval()  # a mixed state must come back as it was
    x, y = images(4, shape), torch.tensor([0, 1, 2, 0])
    first = margin_grad_norm(model, x, y)
    second = margin_grad_norm(model, x, y)
    assert model[0].seen == [False, False]
    assert model.training and model[0].training and not model[4].training
    assert all(param.grad is None for param in model.parameters())
    # Dropout off in eval mode: the result is deterministic.
    assert torch.equal(first, second)


def test_grad_norm_works_under_no_grad():
    model = linear_model()
    x, y = images(2, (1, 2, 3)), torch.tensor([0, 1])
    with torch.no_grad():
        got = margin_grad_norm(model, x, y)
    assert (got > 0).all()


def test_grad_norm_validation():
    model = linear_model()
    x, y = images(2, (1, 2, 3)), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="p must be one of"):
        margin_grad_norm(model, x, y, p=3)
    with pytest.raises(ValueError, match="x must be images in"):
        margin_grad_norm(model, x * 255, y)
    with pytest.raises(ValueError, match="x must have shape"):
        margin_grad_norm(model, x[0], y)
    with pytest.raises(ValueError, match="y must have shape"):
        margin_grad_norm(model, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="y must be class indices"):
        margin_grad_norm(model, x, torch.tensor([0, 4]))
    with pytest.raises(TypeError, match="model"):
        margin_grad_norm(lambda t: t, x, y)


# --- flip budget ----------------------------------------------------------------------------

def test_flip_budget_values_and_zero_gradient_guard():
    margin = torch.tensor([1.0, -0.5, 2.0, 3.0, -1.0, 0.0])
    grad = torch.tensor([4.0, 2.0, 0.0, 0.5, 0.0, 0.0])
    got = flip_budget(margin, grad)
    assert got.tolist() == [0.25, -0.25, math.inf, 6.0, -math.inf, 0.0]


def test_flip_budget_numpy_in_numpy_out():
    got = flip_budget(np.array([1.0, 2.0]), np.array([2.0, 0.0]))
    assert isinstance(got, np.ndarray)
    assert got.tolist() == [0.5, math.inf]


def test_flip_budget_validation():
    with pytest.raises(ValueError, match="same shape"):
        flip_budget(torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="grad_norm"):
        flip_budget(torch.ones(2), torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="margin"):
        flip_budget(torch.tensor([float("nan")]), torch.ones(1))
    with pytest.raises(TypeError, match="margin"):
        flip_budget([1.0], torch.ones(1))


# --- collect_margins --------------------------------------------------------------------------

def test_collect_margins_on_clean_inputs_matches_direct_computation():
    shape = (1, 2, 3)
    model = linear_model(shape=shape)
    x = images(7, shape, seed=2)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    out = collect_margins(model, x, y, batch_size=3, progress=False)
    assert set(out) == {"margin", "grad_norm", "flip_budget", "correct"}
    assert all(isinstance(v, np.ndarray) and v.shape == (7,) for v in out.values())
    z = model(x).detach()
    margin = logit_margin(z, y)
    assert out["margin"].tolist() == pytest.approx(margin.tolist(), rel=1e-12)
    assert out["grad_norm"].tolist() == pytest.approx(margin_grad_norm(model, x, y).tolist(), rel=1e-12)
    assert out["flip_budget"].tolist() == pytest.approx((margin / margin_grad_norm(model, x, y)).tolist(),
                                                        rel=1e-12)
    assert out["correct"].dtype == bool
    assert out["correct"].tolist() == (z.argmax(1) == y).tolist()
    # batch size does not change the answer
    whole = collect_margins(model, x, y, batch_size=256, progress=False, p=2)
    split = collect_margins(model, x, y, batch_size=2, progress=False, p=2)
    for key in whole:
        np.testing.assert_allclose(whole[key], split[key], rtol=1e-12)


# --- adversarial_margins: the one way to measure margins at PGD points -----------------------

def test_adversarial_margins_are_collect_margins_at_attack_datasets_points():
    """The same attack (eps, steps, step size, seed) as attack_dataset, then the margins,
    gradient norms and correctness collect_margins measures at those points."""
    shape = (1, 3, 3)
    model = nonlinear_model(shape=shape)
    model.train()
    x, y = images(7, shape, seed=3), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    out = adversarial_margins(model, x, y, eps=0.1, steps=3, seed=5, batch_size=3)
    assert model.training  # restored
    x_adv = attack_dataset(model, x, y, eps=0.1, steps=3, seed=5, batch_size=3)
    assert torch.equal(out["x_adv"], x_adv)
    at = collect_margins(model, x_adv, y, batch_size=3, progress=False)
    for key in ("margin", "grad_norm", "flip_budget", "correct"):
        np.testing.assert_array_equal(out[key], at[key])
    clean = collect_margins(model, x, y, progress=False)["margin"]
    assert (out["margin"] < clean).mean() > 0.5   # PGD lowers most margins


def test_adversarial_margins_leave_the_callers_random_state_alone_and_repeat():
    model = nonlinear_model()
    x, y = images(6, (1, 3, 3), seed=1), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = adversarial_margins(model, x, y, eps=0.1, steps=2, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    b = adversarial_margins(model, x, y, eps=0.1, steps=2, seed=0)
    c = adversarial_margins(model, x, y, eps=0.1, steps=2, seed=1)
    np.testing.assert_array_equal(a["margin"], b["margin"])
    assert not np.array_equal(a["margin"], c["margin"])   # the seed draws the random starts


def test_adversarial_margins_without_gradients_give_the_same_margins():
    model = nonlinear_model()
    x, y = images(6, (1, 3, 3), seed=2), torch.tensor([0, 1, 2, 0, 1, 2])
    full = adversarial_margins(model, x, y, eps=0.1, steps=2, step_size=0.03)
    fast = adversarial_margins(model, x, y, eps=0.1, steps=2, step_size=0.03, gradients=False)
    assert set(fast) == {"margin", "correct", "x_adv"}
    np.testing.assert_allclose(fast["margin"], full["margin"], rtol=1e-12)
    np.testing.assert_array_equal(fast["correct"], full["correct"])


def test_adversarial_margins_step_size_defaults_to_the_rule():
    model = nonlinear_model()
    x, y = images(4, (1, 3, 3), seed=4), torch.tensor([0, 1, 2, 0])
    rule = adversarial_margins(model, x, y, eps=0.1, steps=4, seed=2)
    explicit = adversarial_margins(model, x, y, eps=0.1, steps=4, seed=2,
                                   step_size=pgd_step_size(0.1, 4))
    other = adversarial_margins(model, x, y, eps=0.1, steps=4, seed=2, step_size=0.005)
    np.testing.assert_array_equal(rule["margin"], explicit["margin"])
    assert not np.array_equal(rule["margin"], other["margin"])


def test_adversarial_margins_validation():
    model = nonlinear_model()
    x, y = images(2, (1, 3, 3)), torch.tensor([0, 1])
    with pytest.raises(TypeError, match="model"):
        adversarial_margins("net", x, y, eps=0.1, steps=2)
    with pytest.raises(ValueError, match="eps"):
        adversarial_margins(model, x, y, eps=-0.1, steps=2)
    with pytest.raises(ValueError, match="steps"):
        adversarial_margins(model, x, y, eps=0.1, steps=0)
    with pytest.raises(TypeError, match="gradients"):
        adversarial_margins(model, x, y, eps=0.1, steps=2, gradients="yes")
    with pytest.raises(ValueError, match="p must be one of"):
        adversarial_margins(model, x, y, eps=0.1, steps=2, p=3)


def test_collect_margins_validation():
    model = linear_model()
    x, y = images(2, (1, 2, 3)), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="batch_size"):
        collect_margins(model, x, y, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="p must be one of"):
        collect_margins(model, x, y, p=0, progress=False)


# --- histogram and summary -------------------------------------------------------------------

def test_margin_histogram_counts_every_margin():
    margins = np.array([-1.0, -0.2, 0.1, 0.4, 0.9, 2.5])
    counts, edges = margin_histogram(margins, bins=4, range=(-1.0, 3.0))
    assert edges.tolist() == [-1.0, 0.0, 1.0, 2.0, 3.0]
    assert counts.tolist() == [2, 3, 0, 1]
    counts, edges = margin_histogram(torch.tensor(margins))
    assert len(edges) == 41 and counts.sum() == 6


def test_margin_summary_by_hand():
    margins = torch.tensor([-2.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 3.0, 4.0, 5.0])
    s = margin_summary(margins, small=1.0)
    assert s["n"] == 10
    assert s["mean"] == pytest.approx(12.0 / 10)
    assert s["frac_negative"] == pytest.approx(0.2)
    assert s["frac_small"] == pytest.approx(0.4)  # 0, 0.25, 0.5, 0.75 (1.0 excluded)
    assert s["q50"] == pytest.approx((0.5 + 0.75) / 2)
    for key, q in (("q05", 5), ("q25", 25), ("q75", 75), ("q95", 95)):
        assert s[key] == pytest.approx(float(np.percentile(margins.numpy(), q)))


def test_histogram_and_summary_validation():
    with pytest.raises(ValueError, match="margins"):
        margin_summary(np.array([]))
    with pytest.raises(ValueError, match="margins"):
        margin_histogram(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="small"):
        margin_summary(np.array([0.0]), small=-1.0)
    with pytest.raises(ValueError, match="bins"):
        margin_histogram(np.array([0.0]), bins=0)
    with pytest.raises(ValueError, match="range"):
        margin_histogram(np.array([0.0]), range=(1.0, 0.0))


# --- peaks of the margin density ---------------------------------------------------------

def _normal(n, mean, std, seed):
    return np.random.default_rng(seed).normal(mean, std, n)


@pytest.mark.parametrize("seed", range(10))
def test_one_bump_has_one_peak_at_its_centre(seed):
    # seeds 0, 4 and 9 put a few samples far out in a tail: wiggles, not peaks
    peaks = margin_peaks(_normal(2000, 1.5, 1.0, seed=seed))
    assert len(peaks) == 1 and peaks[0] == pytest.approx(1.5, abs=0.25)


def test_two_separated_bumps_have_two_peaks_highest_first():
    values = np.concatenate([_normal(1500, -2.0, 0.5, seed=1), _normal(500, 3.0, 0.5, seed=2)])
    peaks = margin_peaks(values)
    assert len(peaks) == 2
    assert peaks[0] == pytest.approx(-2.0, abs=0.2) and peaks[1] == pytest.approx(3.0, abs=0.2)


def test_two_bumps_with_a_shallow_valley_count_as_one():
    # the same two bumps, with a bandwidth so wide that the density between them dips only a
    # little: above `valley` times the smaller maximum, so the lower maximum is merged
    values = np.concatenate([_normal(1000, -1.0, 0.5, seed=3), _normal(1000, 1.0, 0.5, seed=4)])
    assert len(margin_peaks(values, bandwidth=0.3)) == 2
    assert len(margin_peaks(values, bandwidth=0.3, valley=0.0)) == 1
    assert len(margin_peaks(values, bandwidth=0.75)) == 1


def test_margin_peaks_validation():
    with pytest.raises(ValueError, match="at least 2"):
        margin_peaks(np.array([1.0]))
    with pytest.raises(ValueError, match="valley"):
        margin_peaks(np.array([0.0, 1.0]), valley=1.5)


def _peaks_by_the_written_rule(values, valley=0.7, min_height=0.1, grid=512):
    """The peak rule as the course first wrote it out by hand (a KDE summed in NumPy, maxima
    kept above min_height of the highest, neighbours merged while the density between them
    stays above valley times the smaller): the reference that SciPy's version must match."""
    v = np.asarray(values, dtype=np.float64)
    h = kde_bandwidth(v)
    xs = np.linspace(v.min() - 3 * h, v.max() + 3 * h, grid)
    dens = np.exp(-0.5 * ((xs[:, None] - v[None, :]) / h) ** 2).sum(1)
    is_max = np.r_[False, (dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:]), False]
    peaks = [i for i in np.flatnonzero(is_max) if dens[i] >= min_height * dens.max()]
    merged = True
    while merged and len(peaks) > 1:
        merged = False
        for a, b in zip(peaks, peaks[1:]):
            if dens[a:b + 1].min() >= valley * min(dens[a], dens[b]):
                peaks.remove(a if dens[a] < dens[b] else b)
                merged = True
                break
    return len(peaks)


@pytest.mark.slow
def test_the_peak_count_of_every_committed_margin_sample_is_the_written_rules():
    import json
    from pathlib import Path
    samples = 0
    for path in sorted((Path(__file__).resolve().parents[1] / "results").rglob("*.json")):
        result = json.loads(path.read_text())
        if not isinstance(result, dict) or not isinstance(result.get("margins"), dict):
            continue
        for key, stats in result["margins"].items():
            values = stats.get("values") if isinstance(stats, dict) else None
            if values and len(values) >= 2 and np.ptp(values) > 0:
                assert len(margin_peaks(values)) == _peaks_by_the_written_rule(values), \
                    f"{path.name} {key}"
                samples += 1
    assert samples > 150
