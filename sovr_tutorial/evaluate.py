"""Evaluation: predictions, clean accuracy, accuracy under PGD (with restarts) and the
adversarial margins of a data set.

AutoAttack lives in :mod:`sovr_tutorial.autoattack`.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .attacks import _attack_dataset, attack_dataset
from .checks import (check_choice, check_eps, check_images, check_labels, check_logits,
                     check_number, check_step_size, check_steps)
from .devices import model_device
from .margins import _margin, collect_margins
from .models import eval_mode
from .tiers import pgd_step_size


def _check_inputs(model, x, y, batch_size):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image, got an empty batch")
    check_labels(y, x.shape[0])
    return check_number("batch_size", batch_size, low=1, integer=True)


@torch.no_grad()
def _logits_argmax(model, x, y, batch_size, device) -> torch.Tensor:
    """Predicted classes (N,) on the CPU; model must already be in eval mode. With ``y``
    the logits are checked against the labels (catches labels >= number of classes)."""
    out = []
    for i in range(0, x.shape[0], batch_size):
        logits = model(x[i:i + batch_size].to(device))
        if y is not None:
            check_logits(logits, y[i:i + batch_size].to(device))
        out.append(logits.argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _predict(model, x, y, batch_size, device) -> torch.Tensor:
    """Per-sample correctness (N,) bool on the CPU; model must already be in eval mode."""
    return _logits_argmax(model, x, y, batch_size, device) == y.cpu()


def predictions(model, x, *, batch_size: int = 256, device=None) -> torch.Tensor:
    """The predicted class of every input of ``x`` (N, ...) in [0, 1]: (N,) int64 on the CPU.

    Runs in eval mode without gradients and restores the model's train/eval mode.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    device = model_device(model, device)
    with eval_mode(model):
        return _logits_argmax(model, x, None, batch_size, device)


def accuracy(model, x, y, *, batch_size: int = 256, device=None) -> float:
    """Fraction of ``x`` (N, C, H, W) in [0, 1] classified as ``y`` (N,), in [0, 1].

    Runs in eval mode without gradients and restores the model's train/eval mode.
    """
    batch_size = _check_inputs(model, x, y, batch_size)
    device = model_device(model, device)
    with eval_mode(model):
        correct = _predict(model, x, y.long(), batch_size, device)
    return correct.float().mean().item()


def pgd_accuracy(model, x, y, *, eps: float = 8 / 255, alpha: float | None = None,
                 steps: int = 20, restarts: int = 1, loss: str = "ce", batch_size: int = 256,
                 device=None, progress: bool = False, seed: int = 0) -> float:
    """Accuracy under L-inf PGD (random start) with ``restarts`` restarts, in [0, 1].

    A sample counts as robust only if it is classified correctly clean and after every
    restart; each restart attacks only the samples still robust (same answer, less work).
    ``loss``: "ce" (cross-entropy) or "margin" (CW-style). ``alpha``: the step size, None =
    the package's rule :func:`sovr_tutorial.tiers.pgd_step_size` (2/255 for PGD-20 at
    8/255). Restart ``r`` is :func:`sovr_tutorial.attacks.attack_dataset` with seed
    ``seed + r``: the caller's random stream is untouched and more restarts never raise
    the number.
    """
    batch_size = _check_inputs(model, x, y, batch_size)
    eps = check_eps(eps)
    steps = check_steps(steps)
    alpha = pgd_step_size(eps, steps) if alpha is None else check_step_size(alpha)
    restarts = check_number("restarts", restarts, low=1, integer=True)
    check_choice("loss", loss, {"ce", "margin"})
    seed = check_number("seed", seed, low=0, integer=True)
    device = model_device(model, device)
    y = y.long()
    with eval_mode(model):
        robust = _predict(model, x, y, batch_size, device)
        with tqdm(total=restarts, desc=f"PGD-{steps}", disable=not progress) as bar:
            for r in range(restarts):
                idx = robust.nonzero().flatten()
                if eps > 0 and idx.numel():
                    x_adv = _attack_dataset(model, x[idx.to(x.device)], y[idx.to(y.device)],
                                            eps, alpha, steps, loss=loss, seed=seed + r,
                                            batch_size=batch_size, device=device)
                    robust[idx] = _predict(model, x_adv, y[idx.to(y.device)], batch_size,
                                           device)
                bar.update(1)
                bar.set_postfix(robust=f"{robust.float().mean().item():.1%}")
    return robust.float().mean().item()


def adversarial_margins(model, x, y, *, eps: float, steps: int, step_size: float | None = None,
                        seed: int = 0, loss: str = "ce", batch_size: int = 256,
                        gradients: bool = True, p: int = 1, device=None,
                        progress: bool = False) -> dict:
    """The package's one way to measure the adversarial margins of a data set.

    PGD-``steps`` at ``eps`` with step ``step_size`` (None = the rule
    :func:`sovr_tutorial.tiers.pgd_step_size`; code that measures at a tier's own attack
    passes ``tier.alpha`` or ``tier.eval_step_size``), random starts drawn from a private
    stream seeded by ``seed`` (:func:`sovr_tutorial.attacks.attack_dataset`, so the caller's
    random state is untouched and the same call gives the same numbers), then the logit
    margin at every attacked input. The runner, the epoch metrics, the widgets, the toy world
    and the notebooks all call it, so a number measured live and one in a result file differ
    only where their settings do.

    x: (N, C, H, W) images or (N, D) points, float in [0, 1]; y: (N,) int.
    Returns numpy arrays of shape (N,): "margin" and "correct" (argmax == y at the attacked
    input), and "x_adv" (N, ...) with the device of ``x``. With ``gradients`` (the default)
    also :func:`sovr_tutorial.margins.collect_margins`'s "grad_norm" (L-p) and
    "flip_budget" at the attacked inputs; ``gradients=False`` skips that backward pass.
    Batches of ``batch_size`` run on ``device`` (default: the model's) in eval mode.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(gradients, bool):
        raise TypeError(f"gradients must be True or False, got {gradients!r}")
    check_choice("p", p, {1, 2})
    x_adv = attack_dataset(model, x, y, eps=eps, steps=steps, loss=loss, seed=seed,
                           batch_size=batch_size, alpha=step_size, device=device)
    if gradients:
        out = collect_margins(model, x_adv, y, batch_size=batch_size, p=p, device=device,
                              progress=progress)
        return {**out, "x_adv": x_adv}
    device = model_device(model, device)
    margins, correct = [], []
    with torch.no_grad(), eval_mode(model):
        for i in range(0, x_adv.shape[0], batch_size):
            yb = y[i:i + batch_size].to(device)
            logits = model(x_adv[i:i + batch_size].to(device))
            if logits.dtype in (torch.float16, torch.bfloat16):   # under autocast
                logits = logits.float()
            check_logits(logits, yb)
            margins.append(_margin(logits, yb).cpu())
            correct.append((logits.argmax(1) == yb).cpu())
    margin = torch.cat(margins) if margins else torch.zeros(0)
    hit = torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
    return {"margin": margin.numpy(), "correct": hit.numpy(), "x_adv": x_adv}


def pgd_aa_gap(pgd_acc: float, aa_acc: float) -> float:
    """PGD accuracy minus AutoAttack accuracy: how much robustness PGD over-reports.

    A large gap means PGD's gradients are misled (e.g. gradient masking); the headline
    diagnostic for importance-aware training methods.
    """
    pgd_acc = check_number("pgd_acc", pgd_acc, low=0.0, high=1.0)
    aa_acc = check_number("aa_acc", aa_acc, low=0.0, high=1.0)
    return pgd_acc - aa_acc
