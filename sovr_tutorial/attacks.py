"""L-inf attacks in [0, 1] pixel space: FGSM, PGD, and TRADES' KL-PGD.

All of them put the model in eval mode for the attack (BatchNorm must not learn from
adversarial batches it is being attacked with) and restore its mode afterwards, take
gradients with respect to the input only, and return images inside the eps-ball
around ``x`` and inside [0, 1].
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .checks import (check_choice, check_eps, check_images, check_labels, check_number,
                     check_step_size, check_steps)
from .devices import model_device
from .margins import _margin
from .models import eval_mode
from .tiers import pgd_step_size


@contextmanager
def seeded(seed: int, device):
    """Seed torch inside the block without disturbing the caller's random stream."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _attack_loss(logits, y, loss, targeted):
    """Per-sample objective that the attack *ascends*, shape (N,)."""
    if loss == "ce":
        ce = F.cross_entropy(logits, y, reduction="none")
        return -ce if targeted else ce
    # margin (CW-style) loss: z_y - max_{k != y} z_k, pushed down (or up for a target)
    margin = _margin(logits, y)
    return margin if targeted else -margin


def _check_attack_args(model, x, y, eps, alpha, steps):
    check_images(x)
    check_labels(y, x.shape[0])
    check_eps(eps)
    check_step_size(alpha)
    check_steps(steps)


def _project(x_adv, x, eps):
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def pgd(model, x, y, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10, *,
        random_start: bool = True, loss: str = "ce", targeted: bool = False, target=None,
        return_kappa: bool = False):
    """Projected gradient descent in the L-inf ball (Madry et al. 2018).

    x: (N, C, H, W) in [0, 1]; y: (N,) true labels. With ``targeted=True`` the attack
    moves towards ``target`` (N,) instead of away from ``y``.
    Returns x_adv (N, C, H, W); with ``return_kappa`` also kappa (N,): the number of
    the ``steps`` iterates still classified correctly (GAIRAT's geometry value).
    """
    _check_attack_args(model, x, y, eps, alpha, steps)
    check_choice("loss", loss, {"ce", "margin"})
    if targeted:
        if target is None:
            raise ValueError("targeted=True needs target, a (N,) tensor of target classes")
        check_labels(target, x.shape[0], name="target")
    return _pgd(model, x, y, eps, alpha, steps, random_start=random_start, loss=loss,
                goal=target if targeted else y, targeted=targeted, return_kappa=return_kappa)


def _pgd(model, x, y, eps, alpha, steps, *, random_start=True, loss="ce", goal=None,
         targeted=False, return_kappa=False):
    """Unchecked kernel of :func:`pgd` (the training step calls it every batch)."""
    goal = y if goal is None else goal
    x = x.detach()
    kappa = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if return_kappa else None
    if random_start:
        x_adv = _project(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)
    else:
        x_adv = x.clone()
    with eval_mode(model):
        for _ in range(steps):
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            if return_kappa:
                kappa += (logits.argmax(1) == y).long()
            obj = _attack_loss(logits.float(), goal, loss, targeted).sum()
            (grad,) = torch.autograd.grad(obj, [x_adv])
            x_adv = _project(x_adv.detach() + alpha * grad.sign(), x, eps)
    x_adv = x_adv.detach()
    return (x_adv, kappa) if return_kappa else x_adv


def attack_dataset(model, x, y, *, eps: float, steps: int, loss: str = "ce", seed: int = 0,
                   batch_size: int = 500, alpha: float | None = None, device=None):
    """PGD-``steps`` (random start) on a whole data set, batch by batch, under a fixed seed.

    The package's one way to attack many samples: the epoch metrics, the experiment runner,
    the widgets and :func:`sovr_tutorial.evaluate.pgd_accuracy` all call it.
    x: (N, C, H, W) images or (N, D) points, float in [0, 1], on any device; y: (N,).
    alpha: the step size; None = :func:`sovr_tutorial.tiers.pgd_step_size` (code that runs a
    tier's own attack passes ``tier.alpha`` or ``tier.eval_step_size``). The random starts are drawn from a private
    stream seeded by ``seed``: the same call gives the same images and the caller's random
    state is untouched. Batches run on ``device`` (default: the model's).
    Returns x_adv, with the shape and device of ``x``; eps = 0 returns a copy of ``x``.
    """
    check_images(x)
    check_labels(y, x.shape[0])
    eps = check_eps(eps)
    steps = check_steps(steps)
    check_choice("loss", loss, {"ce", "margin"})
    seed = check_number("seed", seed, low=0, integer=True)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    device = model_device(model, device)
    if eps == 0:
        return x.detach().clone()
    alpha = pgd_step_size(eps, steps) if alpha is None else check_step_size(alpha)
    return _attack_dataset(model, x, y, eps, alpha, steps, loss=loss, seed=seed,
                           batch_size=batch_size, device=device)


def _attack_dataset(model, x, y, eps, alpha, steps, *, loss="ce", seed=0, batch_size=500,
                    device=None):
    """Unchecked kernel of :func:`attack_dataset` (``device``: where the model is)."""
    if x.shape[0] == 0:
        return x.detach().clone()
    device = x.device if device is None else device
    out = []
    with seeded(seed, device):
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            out.append(_pgd(model, xb, yb, eps, alpha, steps, loss=loss).to(x.device))
    return torch.cat(out)


def fgsm(model, x, y, eps: float = 8 / 255, *, loss: str = "ce"):
    """Fast gradient sign method (Goodfellow et al. 2015): one full step of size eps."""
    if check_eps(eps) == 0:
        check_images(x)
        check_labels(y, x.shape[0])
        return x.detach().clone()
    return pgd(model, x, y, eps=eps, alpha=eps, steps=1, random_start=False, loss=loss)


def trades_pgd(model, x, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10):
    """TRADES' inner maximisation (Zhang et al. 2019): sign-PGD on KL(p(x) || p(x')),
    started at x + 0.001 N(0, I). Labels are not used. x: (N, C, H, W) -> x' same shape."""
    check_images(x)
    check_eps(eps)
    check_step_size(alpha)
    check_steps(steps)
    return _trades_pgd(model, x, eps, alpha, steps)


def _trades_pgd(model, x, eps, alpha, steps):
    """Unchecked kernel of :func:`trades_pgd`."""
    x = x.detach()
    with eval_mode(model):
        with torch.no_grad():
            p_clean = F.softmax(model(x).float(), dim=1)
        x_adv = _project(x + 0.001 * torch.randn_like(x), x, eps)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            log_p_adv = F.log_softmax(model(x_adv).float(), dim=1)
            kl = F.kl_div(log_p_adv, p_clean, reduction="sum")
            (grad,) = torch.autograd.grad(kl, [x_adv])
            x_adv = _project(x_adv.detach() + alpha * grad.sign(), x, eps)
    return x_adv.detach()
