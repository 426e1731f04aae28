"""The eps slider of notebook 01: PGD at one budget, the images and their predictions.

:func:`eps_view` ``(model, x, y, eps) -> (info, Figure)`` is a pure function of explicit
arguments that tests (and readers without a live kernel) call directly; :func:`eps_explorer`
wires a slider around it (a fresh widget per call, its own cache; a failing callback shows a
readable message and leaves the widget usable). CSS classes a browser test can find:
``sovr-eps-slider``, ``sovr-eps-label``, ``sovr-eps-figure``.
"""
from __future__ import annotations

import html

import torch

from ..attacks import attack_dataset
from ..checks import check_eps, check_labels, check_number, check_steps
from ..data import CLASSES
from ..devices import model_device
from ..evaluate import predictions
from ..models import eval_mode
from .explorer import eps_text
from .images import show_adversarial_examples
from .widget_parts import cached, check_model, error_html, figure_png, float_images, slider_box


def eps_view(model, x, y, eps, *, steps: int = 10, classes=CLASSES, n_show: int = 6,
             seed: int = 0, eps_max: float | None = None):
    """PGD at one eps: ``(info, Figure)``; a pure function of its arguments.

    x: (N, 3, H, W) images, float in [0, 1] (uint8 is converted); y: (N,) labels.
    eps: L-inf budget in [0, 1] (eps = 0 returns the clean images). PGD-``steps``
    (:func:`sovr_tutorial.attacks.attack_dataset`: the package's step-size rule, a random
    start seeded by ``seed``; the caller's random stream is untouched), model in eval mode.
    info: ``eps``, ``steps``, ``n``, ``clean_accuracy``, ``accuracy`` (under the attack)
    and ``n_flipped`` (predictions that changed). The figure shows the first ``n_show``
    images: clean, perturbation, adversarial, with predicted classes, and the class
    probabilities before and after. The perturbation is magnified by ``0.5 / eps_max``
    (default ``eps``): the slider passes its largest eps, so the scale stays fixed and the
    perturbation visibly grows with eps.
    """
    check_model(model)
    x = float_images(x, "x").cpu()
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image")
    classes = tuple(classes)
    check_labels(y, x.shape[0], len(classes))
    eps = float(check_eps(eps))
    steps = check_steps(steps)
    n_show = min(check_number("n_show", n_show, low=1, integer=True), x.shape[0])
    y = y.long().cpu()
    scale = eps if eps_max is None else float(check_eps(eps_max, "eps_max"))
    x_adv = attack_dataset(model, x, y, eps=eps, steps=steps, seed=seed, batch_size=256)
    clean_pred, adv_pred = predictions(model, x), predictions(model, x_adv)
    probs = [_probabilities(model, v[:n_show]) for v in (x, x_adv)]
    info = {"eps": eps, "steps": steps, "n": int(x.shape[0]),
            "clean_accuracy": (clean_pred == y).float().mean().item(),
            "accuracy": (adv_pred == y).float().mean().item(),
            "n_flipped": int((adv_pred != clean_pred).sum())}
    title = (f"PGD-{steps} at eps = {eps_text(eps)}: accuracy {info['accuracy']:.1%} "
             f"(clean {info['clean_accuracy']:.1%}); {info['n_flipped']} of {info['n']} "
             "predictions changed")
    fig = show_adversarial_examples(x, x_adv, y, clean_pred, adv_pred, classes, n=n_show,
                                    title=title, amplify=0.5 / scale if scale > 0 else None,
                                    probs_clean=probs[0], probs_adv=probs[1])
    return info, fig


def _probabilities(model, x):
    """Softmax probabilities (N, K) of ``x`` on the CPU, model in eval mode, no gradients."""
    with eval_mode(model), torch.no_grad():
        return torch.softmax(model(x.to(model_device(model))).float(), dim=1).cpu()


def _eps_label(info) -> str:
    return (f"eps = {eps_text(info['eps'])}: accuracy {info['accuracy']:.1%} "
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

        check_model(model)
        self.x = float_images(x, "x")
        check_labels(y, self.x.shape[0], len(tuple(classes)))
        eps_max = float(check_eps(eps_max, "eps_max"))
        self.model, self.y = model, y
        self.kwargs = {"steps": check_steps(steps), "classes": tuple(classes),
                       "n_show": n_show, "seed": seed, "eps_max": eps_max}
        self.cache = {}
        k_max = max(1, int(round(eps_max * 255)))
        start = min(8, k_max) if value is None else int(check_number("value", value, low=0,
                                                                       high=k_max, integer=True))
        self.slider = w.IntSlider(value=start, min=0, max=k_max, step=1,
                                  description="eps (/255)", continuous_update=False,
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="420px"))
        self.label, self.figure, self.message, self.widget = slider_box(
            self.slider, "sovr-eps", "sovr-eps-explorer")
        self.widget.explorer = self
        self.slider.observe(self._on_change, names="value")
        if compute:
            self.show(self.slider.value)

    def result(self, k: int):
        """``(info, png bytes)`` for eps = k/255, from the cache when seen before."""

        def make():
            info, fig = eps_view(self.model, self.x, self.y, k / 255, **self.kwargs)
            return info, figure_png(fig)

        return cached(self.cache, k, make)

    def show(self, k):
        try:
            info, png = self.result(int(k))
        except Exception as err:  # noqa: BLE001 - shown to the reader, widget stays usable
            self.message.value = error_html(err)
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
