"""Losses against hand arithmetic, their limits, and the OVR-vs-CE margin growth (claim 5)."""
import math

import pytest
import torch

from sovr_tutorial.losses import (
    ce_loss,
    gairat_loss,
    gairat_weights,
    mart_loss,
    ovr_loss,
    sovr_loss,
    sovr_select,
    trades_loss,
)

# The 2x3 example used throughout: row 0 is correct with margin 2 - 1 = 1,
# row 1 is wrong with margin 0 - 1.5 = -1.5.
Z = [[2.0, 1.0, -1.0],
     [0.5, 1.5, 0.0]]
Y = [0, 2]
# A second set of logits standing in for the adversarial point.
Z_ADV = [[0.5, 1.0, -0.5],
         [1.0, 0.0, 0.25]]


def logits(rows=Z, requires_grad=False):
    return torch.tensor(rows, dtype=torch.float64, requires_grad=requires_grad)


def labels(values=Y):
    return torch.tensor(values, dtype=torch.int64)


def softplus(v):
    return math.log(1.0 + math.exp(v))


def hand_ce(row, y):
    return -row[y] + math.log(sum(math.exp(v) for v in row))


def hand_ovr(row, y):
    return softplus(-row[y]) + sum(softplus(v) for k, v in enumerate(row) if k != y)


def hand_softmax(row):
    total = sum(math.exp(v) for v in row)
    return [math.exp(v) / total for v in row]


def hand_kl(row_p, row_q):
    p, q = hand_softmax(row_p), hand_softmax(row_q)
    return sum(pk * math.log(pk / qk) for pk, qk in zip(p, q))


# --- hand values -----------------------------------------------------------------------

def test_ce_loss_matches_hand_values():
    want = [hand_ce(Z[0], 0), hand_ce(Z[1], 2)]
    got = ce_loss(logits(), labels(), reduction="none")
    assert got.shape == (2,)
    # -2 + log(e^2 + e^1 + e^-1), worked out on paper
    assert got[0].item() == pytest.approx(0.3490, abs=1e-4)
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert ce_loss(logits(), labels()).item() == pytest.approx(sum(want) / 2, rel=1e-12)
    assert ce_loss(logits(), labels(), reduction="sum").item() == pytest.approx(sum(want), rel=1e-12)


def test_ovr_loss_matches_hand_values():
    want = [hand_ovr(Z[0], 0), hand_ovr(Z[1], 2)]
    got = ovr_loss(logits(), labels(), reduction="none")
    assert got.shape == (2,)
    # softplus(-0) + softplus(0.5) + softplus(1.5), worked out on paper
    assert got[1].item() == pytest.approx(3.3686, abs=1e-4)
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert ovr_loss(logits(), labels()).item() == pytest.approx(sum(want) / 2, rel=1e-12)
    assert ovr_loss(logits(), labels(), reduction="sum").item() == pytest.approx(sum(want), rel=1e-12)


def test_ovr_loss_is_stable_for_large_logits():
    z = torch.tensor([[200.0, -200.0, -150.0]], dtype=torch.float32)
    value = ovr_loss(z, torch.tensor([0])).item()
    assert math.isfinite(value) and 0.0 <= value < 1e-60


def test_sovr_half_batch_uses_ovr_for_the_wrong_sample():
    # N = 2, ratio 0.5 -> M = 1: the smaller margin is row 1 (-1.5), which gets OVR.
    want = [hand_ce(Z[0], 0), hand_ovr(Z[1], 2)]
    got, mask = sovr_loss(logits(), labels(), value=0.5, reduction="none", return_mask=True)
    assert mask.tolist() == [False, True]
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert sovr_loss(logits(), labels(), value=0.5).item() == pytest.approx(sum(want) / 2, rel=1e-12)


def test_sovr_threshold_rule_uses_the_margin_cut():
    # Margins are 1 and -1.5: a cut at 0 selects only row 1, a cut at 1.01 both.
    loss, mask = sovr_loss(logits(), labels(), rule="threshold", value=0.0, reduction="none", return_mask=True)
    assert mask.tolist() == [False, True]
    assert loss.tolist() == pytest.approx([hand_ce(Z[0], 0), hand_ovr(Z[1], 2)], rel=1e-12)
    _, mask = sovr_loss(logits(), labels(), rule="threshold", value=1.01, return_mask=True)
    assert mask.tolist() == [True, True]
    # Strict inequality: a margin equal to the threshold keeps CE.
    _, mask = sovr_loss(logits(), labels(), rule="threshold", value=1.0, return_mask=True)
    assert mask.tolist() == [False, True]


def test_trades_matches_hand_values():
    beta = 6.0
    want = [hand_ce(Z[i], Y[i]) + beta * hand_kl(Z[i], Z_ADV[i]) for i in range(2)]
    got = trades_loss(logits(), logits(Z_ADV), labels(), reduction="none")
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert trades_loss(logits(), logits(Z_ADV), labels()).item() == pytest.approx(sum(want) / 2, rel=1e-12)
    # With identical clean and adversarial logits the KL term vanishes.
    same = trades_loss(logits(), logits(), labels(), beta=beta, reduction="none")
    assert same.tolist() == pytest.approx([hand_ce(Z[0], 0), hand_ce(Z[1], 2)], rel=1e-12)


def test_mart_matches_hand_values():
    beta = 5.0
    want = []
    for i in range(2):
        y = Y[i]
        p_adv = hand_softmax(Z_ADV[i])
        y_hat = max((k for k in range(3) if k != y), key=lambda k: p_adv[k])
        bce = hand_ce(Z_ADV[i], y) - math.log(1.0001 - p_adv[y_hat])
        p_clean_true = hand_softmax(Z[i])[y]
        want.append(bce + beta * hand_kl(Z[i], Z_ADV[i]) * (1.0000001 - p_clean_true))
    # Row 0 (y=0): the best wrong class at x' is 1 (z'=1.0); row 1 (y=2): class 0 (z'=1.0).
    got = mart_loss(logits(), logits(Z_ADV), labels(), reduction="none")
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    assert mart_loss(logits(), logits(Z_ADV), labels()).item() == pytest.approx(sum(want) / 2, rel=1e-12)


def test_mart_boost_uses_the_best_wrong_class_not_the_top_class():
    # Row where the true class is on top at x': yhat must be the runner-up (class 2), not y.
    z_adv = [[3.0, -1.0, 1.0]]
    p = hand_softmax(z_adv[0])
    want_bce = hand_ce(z_adv[0], 0) - math.log(1.0001 - p[2])
    got = mart_loss(logits(z_adv), logits(z_adv), labels([0]), beta=0.0).item()
    assert got == pytest.approx(want_bce, rel=1e-12)


def test_gairat_weights_match_formula_and_have_mean_one():
    kappa = torch.tensor([0, 5, 10, 7])
    steps, lam = 10, -1.0
    raw = [(1 + math.tanh(lam + 5 * (5 - k) / 5)) / 2 for k in (0, 5, 10, 7)]
    mean = sum(raw) / 4
    got = gairat_weights(kappa, steps, lam)
    assert got.tolist() == pytest.approx([r / mean for r in raw], rel=1e-6)
    assert got.mean().item() == pytest.approx(1.0, rel=1e-6)
    # Samples broken early (small kappa) weigh more.
    assert got[0] > got[1] > got[3] > got[2]  # kappa 0 < 5 < 7 < 10


def test_gairat_loss_is_weighted_ce():
    kappa = torch.tensor([2, 9])
    steps = 10
    raw = [(1 + math.tanh(-1.0 + 5 * (5 - k) / 5)) / 2 for k in (2, 9)]
    w = [r / (sum(raw) / 2) for r in raw]
    want = [w[i] * hand_ce(Z_ADV[i], Y[i]) for i in range(2)]
    got = gairat_loss(logits(Z_ADV), labels(), kappa, steps, reduction="none")
    assert got.tolist() == pytest.approx(want, rel=1e-6)
    assert gairat_loss(logits(Z_ADV), labels(), kappa, steps).item() == pytest.approx(sum(want) / 2, rel=1e-6)
    # Equal kappas give weight 1 everywhere: plain CE.
    flat = gairat_loss(logits(Z_ADV), labels(), torch.tensor([4, 4]), steps)
    assert flat.item() == pytest.approx(ce_loss(logits(Z_ADV), labels()).item(), rel=1e-12)


def test_gairat_weights_carry_no_gradient():
    z = logits(Z_ADV, requires_grad=True)
    kappa = torch.tensor([1.0, 8.0], dtype=torch.float64, requires_grad=True)
    gairat_loss(z, labels(), kappa, 10).backward()
    assert kappa.grad is None
    # d/dz of mean(w * CE) is w_i / N times the CE gradient of row i.
    w = gairat_weights(kappa, 10)
    z_ref = logits(Z_ADV, requires_grad=True)
    (w * ce_loss(z_ref, labels(), "none")).mean().backward()
    assert torch.allclose(z.grad, z_ref.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("fn", [ce_loss, ovr_loss, sovr_loss])
def test_reduction_none_shapes_single(fn):
    z = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(7) % 4
    assert fn(z, y, reduction="none").shape == (7,)
    assert fn(z, y).shape == ()
    assert fn(z, y, reduction="sum").item() == pytest.approx(fn(z, y, reduction="none").sum().item(), rel=1e-6)


@pytest.mark.parametrize("fn", [trades_loss, mart_loss])
def test_reduction_none_shapes_pair(fn):
    g = torch.Generator().manual_seed(1)
    z, z_adv = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    y = torch.arange(7) % 4
    assert fn(z, z_adv, y, reduction="none").shape == (7,)
    assert fn(z, z_adv, y).shape == ()


def test_gairat_reduction_none_shape():
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    assert gairat_loss(z, torch.arange(5) % 3, torch.arange(5), 4, reduction="none").shape == (5,)


# --- limits of SOVR ----------------------------------------------------------------------

def random_batch(n=16, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(n, k, generator=g), torch.randint(0, k, (n,), generator=g)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sovr_ratio_limits_are_ce_and_ovr_exactly(reduction):
    z, y = random_batch()
    assert torch.equal(sovr_loss(z, y, value=0.0, reduction=reduction), ce_loss(z, y, reduction))
    assert torch.equal(sovr_loss(z, y, value=1.0, reduction=reduction), ovr_loss(z, y, reduction))


def test_sovr_threshold_limits_are_ce_and_ovr_exactly():
    z, y = random_batch()
    assert torch.equal(sovr_loss(z, y, rule="threshold", value=-1e9), ce_loss(z, y))
    assert torch.equal(sovr_loss(z, y, rule="threshold", value=1e9), ovr_loss(z, y))


def test_sovr_limit_gradients_equal_ce_and_ovr_gradients():
    z, y = random_batch()
    for ratio, ref in ((0.0, ce_loss), (1.0, ovr_loss)):
        a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
        sovr_loss(a, y, value=ratio).backward()
        ref(b, y).backward()
        assert torch.equal(a.grad, b.grad)


def test_sovr_mixes_per_sample_and_the_margins_carry_no_gradient():
    z, y = random_batch(seed=3)
    z = z.requires_grad_(True)
    loss, mask = sovr_loss(z, y, value=0.5, reduction="none", return_mask=True)
    assert int(mask.sum()) == 8
    want = torch.where(mask, ovr_loss(z, y, "none"), ce_loss(z, y, "none"))
    assert torch.equal(loss, want)
    # Gradient of the mean equals the gradient of the mixed loss with a fixed mask: the
    # selection itself is not differentiated.
    (g,) = torch.autograd.grad(loss.mean(), z)
    (g_ref,) = torch.autograd.grad(want.mean(), z)
    assert torch.equal(g, g_ref)


# --- selection ---------------------------------------------------------------------------

def test_sovr_select_picks_exactly_the_smallest_margins():
    margins = torch.tensor([0.3, -2.0, 5.0, 0.1, 1.0, -0.5, 2.0, 0.0, 4.0, 3.0])
    mask = sovr_select(margins, value=0.4)
    # M = 4 smallest: -2.0 (1), -0.5 (5), 0.0 (7), 0.1 (3)
    assert mask.dtype == torch.bool
    assert torch.nonzero(mask).flatten().tolist() == [1, 3, 5, 7]
    assert sovr_select(margins, value=0.0).sum() == 0
    assert sovr_select(margins, value=1.0).all()
    assert torch.nonzero(sovr_select(margins, value=0.2)).flatten().tolist() == [1, 5]


def test_sovr_select_breaks_ties_by_index_and_rounds_half_up():
    margins = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0])
    # ratio 0.4 * 5 = 2: two of the three tied zeros, the lower indices.
    assert torch.nonzero(sovr_select(margins, value=0.4)).flatten().tolist() == [1, 2]
    # ratio 0.5 * 5 = 2.5 -> 3 (half up)
    assert int(sovr_select(margins, value=0.5).sum()) == 3
    # ratio 0.3 * 5 = 1.5 -> 2
    assert int(sovr_select(margins, value=0.3).sum()) == 2


def test_sovr_select_count_is_monotone_in_ratio():
    margins = torch.randn(37, generator=torch.Generator().manual_seed(4))
    counts = [int(sovr_select(margins, value=r / 100).sum()) for r in range(101)]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 37
    # the selected set grows by inclusion
    for lo, hi in ((0.2, 0.4), (0.4, 0.6), (0.6, 1.0)):
        a, b = sovr_select(margins, value=lo), sovr_select(margins, value=hi)
        assert not (a & ~b).any()


def test_sovr_select_threshold_rule():
    margins = torch.tensor([0.5, -1.0, 2.0, 0.0])
    # strictly below the threshold: 0.5 itself keeps CE
    assert sovr_select(margins, "threshold", 0.5).tolist() == [False, True, False, True]


def test_sovr_select_boundary_rule_picks_the_smallest_absolute_margins():
    margins = torch.tensor([3.0, -0.2, 0.5, -4.0, 0.1, 2.0, -1.0, 0.0, 6.0, -0.3])
    # |margin| smallest first: 0.0 (7), 0.1 (4), -0.2 (1), -0.3 (9), 0.5 (2)
    assert torch.nonzero(sovr_select(margins, "boundary", 0.5)).flatten().tolist() == [1, 2, 4, 7, 9]
    # unlike the ratio rule, a confidently wrong sample (-4) is not near the boundary
    assert not sovr_select(margins, "boundary", 0.5)[3] and sovr_select(margins, "ratio", 0.5)[3]
    assert sovr_select(margins, "boundary", 0.0).sum() == 0
    assert sovr_select(margins, "boundary", 1.0).all()


# --- gradients and claim 5 ---------------------------------------------------------------

def test_ovr_gradient_pushes_true_logit_up_and_others_down():
    z = torch.tensor([[0.3, 1.2, -0.7, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([2])
    (g,) = torch.autograd.grad(ovr_loss(z, y), z)
    g = g[0]
    # Descent direction -g: up for the true class, down for every other class.
    assert g[2] < 0
    assert (g[[0, 1, 3]] > 0).all()
    # Closed form: dL/dz_y = -sigmoid(-z_y), dL/dz_k = sigmoid(z_k).
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    want = [sig(0.3), sig(1.2), -sig(0.7), sig(0.0)]
    assert g.tolist() == pytest.approx(want, rel=1e-12)


def gradient_flow_margin(loss_fn, steps=2500, growth=0.005):
    """Euler steps of dz/dt = -grad_z loss(z) for 2-class logits starting at z = 0.

    dt grows with t (dt = growth * (1 + t)) so a few thousand steps reach t ~ 1e5, where
    the log-time behaviour shows. Returns lists (t, margin z_0 - z_1).
    """
    z = torch.zeros(1, 2, dtype=torch.float64)
    y = torch.tensor([0])
    t, ts, ms = 0.0, [], []
    for _ in range(steps):
        dt = growth * (1.0 + t)
        zr = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(zr, y, reduction="sum"), zr)
        z = z - dt * g
        t += dt
        ts.append(t)
        ms.append((z[0, 0] - z[0, 1]).item())
    return ts, ms


def test_ovr_grows_the_margin_about_twice_as_fast_as_ce():
    ts, m_ce = gradient_flow_margin(ce_loss)
    _, m_ovr = gradient_flow_margin(ovr_loss)
    t_end = ts[-1]
    assert t_end > 1e4
    # CE has the exact solution m + e^m = 2t + 1 (dm/dt = 2 sigmoid(-m), m(0) = 0).
    assert m_ce[-1] + math.exp(m_ce[-1]) == pytest.approx(2 * t_end + 1, rel=0.02)
    # Margin ratio at large t: measured ~1.88 at t ~ 2e5; it tends to 2 only like
    # 2 log t / log 2t, so the bounds are loose on the low side.
    ratio = m_ovr[-1] / m_ce[-1]
    assert 1.75 < ratio < 2.1
    # Growth rate per unit log-time in the tail: CE ~ 1 (m ~ log t), OVR ~ 2 (m ~ 2 log t).
    i = len(ts) // 2
    span = math.log(ts[-1] / ts[i])
    slope_ce = (m_ce[-1] - m_ce[i]) / span
    slope_ovr = (m_ovr[-1] - m_ovr[i]) / span
    assert slope_ce == pytest.approx(1.0, abs=0.05)
    assert slope_ovr == pytest.approx(2.0, abs=0.1)
    assert 1.9 < slope_ovr / slope_ce < 2.1


# --- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [ce_loss, ovr_loss, sovr_loss])
def test_nan_logits_are_rejected(fn):
    z = logits().clone()
    z[0, 1] = float("nan")
    with pytest.raises(ValueError, match="logits"):
        fn(z, labels())


@pytest.mark.parametrize("fn", [ce_loss, ovr_loss, sovr_loss])
def test_mismatched_label_shape_is_rejected(fn):
    with pytest.raises(ValueError, match="y"):
        fn(logits(), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("fn", [ce_loss, ovr_loss, sovr_loss])
def test_labels_out_of_range_are_rejected(fn):
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 2\]"):
        fn(logits(), torch.tensor([0, 3]))


def test_bad_logits_shape_and_type():
    with pytest.raises(ValueError, match="logits"):
        ce_loss(torch.zeros(3), torch.tensor([0, 0, 0]))
    with pytest.raises(TypeError, match="logits"):
        ovr_loss([[1.0, 2.0]], torch.tensor([0]))
    with pytest.raises(TypeError, match="y"):
        ce_loss(logits(), torch.tensor([0.0, 1.0]))


def test_bad_ratio_and_threshold():
    with pytest.raises(ValueError, match="ratio"):
        sovr_loss(logits(), labels(), value=1.5)
    with pytest.raises(ValueError, match="ratio"):
        sovr_select(torch.zeros(3), value=-0.1)
    with pytest.raises(ValueError, match="threshold"):
        sovr_loss(logits(), labels(), rule="threshold", value=float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        sovr_select(torch.zeros(3), rule="threshold", value=float("inf"))
    with pytest.raises(TypeError, match="threshold"):
        sovr_select(torch.zeros(3), rule="threshold", value="0.5")
    with pytest.raises(ValueError, match="margins"):
        sovr_select(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="margins"):
        sovr_select(torch.tensor([0.0, float("nan")]))


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        ce_loss(logits(), labels(), reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        sovr_loss(logits(), labels(), reduction="batchmean")


def test_pair_losses_validate_both_logits():
    bad = logits(Z_ADV).clone()
    bad[1, 0] = float("inf")
    with pytest.raises(ValueError, match="logits_adv"):
        trades_loss(logits(), bad, labels())
    with pytest.raises(ValueError, match="logits_clean"):
        mart_loss(bad, logits(), labels())
    with pytest.raises(ValueError, match="logits_clean and logits_adv"):
        trades_loss(logits(), torch.zeros(2, 4, dtype=torch.float64), labels())
    with pytest.raises(ValueError, match="beta"):
        trades_loss(logits(), logits(Z_ADV), labels(), beta=-1.0)
    with pytest.raises(ValueError, match="beta"):
        mart_loss(logits(), logits(Z_ADV), labels(), beta=float("nan"))


def test_gairat_validation():
    with pytest.raises(ValueError, match="kappa"):
        gairat_weights(torch.tensor([0, 11]), 10)
    with pytest.raises(ValueError, match="kappa"):
        gairat_weights(torch.tensor([-1.0, 2.0]), 10)
    with pytest.raises(TypeError, match="kappa"):
        gairat_weights([1, 2], 10)
    with pytest.raises(ValueError, match="steps"):
        gairat_weights(torch.tensor([0, 1]), 0)
    with pytest.raises(ValueError, match="lam"):
        gairat_weights(torch.tensor([0, 1]), 10, lam=float("nan"))
    with pytest.raises(ValueError, match="kappa"):
        gairat_loss(logits(), labels(), torch.tensor([1, 2, 3]), 10)


def test_training_runs_the_losses_the_notebooks_show():
    """train.method_loss calls the unchecked kernels; each public loss is its kernel plus
    argument checks, so the two give the same numbers, bit for bit, for every method."""
    from sovr_tutorial import losses as L
    g = torch.Generator().manual_seed(0)
    clean, adv = torch.randn(64, 10, generator=g), torch.randn(64, 10, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    kappa = torch.randint(0, 11, (64,), generator=g)
    pairs = [
        (ce_loss(adv, y, reduction="none"), L._ce_per_sample(adv, y)),
        (ovr_loss(adv, y, reduction="none"), L._ovr_per_sample(adv, y)),
        (trades_loss(clean, adv, y, beta=6.0, reduction="none"),
         L._trades_per_sample(clean, adv, y, 6.0)),
        (mart_loss(clean, adv, y, beta=6.0, reduction="none"),
         L._mart_per_sample(clean, adv, y, 6.0)),
        (gairat_loss(adv, y, kappa, steps=10, reduction="none"),
         L._gairat_per_sample(adv, y, kappa, 10, -1.0)),
        (sovr_loss(adv, y, "ratio", 0.4, reduction="none"),
         L._sovr_per_sample(adv, y, "ratio", 0.4)[0]),
        (sovr_loss(adv, y, "threshold", 1.0, reduction="none"),
         L._sovr_per_sample(adv, y, "threshold", 1.0)[0]),
    ]
    for public, kernel in pairs:
        assert torch.equal(public, kernel)
