"""Training losses of the course: CE, OVR, SOVR and the baselines TRADES, MART, GAIRAT.

Formulas follow docs/method.md. All functions are pure: logits in, loss out.
Shapes: logits (N, K) float, y (N,) int in [0, K). Each loss returns the batch mean
(``reduction="mean"``), the sum (``"sum"``) or per-sample values of shape (N,) (``"none"``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_logits, check_number, check_reduction, check_steps, reduce
from .margins import _margin

from .runs import DEFAULT_SOVR_RATIO, check_rule_value

def _one_hot_mask(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(1, y.long().unsqueeze(1), True)


def _ce_per_sample(logits, y):
    return F.cross_entropy(logits, y.long(), reduction="none")


def _ovr_per_sample(logits, y):
    # Select softplus(-z_y) or softplus(z_k) per entry instead of subtracting the true
    # class from a full sum: no cancellation when z_y is large.
    is_true = _one_hot_mask(logits, y)
    return torch.where(is_true, F.softplus(-logits), F.softplus(logits)).sum(dim=1)


def _check_pair(logits_clean, logits_adv, y):
    check_logits(logits_clean, y, name="logits_clean")
    if getattr(logits_adv, "shape", None) != logits_clean.shape:
        raise ValueError(f"logits_clean and logits_adv must have the same shape, got "
                         f"{tuple(logits_clean.shape)} and {tuple(getattr(logits_adv, 'shape', ()))}")
    check_logits(logits_adv, y, name="logits_adv")


def ce_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy ``-log softmax(z)_y``. logits (N, K), y (N,) -> scalar or (N,)."""
    check_logits(logits, y)
    check_reduction(reduction)
    return reduce(_ce_per_sample(logits, y), reduction)


def ovr_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """One-vs-the-rest loss ``softplus(-z_y) + sum_{k != y} softplus(z_k)``.

    Each logit is its own binary (sigmoid) classifier; plain sum over classes, no scaling
    [recon]. logits (N, K), y (N,) -> scalar or (N,).
    """
    check_logits(logits, y)
    check_reduction(reduction)
    return reduce(_ovr_per_sample(logits, y), reduction)


def sovr_select(margins: torch.Tensor, rule: str = "ratio",
                value: float = DEFAULT_SOVR_RATIO) -> torch.Tensor:
    """Which samples SOVR treats as important (they get OVR): bool mask (N,).

    margins: (N,) float. ``rule="ratio"``: the ``M = floor(value * N + 0.5)`` samples with
    the smallest margins (value * N rounded half up); ``"threshold"``: ``margin < value``;
    ``"boundary"`` [recon]: the M samples with the smallest ``|margin|``. Ties go to the
    lower index, so the choice is deterministic.
    """
    if not isinstance(margins, torch.Tensor):
        raise TypeError(f"margins must be a torch.Tensor, got {type(margins).__name__}")
    if margins.dim() != 1:
        raise ValueError(f"margins must have shape (N,), got {tuple(margins.shape)}")
    if margins.is_floating_point() and torch.isnan(margins).any():
        raise ValueError("margins hold NaN values")
    return _select(margins, rule, check_rule_value(rule, value))


def _select(margins, rule, value):
    if rule == "threshold":
        return margins < value
    n = margins.shape[0]
    # Round half up (not Python's round-half-even) so M grows monotonically with value.
    m = min(n, int(value * n + 0.5))
    key = margins.abs() if rule == "boundary" else margins
    mask = torch.zeros(n, dtype=torch.bool, device=margins.device)
    if m:
        mask[torch.sort(key, stable=True).indices[:m]] = True
    return mask


def _sovr_per_sample(logits, y, rule, value):
    """Unchecked kernel of :func:`sovr_loss`: (per-sample loss (N,), mask (N,))."""
    with torch.no_grad():
        mask = _select(_margin(logits.detach(), y), rule, value)
    return torch.where(mask, _ovr_per_sample(logits, y), _ce_per_sample(logits, y)), mask


def sovr_loss(logits: torch.Tensor, y: torch.Tensor, rule: str = "ratio",
              value: float = DEFAULT_SOVR_RATIO, reduction: str = "mean",
              return_mask: bool = False):
    """Switching OVR loss: OVR for the important (small-margin) samples, CE for the rest.

    logits (N, K) (in SOVR-AT: the adversarial logits), y (N,). The margins
    ``z_y - max_{k != y} z_k`` are computed from ``logits`` without gradient and passed to
    :func:`sovr_select` with ``rule`` / ``value``. Per-sample loss ``where(mask, ovr, ce)``
    (N,), then reduced. Ratio 0 gives exactly :func:`ce_loss`, ratio 1 exactly
    :func:`ovr_loss` (values and gradients).
    Returns the loss, or ``(loss, mask)`` with ``return_mask=True``.
    """
    check_logits(logits, y)
    check_reduction(reduction)
    per_sample, mask = _sovr_per_sample(logits, y, rule, check_rule_value(rule, value))
    loss = reduce(per_sample, reduction)
    return (loss, mask) if return_mask else loss


def _kl_rows(logits_p, logits_q):
    """``KL(softmax(p) || softmax(q))`` per row (N,), from log-softmax for stability."""
    log_p = F.log_softmax(logits_p, dim=1)
    log_q = F.log_softmax(logits_q, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def trades_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
                beta: float = 6.0, reduction: str = "mean") -> torch.Tensor:
    """TRADES: ``CE(z(x), y) + beta * KL(p(x) || p(x'))`` per sample (KL summed over classes).

    logits_clean, logits_adv: (N, K); y (N,). Gradients flow through both logits, as in
    the TRADES reference code.
    """
    _check_pair(logits_clean, logits_adv, y)
    beta = check_number("beta", beta, low=0.0)
    check_reduction(reduction)
    return reduce(_trades_per_sample(logits_clean, logits_adv, y, beta), reduction)


def _trades_per_sample(logits_clean, logits_adv, y, beta):
    return _ce_per_sample(logits_clean, y) + beta * _kl_rows(logits_clean, logits_adv)


def mart_loss(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor,
              beta: float = 5.0, reduction: str = "mean") -> torch.Tensor:
    """MART: boosted CE at x' plus a misclassification-weighted KL.

    Per sample:
    ``CE(z', y) - log(1.0001 - p'_{yhat}) + beta * KL(p || p') * (1.0000001 - p_y)``,
    with ``p = softmax(z(x))``, ``p' = softmax(z(x'))`` and ``yhat = argmax_{k != y} p'_k``.
    ``beta = 5`` is MART's ResNet-18 value (6 for WRN). logits_clean, logits_adv: (N, K).
    The constants 1.0001 and 1.0000001 are MART's; its code also adds 1e-12 inside the
    logs, which log-softmax makes unnecessary here. Nothing is detached, as in MART's code.
    """
    _check_pair(logits_clean, logits_adv, y)
    beta = check_number("beta", beta, low=0.0)
    check_reduction(reduction)
    return reduce(_mart_per_sample(logits_clean, logits_adv, y, beta), reduction)


def _mart_per_sample(logits_clean, logits_adv, y, beta):
    probs_adv = F.softmax(logits_adv, dim=1)
    others = logits_adv.masked_fill(_one_hot_mask(logits_adv, y), float("-inf"))
    y_hat = others.argmax(dim=1, keepdim=True)
    p_wrong = probs_adv.gather(1, y_hat).squeeze(1)
    boosted_ce = _ce_per_sample(logits_adv, y) - torch.log(1.0001 - p_wrong)
    p_true_clean = F.softmax(logits_clean, dim=1).gather(1, y.long().unsqueeze(1)).squeeze(1)
    weighted_kl = _kl_rows(logits_clean, logits_adv) * (1.0000001 - p_true_clean)
    return boosted_ce + beta * weighted_kl


def _check_kappa(kappa, steps, lam):
    """The checks of :func:`gairat_weights`; returns (kappa as floats, steps, lam)."""
    if not isinstance(kappa, torch.Tensor):
        raise TypeError(f"kappa must be a torch.Tensor, got {type(kappa).__name__}")
    if kappa.dim() != 1 or kappa.shape[0] == 0:
        raise ValueError(f"kappa must have shape (N,) with N >= 1, got {tuple(kappa.shape)}")
    steps = check_steps(steps)
    lam = check_number("lam", lam)
    kappa = kappa.detach().to(torch.get_default_dtype() if not kappa.is_floating_point()
                              else kappa.dtype)
    if not torch.isfinite(kappa).all():
        raise ValueError("kappa holds NaN or inf values")
    lo, hi = kappa.min().item(), kappa.max().item()
    if lo < 0 or hi > steps:
        raise ValueError(f"kappa must lie in [0, steps={steps}], got values in [{lo:.4g}, {hi:.4g}]")
    return kappa, steps, lam


def gairat_weights(kappa: torch.Tensor, steps: int, lam: float = -1.0) -> torch.Tensor:
    """GAIRAT weights ``w_i = (1 + tanh(lam + 5 (K/2 - kappa_i) / (K/2))) / 2``, mean 1.

    kappa: (N,) number of PGD iterates (of ``steps`` = K) still classified correctly,
    values in [0, K]. Returns float (N,) normalised to mean 1 over the batch (no gradient).
    Samples that are attacked successfully early (small kappa) get large weights.
    GAIRAT's code uses int(K/2); it equals K/2 for the usual even K.
    """
    kappa, steps, lam = _check_kappa(kappa, steps, lam)
    return _gairat_weights(kappa, steps, lam)


def _gairat_weights(kappa, steps, lam):
    """Unchecked kernel of :func:`gairat_weights` (kappa a float tensor)."""
    half = steps / 2.0
    # (1 + tanh(a)) / 2 == sigmoid(2a) exactly; the sigmoid form keeps full relative
    # precision where tanh saturates at -1 (kappa near K), which float32 1 + tanh loses.
    raw = torch.sigmoid(2.0 * (lam + 5.0 * (half - kappa) / half))
    return raw / raw.mean()


def gairat_loss(logits_adv: torch.Tensor, y: torch.Tensor, kappa: torch.Tensor, steps: int,
                lam: float = -1.0, reduction: str = "mean") -> torch.Tensor:
    """GAIRAT: ``w_i * CE(z(x'_i), y_i)`` with :func:`gairat_weights`, then reduced.

    logits_adv (N, K), y (N,), kappa (N,) in [0, steps]. The weights carry no gradient.
    """
    check_logits(logits_adv, y, name="logits_adv")
    check_reduction(reduction)
    if isinstance(kappa, torch.Tensor) and kappa.dim() == 1 and kappa.shape[0] != y.shape[0]:
        raise ValueError(f"kappa must have shape ({y.shape[0]},) to match the batch, "
                         f"got {tuple(kappa.shape)}")
    kappa, steps, lam = _check_kappa(kappa, steps, lam)
    return reduce(_gairat_per_sample(logits_adv, y, kappa, steps, lam), reduction)


def _gairat_per_sample(logits_adv, y, kappa, steps, lam):
    """Unchecked kernel of :func:`gairat_loss`: the per-sample weighted CE (N,)."""
    # the weights in the logits' precision (float32 in training, as the step computes them)
    weights = _gairat_weights(kappa.to(logits_adv.device, logits_adv.dtype), steps, lam)
    return weights * _ce_per_sample(logits_adv, y)
