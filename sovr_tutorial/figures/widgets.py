"""The SOVR threshold explorer of notebook 05 on CIFAR-10 (widget wiring; its figure is in
explorer_plots.py).

Every slider is a thin wiring of a *pure function of explicit arguments* that tests (and
readers without a live kernel) call directly:

* :func:`explore_threshold` ``(base_model, x_train, y_train, x_eval, y_eval, rule=, value=,
  tier=, reference=) -> (info, Figure)``: fine-tune a *copy* of ``base_model`` for a few SOVR
  steps at one switching ratio or margin threshold, then draw the adversarial-margin
  histogram of the (held-out) evaluation images next to the same fine-tune under CE
  (:func:`ce_reference`, ratio 0), so the picture shows SOVR's effect, not fine-tuning's.

:func:`threshold_explorer` builds the ipywidgets around it. Each
call builds a fresh, independent widget (its own cache, no module-level state); a callback
that fails shows a readable message and leaves the widget usable. CSS classes a browser
test can find: ``sovr-threshold-slider``, ``sovr-rule-toggle``, ``sovr-switched-label``,
``sovr-threshold-stats``, ``sovr-threshold-figure``, ``sovr-threshold-message``.


The eps slider of notebook 01 is in :mod:`sovr_tutorial.figures.eps_widgets`, the toy world's
explorer and the margin movie's slider in :mod:`sovr_tutorial.figures.toy_widgets`;
the parts every widget is built from in :mod:`sovr_tutorial.figures.widget_parts`.
"""
from __future__ import annotations

import html

import numpy as np

from ..checks import check_choice, check_labels, check_number, check_steps
from ..evaluate import adversarial_margins
from ..margins import margin_summary
from ..runs import DEFAULT_SOVR_RATIO, Run, check_rule_value
from ..tiers import as_tier, pgd_step_size
from ..train import finetune
from .explorer import histogram_range, rule_text, threshold_figure
from .widget_parts import cached, check_model, error_html, figure_png, float_images

#: the rules on the threshold explorer's toggle (explore_threshold also takes "boundary")
RULES = ("ratio", "threshold")
#: slider ranges of the threshold explorer: (min, max, step, initial value)
RATIO_RANGE = (0.0, 1.0, 0.1, DEFAULT_SOVR_RATIO)
THRESHOLD_RANGE = (-2.0, 6.0, 0.5, 1.0)


# --------------------------------------------------------------------------- SOVR threshold

#: what the CE reference of the threshold explorer is called on its figures
CE_LABEL = "CE fine-tuned (ratio 0)"
#: the options of explore_threshold that fix a fine-tune and its measurement: a CE reference
#: (:func:`ce_reference`) is comparable with a SOVR result only if all of them agree
SETTINGS = ("steps", "batch_size", "lr", "attack_steps", "eval_steps", "seed")


def _prepare(base_model, x_train, x_eval, y_eval, *, tier, steps, batch_size, lr,
             attack_steps, eval_steps, seed):
    """Checked arguments of a fine-tune and its measurement: (tier, x_train, x_eval,
    settings), where settings is what a comparable CE reference shares (see
    :func:`check_reference`)."""
    check_model(base_model)
    tier = as_tier(tier)
    x_train = float_images(x_train, "x_train")
    x_eval = float_images(x_eval, "x_eval")
    if x_eval.shape[0] == 0:
        raise ValueError("x_eval must hold at least one image")
    check_labels(y_eval, x_eval.shape[0], tier.num_classes, name="y_eval")
    settings = {"tier": tier.name, "eps": float(tier.eps),
                "steps": check_steps(steps, "steps"),
                "batch_size": check_steps(batch_size, "batch_size"),
                "lr": float(check_number("lr", tier.lr if lr is None else lr, low=0.0,
                                         low_open=True)),
                "attack_steps": check_steps(attack_steps, "attack_steps"),
                "eval_steps": check_steps(eval_steps, "eval_steps"),
                "seed": int(seed), "n_train": int(x_train.shape[0]),
                "n_eval": int(x_eval.shape[0])}
    return tier, x_train, x_eval, settings


def _finetune_and_measure(base_model, run, x_train, y_train, x_eval, y_eval, *, tier,
                          settings) -> dict:
    """The info of one fine-tune of ``run`` with checked ``settings`` (see
    :func:`explore_threshold`). Shared by it and :func:`ce_reference`, so both are the same
    computation but for the loss."""
    s = settings
    ft_tier = tier.replace(train_steps=s["attack_steps"],
                           alpha=pgd_step_size(tier.eps, s["attack_steps"]))
    model, log = finetune(base_model, run, x_train, y_train, tier=ft_tier, steps=s["steps"],
                          batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"])
    out = adversarial_margins(model, x_eval, y_eval, eps=tier.eps, steps=s["eval_steps"],
                              seed=s["seed"])
    margins = out["margin"].astype(np.float64)
    summary = margin_summary(margins)
    switched = [st.get("switched", 0.0) for st in log]
    return {"rule": run.rule, "value": run.value,
            "switched_fraction": float(np.mean(switched)),
            "switched_per_step": switched,
            "margin_median": summary["q50"],
            "frac_small": summary["frac_small"],
            "frac_negative": summary["frac_negative"],
            "pgd_acc": float(out["correct"].mean()),
            "steps": len(log), "n_eval": int(margins.size),
            "margins": margins.tolist(), "settings": dict(settings)}


def ce_reference(base_model, x_train, y_train, x_eval, y_eval, *, tier, steps: int = 40,
                 batch_size: int = 64, lr: float | None = None, attack_steps: int = 3,
                 eval_steps: int = 5, seed: int = 0) -> dict:
    """The threshold explorer's reference: ``base_model`` fine-tuned with plain CE (on the
    PGD-``attack_steps`` points, i.e. more AT) exactly as :func:`explore_threshold`
    fine-tunes with SOVR (same start, steps, batch size, lr, attack and seed; SOVR at ratio
    0 *is* this loss), measured with the same attack on the same evaluation images.

    Returns an info dict with the keys of :func:`explore_threshold`'s (``rule`` "ratio",
    ``value`` 0.0, ``switched_fraction`` 0.0, ``settings``) plus ``label``
    (:data:`CE_LABEL`). Pass it as ``reference=`` to :func:`explore_threshold` (it must
    then get the same model, images and settings) and to
    :func:`~sovr_tutorial.figures.explorer.compare_thresholds`. A pure function, like
    :func:`explore_threshold`.
    """
    tier, x_train, x_eval, settings = _prepare(
        base_model, x_train, x_eval, y_eval, tier=tier, steps=steps, batch_size=batch_size,
        lr=lr, attack_steps=attack_steps, eval_steps=eval_steps, seed=seed)
    info = _finetune_and_measure(base_model, Run("at"), x_train, y_train, x_eval, y_eval,
                                 tier=tier, settings=settings)
    info.update(rule="ratio", value=0.0, label=CE_LABEL)
    return info


def check_reference(reference, settings: dict) -> dict:
    """``reference`` if it is a :func:`ce_reference` info made with ``settings``, else a
    ValueError/TypeError saying what differs."""
    if not isinstance(reference, dict) or "margins" not in reference or \
            "settings" not in reference:
        raise TypeError("reference must be the info dict of ce_reference(...), got "
                        f"{type(reference).__name__}")
    margins = np.asarray(reference["margins"], dtype=np.float64)
    if margins.size == 0 or not np.isfinite(margins).all():
        raise ValueError("reference must hold a non-empty list of finite margins")
    differ = {k: (reference["settings"].get(k), v) for k, v in settings.items()
              if reference["settings"].get(k) != v}
    if differ:
        raise ValueError("reference was fine-tuned or measured with other settings than this "
                         "call (reference, here): " +
                         ", ".join(f"{k} {a!r} != {b!r}" for k, (a, b) in differ.items()))
    return reference


def explore_threshold(base_model, x_train, y_train, x_eval, y_eval, *, rule: str = "ratio",
                      value, tier, steps: int = 40, batch_size: int = 64,
                      lr: float | None = None, attack_steps: int = 3, eval_steps: int = 5,
                      seed: int = 0, reference: dict | None = None,
                      data_label: str = "CIFAR-10", eval_label: str = "held-out images",
                      hist_range=None):
    """Fine-tune a copy of ``base_model`` with SOVR at one switching value and compare it
    with the same fine-tune under CE; ``(info, Figure)``.

    A pure function of its arguments: ``base_model`` is never changed, the random stream
    is seeded by ``seed`` (same arguments, same info) and the caller's global random state
    is left untouched.

    rule: "ratio" (``value`` in [0, 1]: the fraction of each mini-batch with the smallest
    adversarial margins gets OVR), "threshold" (``value`` a finite logit margin: every
    sample whose adversarial margin is below it gets OVR) or "boundary" (see
    :data:`sovr_tutorial.runs.RULES`). Fine-tuning: :func:`sovr_tutorial.train.finetune`,
    ``steps`` SGD steps on mini-batches of ``batch_size`` from x_train, with
    PGD-``attack_steps`` at the tier's eps and step size, learning rate ``lr`` (default the
    tier's). x_train: uint8 or float images (N, 3, 32, 32), y_train (N,). Then the
    adversarial margins of x_eval (meant to be held-out images, not x_train) at
    PGD-``eval_steps`` (:func:`sovr_tutorial.evaluate.adversarial_margins`, the
    package's step-size rule) are histogrammed next to the
    reference's.

    reference: :func:`ce_reference` of the same model, images and settings (checked: a
    reference made with other ``settings`` raises ValueError); None computes it here (a
    second fine-tune). So the picture shows what SOVR does beyond fine-tuning itself: at
    ratio 0 (or a threshold below every margin) both histograms are the same.
    ``eval_label`` names x_eval on the figure.

    info: ``rule``, ``value``, ``switched_fraction`` (fraction of training samples that got
    OVR, over all steps), ``switched_per_step``, ``margin_median``, ``frac_small``
    (fraction with 0 <= margin < 1), ``frac_negative``, ``pgd_acc`` (accuracy under the
    PGD-``eval_steps`` attack), ``steps``, ``n_eval``, ``margins`` (list of floats),
    ``settings`` (what :func:`check_reference` compares) and, against the CE reference,
    ``reference_median``, ``reference_pgd_acc``, ``median_shift`` (SOVR's median minus
    CE's) and ``pgd_acc_shift`` (SOVR's PGD accuracy minus CE's).
    """
    run = Run("sovr", rule=rule, value=value)
    options = {"tier": tier, "steps": steps, "batch_size": batch_size, "lr": lr,
               "attack_steps": attack_steps, "eval_steps": eval_steps, "seed": seed}
    tier, xt, xe, settings = _prepare(base_model, x_train, x_eval, y_eval, **options)
    if reference is not None:   # checked before the fine-tune, not after
        check_reference(reference, settings)
    info = _finetune_and_measure(base_model, run, xt, y_train, xe, y_eval, tier=tier,
                                 settings=settings)
    if reference is None:
        reference = ce_reference(base_model, x_train, y_train, x_eval, y_eval, **options)
    info.update(reference_median=float(reference["margin_median"]),
                reference_pgd_acc=float(reference["pgd_acc"]),
                median_shift=info["margin_median"] - float(reference["margin_median"]),
                pgd_acc_shift=info["pgd_acc"] - float(reference["pgd_acc"]))
    fig = threshold_figure(info, reference, tier=tier, data_label=data_label,
                           eval_label=eval_label, seed=seed, eval_steps=settings["eval_steps"],
                           hist_range=hist_range)
    return info, fig


class ThresholdExplorer:
    """The threshold explorer: a slider for the SOVR switching value wired to
    :func:`explore_threshold`.

    ``explorer.widget`` is the VBox to display. Parts: ``rule_buttons`` (ToggleButtons
    "ratio" / "margin threshold"), ``slider`` (FloatSlider; 0..1 step 0.1 for the ratio,
    -2..6 step 0.5 logits for the threshold; ``continuous_update=False`` so a drag
    recomputes once), ``label`` ("switched to OVR: xx.x% of samples"), ``stats``,
    ``figure`` (ipywidgets.Image, PNG bytes) and ``message`` (errors, "computing ...").
    Results are cached per (rule, value) in ``explorer.cache``; the CE reference
    (:attr:`ce_reference`, :func:`ce_reference`) is computed once per explorer (one model, one
    set of images and settings), so a move at a new value costs one fine-tune.
    """

    #: per rule on the toggle: ((slider min, max, step, initial value), button text,
    #: slider description)
    RULE_SETTINGS = {"ratio": (RATIO_RANGE, "ratio", "switching ratio"),
                     "threshold": (THRESHOLD_RANGE, "margin threshold", "margin threshold")}
    #: CSS classes of the parts (what a browser test looks for)
    CSS = {"rule": "sovr-rule-toggle", "slider": "sovr-threshold-slider",
           "label": "sovr-switched-label", "stats": "sovr-threshold-stats",
           "figure": "sovr-threshold-figure", "message": "sovr-threshold-message",
           "widget": "sovr-threshold-explorer"}
    #: what the message says while a value is computed
    COMPUTING = "fine-tuning a copy of the model"

    def __init__(self, base_model, x_train, y_train, x_eval, y_eval, *, tier,
                 reference=None, rule="ratio", value=None, compute=True, **kwargs):
        check_choice("rule", rule, self.RULE_SETTINGS)
        self.tier = as_tier(tier)
        self.args = (base_model, x_train, y_train, x_eval, y_eval)
        self.kwargs = dict(kwargs, tier=self.tier)
        #: the options :func:`ce_reference` shares with every move
        self.reference_options = {k: v for k, v in self.kwargs.items()
                                  if k in SETTINGS or k == "tier"}
        self._reference = reference
        self._build(rule, value, compute)

    @property
    def ce_reference(self) -> dict:
        """The CE fine-tune every move is compared with (:func:`ce_reference`): computed at
        the first move (or passed in), then kept; its margins also fix the histograms'
        x-range (unless ``hist_range`` was given), so every slider position shares one axis."""
        if self._reference is None:
            self._reference = ce_reference(*self.args, **self.reference_options)
        if "hist_range" not in self.kwargs:
            self.kwargs["hist_range"] = histogram_range(self._reference["margins"], pad=2.0)
        return self._reference

    def _build(self, rule, value, compute):
        """The toggle, slider, texts and figure, wired to :meth:`show` (subclasses call it
        from their ``__init__`` once their own state is set)."""
        import ipywidgets as w

        self.cache = {}
        self.last_value = {r: s[0][3] for r, s in self.RULE_SETTINGS.items()}
        if value is not None:
            self.last_value[rule] = check_rule_value(rule, value)
        self._quiet = False
        lo, hi, step, _ = self.RULE_SETTINGS[rule][0]
        self.rule_buttons = w.ToggleButtons(options=[(s[1], r) for r, s in
                                                     self.RULE_SETTINGS.items()],
                                            value=rule, description="rule",
                                            style={"button_width": "130px"})
        self.rule_buttons.add_class(self.CSS["rule"])
        self.slider = w.FloatSlider(value=self.last_value[rule], min=lo, max=hi, step=step,
                                    description=self._description(rule),
                                    continuous_update=False, readout_format=".1f",
                                    style={"description_width": "initial"},
                                    layout=w.Layout(width="460px"))
        self.slider.add_class(self.CSS["slider"])
        self.label = w.HTML(value="switched to OVR: (not computed yet)")
        self.label.add_class(self.CSS["label"])
        self.stats = w.HTML(value="")
        self.stats.add_class(self.CSS["stats"])
        self.figure = w.Image(format="png")
        self.figure.add_class(self.CSS["figure"])
        self.message = w.HTML(value="")
        self.message.add_class(self.CSS["message"])
        self.widget = w.VBox([self.rule_buttons, self.slider, self.label, self.stats,
                              self.message, self.figure])
        self.widget.add_class(self.CSS["widget"])
        self.widget.explorer = self
        self.slider.observe(self._on_value, names="value")
        self.rule_buttons.observe(self._on_rule, names="value")
        if compute:
            self.show()

    def _description(self, rule):
        return self.RULE_SETTINGS[rule][2]

    @property
    def rule(self) -> str:
        return self.rule_buttons.value

    def result(self, rule: str, value: float):
        """``(info, png bytes)`` of :func:`explore_threshold`, cached per (rule, value)."""
        value = check_rule_value(rule, value)
        key = (rule, round(value, 6))

        def make():
            reference = self.ce_reference
            info, fig = explore_threshold(*self.args, rule=rule, value=value,
                                          reference=reference, **self.kwargs)
            return info, figure_png(fig)

        return cached(self.cache, key, make)

    def show(self, rule: str | None = None, value: float | None = None):
        """Compute (or fetch) one value and redraw; errors go to ``message``. Returns info."""
        rule = self.rule if rule is None else rule
        value = self.slider.value if value is None else value
        try:
            if (rule, round(float(value), 6)) not in self.cache:
                self.message.value = (f"<i>computing {html.escape(rule_text(rule, float(value)))}"
                                      f" ({self.COMPUTING}) ...</i>")
            info, png = self.result(rule, value)
        except Exception as err:  # noqa: BLE001 - shown to the reader, widget stays usable
            self.message.value = error_html(err)
            return None
        self.figure.value = png
        self.label.value = f"switched to OVR: {100 * info['switched_fraction']:.1f}% of samples"
        self.stats.value = html.escape(self._stats_text(rule, info))
        self.message.value = ""
        return info

    def _stats_text(self, rule, info) -> str:
        return (f"{rule_text(rule, info['value'])}: median adversarial margin "
                f"{info['margin_median']:.2f} ({info['median_shift']:+.2f} vs CE), margins in "
                f"[0, 1): {info['frac_small']:.1%}, PGD accuracy {info['pgd_acc']:.1%} "
                f"({100 * info['pgd_acc_shift']:+.1f} pts vs CE; n = {info['n_eval']})")

    def _on_value(self, change):
        if self._quiet:
            return
        self.last_value[self.rule] = float(change["new"])
        self.show(self.rule, change["new"])

    def _on_rule(self, change):
        rule = change["new"]
        lo, hi, step, _ = self.RULE_SETTINGS[rule][0]
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
                       reference=None, **kwargs):
    """The SOVR threshold explorer widget (an ipywidgets VBox).

    A slider for the switching ratio (toggle: absolute margin threshold) that fine-tunes a
    copy of ``base_model`` with :func:`explore_threshold` and redraws the adversarial-margin
    histogram of x_eval (held-out images) next to the same fine-tune under CE
    (``reference``: a :func:`ce_reference` with the same model, images and settings, or
    None to compute it once at the first move), with the fraction switched to OVR.
    ``kwargs`` go to :func:`explore_threshold` (``steps``, ``seed``, ``lr``,
    ``data_label``...) except ``rule``/``value`` (the starting position) and ``compute``
    (False: draw nothing until the slider moves). ``box.explorer`` is the
    :class:`ThresholdExplorer` behind it.
    """
    return ThresholdExplorer(base_model, x_train, y_train, x_eval, y_eval, tier=tier,
                             reference=reference, **kwargs).widget
