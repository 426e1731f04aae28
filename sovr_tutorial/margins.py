"""Logit margins, their input gradients and the first-order flip budget.

The course's diagnostics (claims 2-4 of docs/method.md) look at three numbers per sample:

* the logit margin ``m(x, y) = z_y(x) - max_{k != y} z_k(x)`` (negative = misclassified),
* the norm of its input gradient ``||grad_x m(x, y)||_p`` (``p = 1`` is the dual of the
  L-inf threat model: ``m(x + d) >= m(x) - eps * ||grad_x m||_1`` to first order),
* the flip budget ``m / ||grad_x m||_p``: the eps at which the top logit flips to first
  order. It is scale-free, so it still compares methods that shrink the whole logit scale.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.signal import find_peaks
from scipy.stats import gaussian_kde
from tqdm.auto import tqdm

from .checks import check_choice, check_images, check_labels, check_logits, check_number
from .devices import model_device
from .models import eval_mode

_NORMS = {1, 2}


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit margin ``z_y - max_{k != y} z_k``.

    logits: (N, K) float, y: (N,) int in [0, K). Returns (N,), differentiable in ``logits``.
    """
    check_logits(logits, y)
    return _margin(logits, y)


def _margin(logits, y):
    """Unchecked kernel of :func:`logit_margin`, for losses, attacks and metrics."""
    true = logits.gather(1, y.long().unsqueeze(1)).squeeze(1)
    # -inf on the true class keeps it out of the max; K >= 2 so one finite entry is left.
    best_other = logits.scatter(1, y.long().unsqueeze(1), float("-inf")).amax(dim=1)
    return true - best_other


def _check_model(model) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _margin_and_grad(model, x, y, p):
    """One forward/backward: (logits (N,K), margin (N,), ||grad_x margin||_p (N,)), detached.

    The model must already be in eval mode: then samples do not interact (BatchNorm uses
    running statistics), so the gradient of the summed margins is the per-sample gradient.
    """
    with torch.enable_grad():
        x_req = x.detach().clone().requires_grad_(True)
        logits = model(x_req)
        check_logits(logits.detach(), y)   # labels must index the model's classes
        margin = _margin(logits, y)
        # autograd.grad w.r.t. the input only: parameters get no .grad written.
        (grad,) = torch.autograd.grad(margin.sum(), x_req)
    flat = grad.flatten(1)
    norm = flat.abs().sum(dim=1) if p == 1 else flat.pow(2).sum(dim=1).sqrt()
    return logits.detach(), margin.detach(), norm.detach()


def margin_grad_norm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     p: int = 1) -> torch.Tensor:
    """Per-sample ``||grad_x m(x, y)||_p`` for ``p`` in {1, 2}.

    x: (N, C, H, W) float in [0, 1], y: (N,) int. Returns (N,) detached, on x's device.
    The model runs in eval mode and its modes are restored afterwards; no parameter
    ``.grad`` is created or changed.
    """
    _check_model(model)
    check_images(x)
    check_labels(y, x.shape[0])
    check_choice("p", p, _NORMS)
    with eval_mode(model):
        _, _, norm = _margin_and_grad(model, x, y, p)
    return norm


def _as_float_tensor(name, value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.asarray(value, dtype=np.float64)), True
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            value = value.double()
        return value.detach(), False
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def flip_budget(margin, grad_norm):
    """First-order eps at which the top logit flips: ``margin / grad_norm``.

    margin, grad_norm: same shape (N,), tensors or numpy arrays (numpy in => numpy out).
    Where ``grad_norm == 0`` the first-order model never flips: +inf for a positive margin,
    -inf for a negative one (already wrong), 0 for a margin of exactly 0.
    Negative values mean the sample is already misclassified.
    """
    m, m_np = _as_float_tensor("margin", margin)
    g, g_np = _as_float_tensor("grad_norm", grad_norm)
    if m.shape != g.shape:
        raise ValueError(f"margin and grad_norm must have the same shape, got {tuple(m.shape)} "
                         f"and {tuple(g.shape)}")
    if m.numel():
        if torch.isnan(m).any():
            raise ValueError("margin holds NaN values")
        if not torch.isfinite(g).all():
            raise ValueError("grad_norm holds NaN or inf values")
        if (g < 0).any():
            raise ValueError(f"grad_norm must be >= 0 (it is a norm), got min {g.min().item():.4g}")
    g = g.to(m.device, torch.promote_types(m.dtype, g.dtype))
    zero = g == 0
    safe = torch.where(zero, torch.ones_like(g), g)
    out = torch.where(zero, torch.sign(m) * math.inf, m / safe)
    # sign(0) * inf is NaN: a zero margin with a zero gradient sits on the boundary.
    out = torch.where(zero & (m == 0), torch.zeros_like(out), out)
    return out.cpu().numpy() if (m_np or g_np) else out


def collect_margins(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    batch_size: int = 256, p: int = 1, device=None,
                    progress: bool = True) -> dict:
    """Margins, gradient norms, flip budgets and correctness at the inputs ``x``.

    x: (N, C, H, W) float in [0, 1] (clean images, or ones already attacked: the margins
    at PGD points are :func:`sovr_tutorial.evaluate.adversarial_margins`), y: (N,) int.
    ``device``: where to compute: the model's device (an explicit one must be that one).
    Returns numpy arrays of shape (N,): "margin", "grad_norm" (L-p, p in {1, 2}),
    "flip_budget" (margin / grad_norm) and "correct" (bool: argmax == y).
    The model is in eval mode throughout and its modes are restored afterwards.
    """
    _check_model(model)
    check_images(x)
    check_labels(y, x.shape[0])
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    check_choice("p", p, _NORMS)
    device = model_device(model, device)
    margins, norms, correct = [], [], []
    with eval_mode(model):
        starts = range(0, x.shape[0], batch_size)
        for start in tqdm(starts, desc="margins", disable=not progress, leave=False):
            xb = x[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device)
            logits, margin, norm = _margin_and_grad(model, xb, yb, p)
            margins.append(margin.cpu())
            norms.append(norm.cpu())
            correct.append((logits.argmax(dim=1) == yb).cpu())
    if margins:
        margin = torch.cat(margins)
        norm = torch.cat(norms)
        hit = torch.cat(correct)
    else:
        margin = norm = torch.zeros(0)
        hit = torch.zeros(0, dtype=torch.bool)
    return {
        "margin": margin.numpy(),
        "grad_norm": norm.numpy(),
        "flip_budget": flip_budget(margin, norm).numpy(),
        "correct": hit.numpy(),
    }


def _as_numpy_margins(margins, name="margins") -> np.ndarray:
    if isinstance(margins, torch.Tensor):
        margins = margins.detach().cpu().numpy()
    if not isinstance(margins, np.ndarray):
        try:
            margins = np.asarray(margins, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a tensor, array or sequence of numbers, "
                            f"got {type(margins).__name__}") from None
    margins = np.asarray(margins, dtype=np.float64).ravel()
    if margins.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(margins).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return margins


def margin_histogram(margins, bins: int = 40, range=None):
    """Histogram of margins: ``(counts (bins,), edges (bins + 1,))`` as numpy arrays.

    ``range``: (low, high) or None for the data's min/max (same as ``numpy.histogram``).
    """
    values = _as_numpy_margins(margins)
    bins = check_number("bins", bins, low=1, integer=True)
    if range is not None:
        if not isinstance(range, (tuple, list)) or len(range) != 2:
            raise TypeError(f"range must be None or a pair (low, high), got {range!r}")
        low = check_number("range[0]", range[0])
        high = check_number("range[1]", range[1])
        if not low < high:
            raise ValueError(f"range must satisfy low < high, got {range!r}")
        range = (float(low), float(high))
    return np.histogram(values, bins=bins, range=range)


# "Small" margin for the summary, in logit units [recon: a reading aid, not from the paper;
# logit scales differ between methods, so compare flip budgets too].
DEFAULT_SMALL_MARGIN = 1.0


def margin_summary(margins, small: float = DEFAULT_SMALL_MARGIN) -> dict:
    """Quantiles and fractions of a set of margins, as plain floats.

    Keys: "n", "mean", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "small" (the cut used),
    "frac_small" (fraction with 0 <= margin < small) and "frac_negative" (margin < 0).
    """
    values = _as_numpy_margins(margins)
    small = check_number("small", small, low=0.0, low_open=True)
    q = np.quantile(values, [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "q05": float(q[0]), "q10": float(q[1]), "q25": float(q[2]), "q50": float(q[3]),
        "q75": float(q[4]), "q90": float(q[5]), "q95": float(q[6]),
        "small": float(small),
        "frac_small": float(((values >= 0) & (values < small)).mean()),
        "frac_negative": float((values < 0).mean()),
    }


def kde_bandwidth(values) -> float:
    """Silverman's rule of thumb: ``0.9 * min(std, IQR / 1.34) * n ** (-1/5)``."""
    v = _as_numpy_margins(values, "values")
    q75, q25 = np.percentile(v, [75, 25])
    spread = min(v.std(ddof=1) if v.size > 1 else 0.0, (q75 - q25) / 1.34) or v.std() or 1.0
    return float(0.9 * spread * v.size ** (-0.2))


def margin_peaks(values, *, valley: float = 0.7, min_height: float = 0.1, grid: int = 512,
                 bandwidth=None) -> list:
    """Positions of the peaks of a sample's density, highest first.

    The density is SciPy's Gaussian KDE with Silverman's bandwidth (:func:`kde_bandwidth`)
    unless ``bandwidth`` is given, evaluated on ``grid`` points spanning the sample +- 3
    bandwidths; its maxima are SciPy's ``find_peaks``. A maximum lower than ``min_height``
    times the highest one is a wiggle of a few samples in a tail, not a peak (a single normal
    sample of 2000 has such wiggles). Two maxima count as two peaks only when the density
    between them falls below ``valley`` times the smaller one (its prominence is at least
    ``1 - valley`` of its height); otherwise the lower one is part of the higher. values: (N,) finite floats, N >= 2. ``len(...)`` is the number of peaks the
    course reports (one = unimodal, two = an easy and a hard group).
    """
    v = _as_numpy_margins(values, "values")
    if v.size < 2:
        raise ValueError(f"margin_peaks needs at least 2 values, got {v.size}")
    valley = check_number("valley", valley, low=0.0, high=1.0)
    min_height = check_number("min_height", min_height, low=0.0, high=1.0)
    h = kde_bandwidth(v) if bandwidth is None else check_number("bandwidth", bandwidth,
                                                                low=0.0, low_open=True)
    if np.ptp(v) == 0:   # every sample the same (a model stuck at one output): one peak
        return [float(v[0])]
    xs = np.linspace(v.min() - 3 * h, v.max() + 3 * h, int(grid))
    # SciPy's KDE scales the data's standard deviation by its factor: bandwidth h
    dens = gaussian_kde(v, bw_method=h / v.std(ddof=1))(xs)
    # A maximum is a peak when it is at least min_height of the highest and falls to a valley
    # below `valley` times its own height before a higher one: its prominence is at least
    # (1 - valley) times its height.
    idx, props = find_peaks(dens, height=min_height * dens.max(), prominence=0.0)
    keep = props["prominences"] >= (1.0 - valley) * dens[idx] - 1e-12 * dens.max()
    keep[np.argmax(dens[idx])] = True   # the highest maximum is always a peak
    peaks = idx[keep]
    return [float(xs[i]) for i in sorted(peaks, key=lambda i: -dens[i])]


#: the bins of the margin histograms a result file stores (logits)
STATS_RANGE = (-10.0, 10.0)
STATS_BINS = 80


def margin_stats(measured: dict) -> dict:
    """The summary a result file keeps of :func:`collect_margins`'s (or
    :func:`sovr_tutorial.evaluate.adversarial_margins`') output ``measured``: margins,
    gradient norms and flip budgets summarised, the peaks of the margins' density, the
    histogram on STATS_BINS / STATS_RANGE, the accuracy at those inputs and the margins."""
    margin = np.asarray(measured["margin"])   # float32 as measured: "values" round it
    counts, edges = margin_histogram(margin, bins=STATS_BINS, range=STATS_RANGE)
    fb = np.asarray(measured["flip_budget"])
    fb = fb[np.isfinite(fb)]
    return {"margin": margin_summary(margin),
            "peaks": margin_peaks(margin),
            "grad_norm_l1": margin_summary(measured["grad_norm"]),
            "flip_budget": margin_summary(fb) if len(fb) else None,
            "hist_counts": counts.tolist(), "hist_edges": edges.tolist(),
            "accuracy": float(np.asarray(measured["correct"]).mean()),
            "values": np.round(margin, 3).tolist()}
