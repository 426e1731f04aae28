"""Argument checks shared by the public API.

Every public function validates what a reader can get wrong and raises
``ValueError``/``TypeError`` naming the argument, the value and the allowed range,
so a typo like ``2/225`` for ``2/255`` is caught loudly instead of giving a quiet,
wrong answer.
"""
from __future__ import annotations

import math

import torch


def check_number(name: str, value, *, low=None, high=None, low_open=False, high_open=False,
                 integer=False):
    """Raise unless ``value`` is a finite real number inside the given range.

    ``low_open=True`` excludes ``low`` itself (``value > low``), likewise ``high_open``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if integer and (not float(value).is_integer()):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    allowed = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must lie in {allowed}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must lie in {allowed}, got {value!r}")
    return int(value) if integer else value


def check_eps(eps, name: str = "eps"):
    """An L-inf budget in [0, 1] pixel units (8/255, not 8)."""
    return check_number(name, eps, low=0.0, high=1.0)


def check_steps(steps, name: str = "steps"):
    return check_number(name, steps, low=1, integer=True)


def check_step_size(alpha, name: str = "alpha"):
    return check_number(name, alpha, low=0.0, low_open=True, high=1.0)


def check_ratio(ratio, name: str = "ratio"):
    return check_number(name, ratio, low=0.0, high=1.0)


def check_choice(name: str, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


def check_images(x, name: str = "x"):
    """Inputs of a model or an attack: float tensor (N, C, H, W) images, or (N, D) points
    (the toy world), with values in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (2, 4):
        raise ValueError(f"{name} must have shape (N, C, H, W) or (N, D), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype} "
                        "(convert uint8 images with x.float() / 255)")
    if x.numel():
        lo, hi = x.min().item(), x.max().item()
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} holds NaN or inf values")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name} must be images in [0, 1] pixel space, got values in "
                             f"[{lo:.4g}, {hi:.4g}] (models here normalise inside; pass raw "
                             "pixels, not normalised ones)")
    return x


def check_labels(y, n: int, num_classes: int | None = None, name: str = "y"):
    """Integer labels of shape (n,), each in [0, num_classes)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the batch, got {tuple(y.shape)}")
    if num_classes is not None and y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must be class indices in [0, {num_classes - 1}], "
                             f"got values in [{lo}, {hi}]")
    return y


def check_logits(logits, y, name: str = "logits"):
    """Logits (N, K) with K >= 2, finite, and labels (N,) in [0, K)."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"{name} must have shape (N, K) with K >= 2, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {logits.dtype}")
    if not torch.isfinite(logits).all():
        raise ValueError(f"{name} hold NaN or inf values: the model or its inputs diverged")
    check_labels(y, logits.shape[0], logits.shape[1])
    return logits


def check_reduction(reduction):
    return check_choice("reduction", reduction, {"mean", "sum", "none"})


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a loss reduction to per-sample values of shape (N,)."""
    check_reduction(reduction)
    if reduction == "none":
        return values
    return values.sum() if reduction == "sum" else values.mean()
