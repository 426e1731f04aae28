"""OVR's push against CE's and where SOVR's switch falls (sovr_tutorial/figures/push.py)."""
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from sovr_tutorial.figures import push
from sovr_tutorial.losses import ce_loss, ovr_loss


def _autograd_push(loss_fn, m):
    m = torch.tensor(float(m), dtype=torch.float64, requires_grad=True)
    loss_fn(torch.stack([m / 2, -m / 2]).unsqueeze(0), torch.tensor([0])).sum().backward()
    return -m.grad.item()


@pytest.mark.parametrize("m", [-5.0, -1.5, 0.0, 0.7, 4.0, 9.0])
def test_push_ratio_is_the_ratio_of_the_package_losses_gradients(m):
    expected = _autograd_push(ovr_loss, m) / _autograd_push(ce_loss, m)
    assert push.push_ratio(m) == pytest.approx(expected, rel=1e-9)


def test_ovr_pushes_less_than_ce_exactly_where_the_sample_is_misclassified():
    m = np.array([-8.0, -2.0, -0.1, 0.1, 2.0, 8.0])
    assert np.all((push.push_ratio(m) < 1) == (m < 0))


def test_margin_flow_solves_the_gradient_flow_it_claims():
    # Euler steps of dm/dt = 2 w sigmoid(-m) (CE) and 2 sigmoid(-m/2) (OVR) from m0 = -1
    for loss, rate in (("ce", lambda m: 2 * 3.0 / (1 + math.exp(m))),
                       ("ovr", lambda m: 2 / (1 + math.exp(m / 2)))):
        m, dt = -1.0, 1e-4
        for _ in range(30000):          # t = 3
            m += dt * rate(m)
        got = push.margin_flow(3.0, loss, m0=-1.0, weight=3.0 if loss == "ce" else 1.0)
        assert float(got) == pytest.approx(m, abs=1e-3)


def test_ovr_grows_the_margin_twice_as_fast_only_in_log_time():
    t1, t2 = 1e6, 1e8
    slope = {k: (push.margin_flow(t2, k) - push.margin_flow(t1, k)) / math.log(t2 / t1)
             for k in ("ce", "ovr")}
    assert slope["ovr"] / slope["ce"] == pytest.approx(2.0, rel=0.02)


def test_flow_crossing_where_the_two_margins_meet():
    for m0, w in ((-2.0, 1.0), (-1.0, 1.0), (0.0, 2.0), (0.0, 5.0)):
        t, m = push.flow_crossing(m0, w)
        assert push.margin_flow(t, "ce", m0, w) == pytest.approx(m, abs=1e-6)
        assert push.margin_flow(t, "ovr", m0) == pytest.approx(m, abs=1e-6)
        # CE ahead before the crossing, OVR after it
        assert push.margin_flow(t / 2, "ce", m0, w) > push.margin_flow(t / 2, "ovr", m0)
        assert push.margin_flow(2 * t, "ce", m0, w) < push.margin_flow(2 * t, "ovr", m0)
    # unweighted from a misclassified start: the closed form m* = 2 log(2 - e^(m0/2))
    assert push.flow_crossing(-2.0)[1] == pytest.approx(2 * math.log(2 - math.exp(-1)), abs=1e-9)
    assert push.flow_crossing(0.0, 1.0) is None      # OVR ahead from the start


def test_switch_stats_counts_misclassified_switched_samples():
    # 10 batches of 10: margins -9..-0 (wrong) and 1..90 (right) mixed; ratio 0.5 picks 5 per batch
    margins = np.concatenate([-np.arange(1.0, 31.0), np.arange(1.0, 71.0)])
    s = push.switch_stats(margins, value=0.5, batch_size=10, seed=1)
    assert s["switched"] == pytest.approx(0.5)
    assert s["negative"] == pytest.approx(0.3)
    # every wrong sample is among its batch's smallest half, so 30 of the 50 switched are wrong
    assert s["misclassified_share"] == pytest.approx(0.6)
    all_wrong = push.switch_stats(-np.abs(np.random.default_rng(0).normal(size=500)) - 0.1, 0.4)
    assert all_wrong["misclassified_share"] == 1.0 and all_wrong["cut"] < 0


def test_switch_stats_rejects_bad_input():
    with pytest.raises(ValueError):
        push.switch_stats([], 0.4)
    with pytest.raises(ValueError):
        push.switch_stats([0.0, float("nan")], 0.4)


def test_figures_mark_the_cut_and_the_crossings():
    rng = np.random.default_rng(0)
    fig = push.plot_switch_cut({"AT": rng.normal(-0.4, 1, 400), "SOVR": rng.normal(0, 1, 400)})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "switched are misclassified" in fig.axes[0].get_title()
    curve = {"edges": [-1.0, 0.0, 1.0], "ratio": [0.9, 1.3], "count": [5, 5]}
    fig = push.plot_push_and_flow({"measured": curve}, m0=-1.0, weights=(1.0, 2.0), cut=-0.5)
    ax_flow = fig.axes[1]
    dots = [line for line in ax_flow.get_lines() if line.get_marker() == "o"]
    assert len(dots) == 2                           # one crossing per CE weight
    assert dots[0].get_ydata()[0] == pytest.approx(push.flow_crossing(-1.0, 1.0)[1])
