"""What the course's widgets are built from (:mod:`sovr_tutorial.figures.widgets`,
:mod:`sovr_tutorial.figures.toy_widgets`): the model and image checks at their entry points, the PNG
bytes of a figure, the error message a failed callback shows, the per-widget cache and the
box of a slider with its label, figure and message.
"""
from __future__ import annotations

import html
import io

import torch
from matplotlib.figure import Figure

from ..checks import check_images

#: pictures a widget keeps (the oldest goes first)
CACHE_SIZE = 64


def check_model(model):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def float_images(x, name):
    """uint8 (as from load_cifar10) -> float [0, 1]; float images are checked as they are."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        x = x.float().div(255)
    return check_images(x, name=name)


def figure_png(fig: Figure, dpi: int = 90, *, tight: bool = True) -> bytes:
    """The PNG bytes of a matplotlib figure (what the widgets show).

    ``tight``: crop to the drawn artists (``bbox_inches="tight"``), which draws the figure
    twice; False for a figure already laid out to fill its canvas (half the drawing time).
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def cached(cache: dict, key, make):
    """``cache[key]``, from ``make()`` the first time; beyond :data:`CACHE_SIZE` entries the
    oldest is dropped (a widget's cache never grows without bound)."""
    if key not in cache:
        cache[key] = make()
        if len(cache) > CACHE_SIZE:
            cache.pop(next(iter(cache)))
    return cache[key]


def error_html(err) -> str:
    return ("<span style='color:#b00020'>Could not compute this value: "
            f"{html.escape(type(err).__name__)}: {html.escape(str(err))}. "
            "Move the slider to try another value.</span>")


def slider_box(slider, prefix: str, box_class: str, order=("label", "figure", "message")):
    """A slider's box: ``(label, figure, message, box)``.

    label and message are empty ``ipywidgets.HTML``, figure an ``ipywidgets.Image`` for PNG
    bytes; the slider and each part get the CSS class ``{prefix}-slider``, ``{prefix}-label``
    ... (what a browser test looks for), and box is the VBox of the slider then the parts in
    ``order``, with the CSS class ``box_class``.
    """
    import ipywidgets as w

    slider.add_class(f"{prefix}-slider")
    parts = {"label": w.HTML(value=""), "figure": w.Image(format="png"),
             "message": w.HTML(value="")}
    for name, part in parts.items():
        part.add_class(f"{prefix}-{name}")
    box = w.VBox([slider] + [parts[name] for name in order])
    box.add_class(box_class)
    return parts["label"], parts["figure"], parts["message"], box
