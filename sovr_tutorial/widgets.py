"""The course's interactive explorers: the eps slider (notebook 01) and the SOVR threshold
explorer (notebook 04).

Every slider is a thin wiring of a *pure function of explicit arguments* that tests (and
readers without a live kernel) call directly:

* :func:`eps_view` ``(model, x, y, eps) -> (info, Figure)``: PGD at one eps, pictures of
  clean / perturbation / adversarial images with their predictions.
* :func:`explore_threshold` ``(base_model, x_train, y_train, x_eval, y_eval, rule=, value=,
  tier=) -> (info, Figure)``: fine-tune a *copy* of ``base_model`` for a few SOVR steps at
  one switching ratio or margin threshold, then draw its adversarial-margin histogram next
  to a reference (AT's).

:func:`eps_explorer` and :func:`threshold_explorer` build the ipywidgets around them. Each
call builds a fresh, independent widget (its own cache, no module-level state); a callback
that fails shows a readable message and leaves the widget usable. CSS classes a browser
test can find: ``sovr-eps-slider``, ``sovr-eps-label``, ``sovr-eps-figure``,
``sovr-threshold-slider``, ``sovr-rule-toggle``, ``sovr-switched-label``,
``sovr-threshold-stats``, ``sovr-threshold-figure``, ``sovr-threshold-message``.
"""
from __future__ import annotations

import copy
import html
import io
import math

import numpy as np
import torch
from matplotlib.figure import Figure

from .attacks import eval_mode, pgd, seeded
from .checks import (check_choice, check_eps, check_images, check_labels, check_number,
                     check_ratio, check_steps)
from .data import CLASSES
from .losses import DEFAULT_SOVR_RATIO
from .margins import collect_margins, margin_summary
from .tiers import Tier, get_tier

RULES = ("ratio", "threshold")
#: slider ranges of the threshold explorer: (min, max, step, initial value)
RATIO_RANGE = (0.0, 1.0, 0.1, DEFAULT_SOVR_RATIO)
THRESHOLD_RANGE = (-2.0, 6.0, 0.5, 1.0)
_CACHE_SIZE = 64


# --------------------------------------------------------------------------- helpers

def _check_model(model):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _device_of(model) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _float_images(x, name):
    """uint8 (as from load_cifar10) -> float [0, 1]; float images are checked as they are."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        x = x.float().div(255)
    return check_images(x, name=name)


@torch.no_grad()
def _predict(model, x, batch_size=256):
    device = _device_of(model)
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                      for i in range(0, x.shape[0], batch_size)])


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """The PNG bytes of a matplotlib figure (what the widgets show)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _eps_text(eps: float) -> str:
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.4g}"


def _pgd_alpha(eps: float, steps: int) -> float:
    """The usual step size 2.5 * eps / steps (Madry et al.), capped at 1."""
    return min(2.5 * eps / steps, 1.0)


# --------------------------------------------------------------------------- eps slider

def eps_view(model, x, y, eps, *, steps: int = 10, classes=CLASSES, n_show: int = 6,
             seed: int = 0):
    """PGD at one eps: ``(info, Figure)``; a pure function of its arguments.

    x: (N, 3, H, W) images, float in [0, 1] (uint8 is converted); y: (N,) labels.
    eps: L-inf budget in [0, 1] (eps = 0 returns the clean images). PGD-``steps`` with
    step size ``2.5 * eps / steps`` and a random start seeded by ``seed`` (the caller's
    random stream is untouched), model in eval mode.
    info: ``eps``, ``steps``, ``n``, ``clean_accuracy``, ``accuracy`` (under the attack)
    and ``n_flipped`` (predictions that changed). The figure shows the first ``n_show``
    images: clean, perturbation (magnified), adversarial, with predicted classes.
    """
    _check_model(model)
    x = _float_images(x, "x")
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image")
    classes = tuple(classes)
    check_labels(y, x.shape[0], len(classes))
    eps = float(check_eps(eps))
    steps = check_steps(steps)
    n_show = min(check_number("n_show", n_show, low=1, integer=True), x.shape[0])
    seed = check_number("seed", seed, low=0, integer=True)
    y = y.long().cpu()
    x = x.cpu()
    device = _device_of(model)
    with eval_mode(model):
        clean_pred = _predict(model, x)
        if eps == 0:
            x_adv = x.clone()
        else:
            with seeded(seed, device):
                x_adv = torch.cat([
                    pgd(model, x[i:i + 256].to(device), y[i:i + 256].to(device), eps=eps,
                        alpha=_pgd_alpha(eps, steps), steps=steps).cpu()
                    for i in range(0, x.shape[0], 256)])
        adv_pred = _predict(model, x_adv)
    info = {"eps": eps, "steps": steps, "n": int(x.shape[0]),
            "clean_accuracy": (clean_pred == y).float().mean().item(),
            "accuracy": (adv_pred == y).float().mean().item(),
            "n_flipped": int((adv_pred != clean_pred).sum())}
    fig = _eps_figure(x[:n_show], x_adv[:n_show], y[:n_show], clean_pred[:n_show],
                      adv_pred[:n_show], eps, steps, classes, info)
    return info, fig


def _eps_figure(x, x_adv, y, clean_pred, adv_pred, eps, steps, classes, info):
    n = x.shape[0]
    fig = Figure(figsize=(1.7 * n + 0.8, 6.0))
    axes = fig.subplots(3, n, squeeze=False)
    delta = x_adv - x
    scale = max(2 * eps, 1e-12)
    rows = [("clean", x, clean_pred), ("perturbation\n(magnified)", (delta / scale + 0.5).clamp(0, 1), None),
            ("adversarial", x_adv, adv_pred)]
    for r, (name, imgs, pred) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.imshow(imgs[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name, fontsize=10)
            if pred is not None:
                ok = int(pred[i]) == int(y[i])
                ax.set_title(classes[int(pred[i])], fontsize=9,
                             color="tab:green" if ok else "tab:red")
            elif r == 1:
                ax.set_title(f"true: {classes[int(y[i])]}", fontsize=8, color="0.3")
    fig.suptitle(f"PGD-{steps} at eps = {_eps_text(eps)}: accuracy {info['accuracy']:.1%} "
                 f"(clean {info['clean_accuracy']:.1%}); {info['n_flipped']} of {info['n']} "
                 "predictions changed\n(titles: predicted class, green = correct, red = wrong)",
                 fontsize=10)
    return fig


def _eps_label(info) -> str:
    return (f"eps = {_eps_text(info['eps'])}: accuracy {info['accuracy']:.1%} "
            f"(clean {info['clean_accuracy']:.1%}), {info['n_flipped']} of {info['n']} "
            "predictions changed")


class EpsExplorer:
    """The eps slider: an IntSlider in units of 1/255 wired to :func:`eps_view`.

    ``explorer.widget`` is the VBox to display; ``slider``, ``label``, ``figure`` (an
    ipywidgets.Image holding PNG bytes) and ``message`` are its parts. Results are cached
    per eps, so dragging back to a seen value is instant.
    """

    def __init__(self, model, x, y, *, eps_max=16 / 255, steps=10, classes=CLASSES,
                 n_show=6, seed=0, value=None, compute=True):
        import ipywidgets as w

        _check_model(model)
        self.x = _float_images(x, "x")
        check_labels(y, self.x.shape[0], len(tuple(classes)))
        eps_max = float(check_eps(eps_max, "eps_max"))
        self.model, self.y = model, y
        self.kwargs = {"steps": check_steps(steps), "classes": tuple(classes),
                       "n_show": n_show, "seed": seed}
        self.cache = {}
        k_max = max(1, int(round(eps_max * 255)))
        start = min(8, k_max) if value is None else int(check_number("value", value, low=0,
                                                                       high=k_max, integer=True))
        self.slider = w.IntSlider(value=start, min=0, max=k_max, step=1,
                                  description="eps (/255)", continuous_update=False,
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="420px"))
        self.slider.add_class("sovr-eps-slider")
        self.label = w.HTML(value="")
        self.label.add_class("sovr-eps-label")
        self.figure = w.Image(format="png")
        self.figure.add_class("sovr-eps-figure")
        self.message = w.HTML(value="")
        self.message.add_class("sovr-eps-message")
        self.widget = w.VBox([self.slider, self.label, self.figure, self.message])
        self.widget.add_class("sovr-eps-explorer")
        self.widget.explorer = self
        self.slider.observe(self._on_change, names="value")
        if compute:
            self.show(self.slider.value)

    def result(self, k: int):
        """``(info, png bytes)`` for eps = k/255, from the cache when seen before."""
        if k not in self.cache:
            info, fig = eps_view(self.model, self.x, self.y, k / 255, **self.kwargs)
            self.cache[k] = (info, figure_png(fig))
            if len(self.cache) > _CACHE_SIZE:
                self.cache.pop(next(iter(self.cache)))
        return self.cache[k]

    def show(self, k):
        try:
            info, png = self.result(int(k))
        except Exception as err:  # noqa: BLE001 - shown to the reader, widget stays usable
            self.message.value = _error_html(err)
            return None
        self.figure.value = png
        self.label.value = html.escape(_eps_label(info))
        self.message.value = ""
        return info

    def _on_change(self, change):
        self.show(change["new"])


def eps_explorer(model, x, y, *, eps_max=16 / 255, steps=10, classes=CLASSES, n_show=6,
                 seed=0):
    """An eps slider (units of 1/255) redrawing :func:`eps_view`; returns an ipywidgets VBox.

    ``box.explorer`` is the :class:`EpsExplorer` behind it (slider, label, figure, cache).
    """
    return EpsExplorer(model, x, y, eps_max=eps_max, steps=steps, classes=classes,
                       n_show=n_show, seed=seed).widget


def _error_html(err) -> str:
    return ("<span style='color:#b00020'>Could not compute this value: "
            f"{html.escape(type(err).__name__)}: {html.escape(str(err))}. "
            "Move the slider to try another value.</span>")


# --------------------------------------------------------------------------- SOVR threshold

def _check_rule_value(rule, value):
    check_choice("rule", rule, RULES)
    if rule == "ratio":
        return float(check_ratio(value, "value (the switching ratio)"))
    return float(check_number("value (the margin threshold, in logits)", value))


def _check_tier(tier) -> Tier:
    if isinstance(tier, Tier):
        return tier
    if tier is None:
        raise TypeError("tier is required: a Tier or one of 'ci', 'cpu', 'gpu'")
    return get_tier(tier)


def _eval_attack(tier: Tier, steps: int):
    alpha = _pgd_alpha(tier.eps, steps)

    def attack(model, xb, yb):
        return pgd(model, xb, yb, eps=tier.eps, alpha=alpha, steps=steps)
    return attack


def adversarial_margins(model, x, y, *, tier, eval_steps: int = 5, seed: int = 0):
    """Logit margins (numpy (N,)) at PGD-``eval_steps`` points at the tier's eps.

    The same attack :func:`explore_threshold` measures with: use it for the reference
    (AT's) margins so both histograms are measured alike.
    """
    _check_model(model)
    tier = _check_tier(tier)
    x = _float_images(x, "x")
    check_labels(y, x.shape[0], 10)
    eval_steps = check_steps(eval_steps, "eval_steps")
    seed = check_number("seed", seed, low=0, integer=True)
    with seeded(seed, _device_of(model)):
        out = collect_margins(model, x, y, attack=_eval_attack(tier, eval_steps), progress=False)
    return out["margin"]


def explore_threshold(base_model, x_train, y_train, x_eval, y_eval, *, rule: str = "ratio",
                      value, tier, steps: int = 40, batch_size: int = 64,
                      lr: float | None = None, attack_steps: int = 3, eval_steps: int = 5,
                      seed: int = 0, reference_margins=None,
                      reference_label: str = "AT (before fine-tuning)",
                      data_label: str = "CIFAR-10", eval_label: str = "evaluation images",
                      hist_range=None):
    """Fine-tune a copy of ``base_model`` with SOVR at one switching value; ``(info, Figure)``.

    A pure function of its arguments: ``base_model`` is deep-copied and never changed, the
    random stream is seeded by ``seed`` (same arguments, same info) and the caller's global
    random state is left untouched.

    rule: "ratio" (``value`` in [0, 1]: the fraction of each mini-batch with the smallest
    adversarial margins gets OVR) or "threshold" (``value`` a finite logit margin: every
    sample whose adversarial margin is below it gets OVR). Fine-tuning: ``steps`` SGD steps
    (mini-batches of ``batch_size`` drawn from x_train, cycling) of
    :func:`sovr_tutorial.train.method_loss` ("sovr") with PGD-``attack_steps`` at the tier's
    eps, learning rate ``lr`` (default the tier's), the tier's momentum and weight decay.
    x_train: uint8 or float images (N, 3, 32, 32), y_train (N,). A small x_train (a few
    hundred images) is seen several times, so its margins move visibly in a few seconds.
    Then the adversarial margins of x_eval at PGD-``eval_steps`` (see
    :func:`adversarial_margins`) are histogrammed next to ``reference_margins`` (optional,
    e.g. AT's from :func:`adversarial_margins` on the same images); ``eval_label`` names
    x_eval on the figure (e.g. "fine-tuning images" or "held-out images").

    info: ``rule``, ``value``, ``switched_fraction`` (fraction of training samples that got
    OVR, over all steps), ``switched_per_step``, ``margin_median``, ``frac_small``
    (fraction with 0 <= margin < 1), ``frac_negative``, ``pgd_acc`` (accuracy under the
    PGD-``eval_steps`` attack), ``steps``, ``n_eval``, ``margins`` (list of floats).
    """
    _check_model(base_model)
    value = _check_rule_value(rule, value)
    tier = _check_tier(tier)
    x_train = _float_images(x_train, "x_train")
    if x_train.shape[0] == 0:
        raise ValueError("x_train must hold at least one image")
    check_labels(y_train, x_train.shape[0], 10, name="y_train")
    x_eval = _float_images(x_eval, "x_eval")
    if x_eval.shape[0] == 0:
        raise ValueError("x_eval must hold at least one image")
    check_labels(y_eval, x_eval.shape[0], 10, name="y_eval")
    steps = check_steps(steps)
    batch_size = min(check_number("batch_size", batch_size, low=1, integer=True),
                     x_train.shape[0])
    lr = float(check_number("lr", tier.lr if lr is None else lr, low=0.0, low_open=True))
    attack_steps = check_steps(attack_steps, "attack_steps")
    eval_steps = check_steps(eval_steps, "eval_steps")
    seed = check_number("seed", seed, low=0, integer=True)
    reference = None
    if reference_margins is not None:
        reference = np.asarray(reference_margins, dtype=np.float64).ravel()
        if reference.size == 0 or not np.isfinite(reference).all():
            raise ValueError("reference_margins must be a non-empty array of finite margins")

    from .train import MethodOptions, train_step   # train imports this package's modules

    opts = (MethodOptions(sovr_ratio=value) if rule == "ratio"
            else MethodOptions(sovr_threshold=value))
    ft_tier = tier.replace(train_steps=attack_steps, alpha=_pgd_alpha(tier.eps, attack_steps))
    model = copy.deepcopy(base_model)
    device = _device_of(model)
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=tier.momentum,
                          weight_decay=tier.weight_decay)
    y_train = y_train.long()
    switched = []
    with seeded(seed, device):
        g = torch.Generator().manual_seed(seed)
        order, pos = torch.randperm(x_train.shape[0], generator=g), 0
        model.train()
        for step in range(steps):
            if pos + batch_size > order.numel():
                order, pos = torch.randperm(x_train.shape[0], generator=g), 0
            idx = order[pos:pos + batch_size]
            pos += batch_size
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            stats = train_step("sovr", model, opt, xb, yb, tier=ft_tier, epoch=0, opts=opts)
            switched.append(float(stats["switched"]))
        model.eval()
        out = collect_margins(model, x_eval, y_eval, attack=_eval_attack(tier, eval_steps),
                              progress=False)
    margins = out["margin"].astype(np.float64)
    summary = margin_summary(margins)
    info = {"rule": rule, "value": value,
            "switched_fraction": float(np.mean(switched)),
            "switched_per_step": switched,
            "margin_median": summary["q50"],
            "frac_small": summary["frac_small"],
            "frac_negative": summary["frac_negative"],
            "pgd_acc": float(out["correct"].mean()),
            "steps": steps, "n_eval": int(margins.size),
            "margins": margins.tolist()}
    fig = _threshold_figure(info, reference, reference_label=reference_label, tier=tier,
                            data_label=data_label, eval_label=eval_label, seed=seed,
                            eval_steps=eval_steps, hist_range=hist_range)
    return info, fig


def rule_text(rule: str, value: float) -> str:
    return f"ratio {value:.2g}" if rule == "ratio" else f"margin threshold {value:g}"


def histogram_range(*margin_sets, pad: float = 0.5):
    """A shared x-range (low, high) covering the 1st-99th percentiles of all margin sets."""
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in margin_sets
                             if m is not None])
    lo, hi = np.quantile(values, [0.01, 0.99])
    lo, hi = math.floor(min(lo, -1.0) - pad), math.ceil(max(hi, 1.0) + pad)
    return float(lo), float(hi)


def _hist(ax, margins, edges, **kw):
    clipped = np.clip(margins, edges[0], edges[-1])
    ax.hist(clipped, bins=edges, density=True, **kw)


def _threshold_figure(info, reference, *, reference_label, tier, data_label, eval_label,
                      seed, eval_steps, hist_range):
    margins = np.asarray(info["margins"])
    lo, hi = hist_range if hist_range is not None else histogram_range(reference, margins)
    edges = np.linspace(lo, hi, 41)
    fig = Figure(figsize=(11, 4.0))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    if reference is not None:
        _hist(ax, reference, edges, histtype="step", color="0.35", linewidth=2,
              label=f"{reference_label} (median {np.median(reference):.2f})")
    _hist(ax, margins, edges, alpha=0.55, color="tab:orange",
          label=f"SOVR fine-tuned, {rule_text(info['rule'], info['value'])} "
                f"(median {info['margin_median']:.2f})")
    ax.axvline(0, color="k", linewidth=1)
    if info["rule"] == "threshold" and lo <= info["value"] <= hi:
        ax.axvline(info["value"], color="tab:purple", linestyle="--", linewidth=1.5,
                   label="switching threshold (on training margins)")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(f"adversarial logit margin z_y - max_(k!=y) z_k  (PGD-{eval_steps}, "
                  f"eps {_eps_text(tier.eps)}; < 0 = wrong)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"margins of {info['n_eval']} {eval_label}: PGD accuracy "
                 f"{info['pgd_acc']:.1%}, {info['frac_small']:.1%} in [0, 1)", fontsize=10)
    per_step = info["switched_per_step"]
    ax2.plot(np.arange(1, len(per_step) + 1), per_step, marker="o", markersize=3,
             color="tab:orange")
    ax2.set_ylim(-0.03, 1.03)
    ax2.set_xlabel("fine-tuning step")
    ax2.set_ylabel("fraction of the batch switched to OVR")
    ax2.set_title(f"switched to OVR: {info['switched_fraction']:.1%} of samples", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"SOVR fine-tuning, {rule_text(info['rule'], info['value'])}, "
                 f"{info['steps']} steps - {tier.name} tier, {data_label}, seed {seed}",
                 fontsize=11)
    fig.tight_layout()
    return fig


def compare_thresholds(infos, reference_margins=None, *, reference_label="AT (before fine-tuning)",
                       tier=None, data_label="CIFAR-10", seed=0, hist_range=None):
    """One panel per :func:`explore_threshold` result, all on the same margin axis.

    infos: list of info dicts (each with "margins"); returns a Figure — the non-interactive
    view of the threshold explorer.
    """
    infos = list(infos)
    if not infos:
        raise ValueError("infos must hold at least one explore_threshold result")
    for i, info in enumerate(infos):
        if not isinstance(info, dict) or "margins" not in info:
            raise TypeError(f"infos[{i}] must be an info dict from explore_threshold")
    reference = None if reference_margins is None else np.asarray(reference_margins, float)
    lo, hi = hist_range if hist_range is not None else histogram_range(
        reference, *[i["margins"] for i in infos])
    edges = np.linspace(lo, hi, 41)
    fig = Figure(figsize=(4.2 * len(infos), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(infos), sharey=True))
    for ax, info in zip(axes, infos):
        if reference is not None:
            _hist(ax, reference, edges, histtype="step", color="0.35", linewidth=2,
                  label=reference_label)
        _hist(ax, np.asarray(info["margins"]), edges, alpha=0.55, color="tab:orange",
              label="SOVR fine-tuned")
        ax.axvline(0, color="k", linewidth=1)
        ax.axvline(info["margin_median"], color="tab:orange", linestyle=":", linewidth=1.5)
        ax.set_xlim(lo, hi)
        ax.set_title(f"{rule_text(info['rule'], info['value'])}: "
                     f"{info['switched_fraction']:.0%} switched to OVR\n"
                     f"median margin {info['margin_median']:.2f}, PGD acc {info['pgd_acc']:.1%}",
                     fontsize=9)
        ax.set_xlabel("adversarial logit margin")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8, loc="upper left")
    where = f" - {tier.name if isinstance(tier, Tier) else tier} tier" if tier else ""
    fig.suptitle(f"Threshold explorer without a kernel: SOVR fine-tuning at several switching "
                 f"values{where}, {data_label}, seed {seed}", fontsize=10)
    fig.tight_layout()
    return fig


class ThresholdExplorer:
    """The threshold explorer: a slider for the SOVR switching value wired to
    :func:`explore_threshold`.

    ``explorer.widget`` is the VBox to display. Parts: ``rule_buttons`` (ToggleButtons
    "ratio" / "margin threshold"), ``slider`` (FloatSlider; 0..1 step 0.1 for the ratio,
    -2..6 step 0.5 logits for the threshold; ``continuous_update=False`` so a drag
    recomputes once), ``label`` ("switched to OVR: xx.x% of samples"), ``stats``,
    ``figure`` (ipywidgets.Image, PNG bytes) and ``message`` (errors, "computing ...").
    Results are cached per (rule, value) in ``explorer.cache``.
    """

    def __init__(self, base_model, x_train, y_train, x_eval, y_eval, *, tier,
                 reference_margins=None, rule="ratio", value=None, compute=True, **kwargs):
        import ipywidgets as w

        check_choice("rule", rule, RULES)
        self.tier = _check_tier(tier)
        self.args = (base_model, x_train, y_train, x_eval, y_eval)
        self.kwargs = dict(kwargs, tier=self.tier, reference_margins=reference_margins)
        if reference_margins is not None and "hist_range" not in kwargs:
            # one x-axis for every slider position, so the pictures compare at a glance
            self.kwargs["hist_range"] = histogram_range(reference_margins, pad=2.0)
        self.cache = {}
        self.last_value = {"ratio": RATIO_RANGE[3], "threshold": THRESHOLD_RANGE[3]}
        if value is not None:
            self.last_value[rule] = _check_rule_value(rule, value)
        self._quiet = False
        lo, hi, step, _ = RATIO_RANGE if rule == "ratio" else THRESHOLD_RANGE
        self.rule_buttons = w.ToggleButtons(options=[("ratio", "ratio"),
                                                     ("margin threshold", "threshold")],
                                            value=rule, description="rule",
                                            style={"button_width": "130px"})
        self.rule_buttons.add_class("sovr-rule-toggle")
        self.slider = w.FloatSlider(value=self.last_value[rule], min=lo, max=hi, step=step,
                                    description=self._description(rule),
                                    continuous_update=False, readout_format=".1f",
                                    style={"description_width": "initial"},
                                    layout=w.Layout(width="460px"))
        self.slider.add_class("sovr-threshold-slider")
        self.label = w.HTML(value="switched to OVR: (not computed yet)")
        self.label.add_class("sovr-switched-label")
        self.stats = w.HTML(value="")
        self.stats.add_class("sovr-threshold-stats")
        self.figure = w.Image(format="png")
        self.figure.add_class("sovr-threshold-figure")
        self.message = w.HTML(value="")
        self.message.add_class("sovr-threshold-message")
        self.widget = w.VBox([self.rule_buttons, self.slider, self.label, self.stats,
                              self.message, self.figure])
        self.widget.add_class("sovr-threshold-explorer")
        self.widget.explorer = self
        self.slider.observe(self._on_value, names="value")
        self.rule_buttons.observe(self._on_rule, names="value")
        if compute:
            self.show()

    @staticmethod
    def _description(rule):
        return "switching ratio" if rule == "ratio" else "margin threshold"

    @property
    def rule(self) -> str:
        return self.rule_buttons.value

    def result(self, rule: str, value: float):
        """``(info, png bytes)`` of :func:`explore_threshold`, cached per (rule, value)."""
        value = _check_rule_value(rule, value)
        key = (rule, round(value, 6))
        if key not in self.cache:
            info, fig = explore_threshold(*self.args, rule=rule, value=value, **self.kwargs)
            self.cache[key] = (info, figure_png(fig))
            if len(self.cache) > _CACHE_SIZE:
                self.cache.pop(next(iter(self.cache)))
        return self.cache[key]

    def show(self, rule: str | None = None, value: float | None = None):
        """Compute (or fetch) one value and redraw; errors go to ``message``. Returns info."""
        rule = self.rule if rule is None else rule
        value = self.slider.value if value is None else value
        try:
            if (rule, round(float(value), 6)) not in self.cache:
                self.message.value = (f"<i>computing {html.escape(rule_text(rule, float(value)))}"
                                      " (fine-tuning a copy of the model) ...</i>")
            info, png = self.result(rule, value)
        except Exception as err:  # noqa: BLE001 - shown to the reader, widget stays usable
            self.message.value = _error_html(err)
            return None
        self.figure.value = png
        self.label.value = f"switched to OVR: {100 * info['switched_fraction']:.1f}% of samples"
        self.stats.value = html.escape(
            f"{rule_text(rule, info['value'])}: median adversarial margin "
            f"{info['margin_median']:.2f}, margins in [0, 1): {info['frac_small']:.1%}, "
            f"PGD accuracy {info['pgd_acc']:.1%} (n = {info['n_eval']})")
        self.message.value = ""
        return info

    def _on_value(self, change):
        if self._quiet:
            return
        self.last_value[self.rule] = float(change["new"])
        self.show(self.rule, change["new"])

    def _on_rule(self, change):
        rule = change["new"]
        lo, hi, step, _ = RATIO_RANGE if rule == "ratio" else THRESHOLD_RANGE
        self._quiet = True
        try:
            # widen first, then narrow: the value never falls outside [min, max] midway
            self.slider.max = max(self.slider.max, hi)
            self.slider.min = min(self.slider.min, lo)
            self.slider.step = step
            self.slider.value = self.last_value[rule]
            self.slider.min, self.slider.max = lo, hi
            self.slider.description = self._description(rule)
        finally:
            self._quiet = False
        self.show(rule, self.slider.value)


def threshold_explorer(base_model, x_train, y_train, x_eval, y_eval, *, tier,
                       reference_margins=None, **kwargs):
    """The SOVR threshold explorer widget (an ipywidgets VBox).

    A slider for the switching ratio (toggle: absolute margin threshold) that fine-tunes a
    copy of ``base_model`` with :func:`explore_threshold` and redraws the adversarial-margin
    histogram next to ``reference_margins``, with the fraction switched to OVR.
    ``kwargs`` go to :func:`explore_threshold` (``steps``, ``seed``, ``lr``,
    ``data_label``...) except ``rule``/``value`` (the starting position) and ``compute``
    (False: draw nothing until the slider moves). ``box.explorer`` is the
    :class:`ThresholdExplorer` behind it.
    """
    return ThresholdExplorer(base_model, x_train, y_train, x_eval, y_eval, tier=tier,
                             reference_margins=reference_margins, **kwargs).widget
