"""The toy world's widgets: the toy explorer (notebook 04) and the margin movie's epoch
slider (notebook 03).

:class:`ToyExplorer` is the threshold explorer (:class:`sovr_tutorial.figures.widgets.ThresholdExplorer`)
in the toy world: its move is :func:`sovr_tutorial.toy.model.toy_move`, its figure
:func:`sovr_tutorial.figures.toy.plot_toy_explorer`; its parts carry ``sovr-toy-rule``,
``sovr-toy-slider``, ``sovr-toy-label``, ``sovr-toy-stats``, ``sovr-toy-figure``,
``sovr-toy-message``. :class:`MarginMovie` (:func:`margin_movie`) steps through the recorded
epochs of a margin movie (:mod:`sovr_tutorial.lab.movie`), drawn by
:func:`sovr_tutorial.figures.movie.plot_margin_frame`.
"""
from __future__ import annotations

import html
import io

from ..checks import check_choice
from ..runs import DEFAULT_SOVR_RATIO, check_rule_value
from ..tiers import as_tier
from ..toy.model import EXPLORER_HELDOUT, check_toy_reference, toy_move, toy_reference
from ..toy.world import toy_tier
from .frames import check_frames, common_epochs, epoch_index, peak_counts
from .movie import plot_margin_frame
from .toy import plot_toy_explorer
from .widget_parts import cached, check_model, error_html, figure_png, slider_box
from .widgets import ThresholdExplorer

# --------------------------------------------------------------------------- toy explorer

class ToyExplorer(ThresholdExplorer):
    """The toy world's SOVR explorer (notebook 04's main widget): the switching rule (ratio /
    threshold / boundary) and its value, wired to :func:`sovr_tutorial.toy.model.toy_move` (fine-
    tune a copy of the AT model ``base_model`` in ``world``, from ``toy_data.make_world``) and
    drawn by :func:`sovr_tutorial.figures.toy.plot_toy_explorer` next to the same fine-tune
    under CE (:attr:`ce_reference`, :func:`sovr_tutorial.toy.model.toy_reference`: same start,
    steps, seed and batches, measured on the same held-out points), so the picture shows
    what SOVR does beyond fine-tuning itself: at ratio 0 both are the same.

    A move: 60 fine-tuning steps (batch 256, PGD-5, learning rate 0.1: a deliberate choice,
    half the 120 steps at 0.05 the explorer first took, about the same shift of the margins
    in half the time), then PGD-20 margins and accuracy, and the margin attack (PGD-20 on the
    margin) on 1,024 held-out points. The parts are the threshold explorer's
    (``rule_buttons``, ``slider``, ``label`` "switched to OVR: xx.x% of samples", ``stats``,
    ``message``, ``figure``) with the CSS classes ``sovr-toy-rule``, ``sovr-toy-slider``,
    ``sovr-toy-label``, ``sovr-toy-stats``, ``sovr-toy-message``, ``sovr-toy-figure``.
    ``move_options`` go to ``toy_move`` and ``toy_reference`` (``steps``, ``lr``,
    ``seed``...). Results are cached per (rule, value); the CE reference is computed once
    per explorer (at the first move), and the figure's layout is fitted once, at the first
    figure, then kept.
    """

    RULE_SETTINGS = {"ratio": ((0.0, 1.0, 0.1, DEFAULT_SOVR_RATIO), "ratio", "switching ratio"),
                     "threshold": ((-2.0, 4.0, 0.5, 1.0), "margin threshold",
                                   "margin threshold"),
                     "boundary": ((0.0, 1.0, 0.1, DEFAULT_SOVR_RATIO), "boundary",
                                  "fraction nearest the boundary")}
    CSS = {part: f"sovr-toy-{part}" for part in ("rule", "slider", "label", "stats", "figure",
                                                 "message")}
    CSS["widget"] = "sovr-toy-explorer"
    COMPUTING = "fine-tuning a copy of AT"

    def __init__(self, base_model, world, *, tier=None, rule: str = "ratio", value=None,
                 compute: bool = True, **move_options):
        check_choice("rule", rule, self.RULE_SETTINGS)
        self.base_model, self.world = check_model(base_model), world
        self.tier = toy_tier() if tier is None else as_tier(tier)
        self.move_options = move_options
        self.x_heldout = world[1][0][:EXPLORER_HELDOUT]
        self._reference = None
        self._layout = None     # the figure's subplot parameters, fitted at the first figure
        self._build(rule, value, compute)

    @property
    def ce_reference(self) -> dict:
        """The CE fine-tune every move is compared with
        (:func:`sovr_tutorial.toy.model.toy_reference` with the explorer's ``move_options``):
        computed at the first move, then kept."""
        if self._reference is None:
            self._reference = toy_reference(self.base_model, self.world, tier=self.tier,
                                            **self.move_options)
        return self._reference

    def result(self, rule: str, value: float):
        """``(info, png bytes)`` of one move, cached per (rule, value)."""
        value = check_rule_value(rule, value)
        key = (rule, round(value, 6))

        def make():
            reference = self.ce_reference
            info = toy_move(self.base_model, self.world, rule=rule, value=value,
                            tier=self.tier, **self.move_options)
            check_toy_reference(reference, info)
            fig = plot_toy_explorer(reference, info, self.x_heldout, eps=self.tier.eps,
                                    layout=self._layout)
            self._layout = self._layout or _subplot_layout(fig)
            return info, _png(fig)

        return cached(self.cache, key, make)

    def _stats_text(self, rule, info) -> str:
        ref = self.ce_reference
        return (f"{info['label']} against CE fine-tuned from the same start, held-out points: "
                f"PGD-{info['eval_steps']} accuracy {info['pgd_acc']:.1%} (CE "
                f"{ref['pgd_acc']:.1%}), margin attack {info['margin_attack_acc']:.1%} (CE "
                f"{ref['margin_attack_acc']:.1%}), margin q10 {info['q10']:+.2f} (CE "
                f"{ref['q10']:+.2f}), median {info['q50']:+.2f} (CE {ref['q50']:+.2f}); "
                f"{info['steps']} fine-tuning steps each at lr {info['settings']['lr']:g} "
                "(the explorer's choice: a move in about a second)")


def _png(fig) -> bytes:
    """The PNG of the explorer's figure, as :func:`figure_png` with ``tight=False`` (it is
    laid out to fill its canvas: no second drawing to crop it) but with zlib's fastest
    level: about as small for this picture, and a sixth of the drawing time less."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _subplot_layout(fig) -> dict:
    """The subplot parameters ``fig`` was laid out with (for ``Figure.subplots_adjust``): a
    later figure of the same design placed with them skips fitting its layout again."""
    p = fig.subplotpars
    return {k: getattr(p, k) for k in ("left", "right", "bottom", "top", "wspace", "hspace")}


# --------------------------------------------------------------------------- margin movie

class MarginMovie:
    """The margin movie's epoch slider (notebook 03): an IntSlider over the recorded epochs
    wired to :func:`sovr_tutorial.figures.movie.plot_margin_frame` (each run's training-slice and
    held-out margin histograms at that epoch, side by side, on the movie's fixed bins).

    frames: a frames dict (:func:`sovr_tutorial.lab.movie.load_frames`). ``movie.widget`` is
    the VBox to display. Parts: ``slider`` (``continuous_update=False``), ``label`` (the
    epoch, and per run its peak count and training-slice PGD accuracy), ``message``
    (errors) and ``figure`` (PNG bytes); CSS classes ``sovr-movie-slider``,
    ``sovr-movie-label``, ``sovr-movie-message``, ``sovr-movie-figure``. Nothing is
    computed but the drawing; pictures are cached per epoch.
    """

    def __init__(self, frames: dict, *, epoch: int | None = None):
        import ipywidgets as w

        self.frames = check_frames(frames)
        self.epochs = common_epochs(frames)
        if not self.epochs:
            raise ValueError("margin_movie: the runs share no recorded epoch")
        epoch = self.epochs[-1] if epoch is None else int(epoch)
        check_choice("epoch", epoch, self.epochs)
        self.cache = {}
        # an epoch without a frame (a run resumed without x_val) shows its error in message
        self.slider = w.IntSlider(value=epoch, min=self.epochs[0], max=self.epochs[-1], step=1,
                                  description="epoch", continuous_update=False,
                                  layout=w.Layout(width="560px"))
        self.label, self.figure, self.message, self.widget = slider_box(
            self.slider, "sovr-movie", "sovr-margin-movie", order=("label", "message", "figure"))
        self.widget.movie = self
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.show(epoch)

    def picture(self, epoch: int) -> bytes:
        """The PNG of ``epoch``'s figure (cached)."""
        return cached(self.cache, epoch,
                      lambda: figure_png(plot_margin_frame(self.frames, epoch)))

    def caption(self, epoch: int) -> str:
        """The label's text at ``epoch``: per run, peaks and training-slice PGD accuracy."""
        parts = []
        for r in self.frames["runs"]:
            i = epoch_index(r, epoch)
            acc = r["train_slice_pgd_acc"][i]
            parts.append(f"{r['label']}: {peak_counts(r)[i]} peak(s)"
                         + ("" if acc is None else f", PGD acc {acc:.0%}"))
        return f"epoch {epoch} of {self.epochs[-1]} — " + "; ".join(parts)

    def show(self, epoch: int):
        """Draw ``epoch`` (errors go to ``message``, the widget stays usable)."""
        try:
            self.figure.value = self.picture(epoch)
            self.label.value = html.escape(self.caption(epoch))
        except Exception as err:  # noqa: BLE001 - shown to the reader
            self.message.value = error_html(err)
            return
        self.message.value = ""


def margin_movie(frames: dict, *, epoch: int | None = None):
    """The epoch slider of the margin movie (a VBox); see :class:`MarginMovie`."""
    return MarginMovie(frames, epoch=epoch).widget
