"""The adversarial-example figure: its rows, captions and refusals."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sovr_tutorial.figures import images as image_plots  # noqa: E402
from sovr_tutorial.data import CLASSES  # noqa: E402


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_show_adversarial_examples_rows_and_captions():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=g)
    x_adv = (x + 8 / 255 * torch.randn(8, 3, 32, 32, generator=g).sign()).clamp(0, 1)
    y = torch.arange(8)
    pred_clean = torch.arange(8)
    pred_adv = (torch.arange(8) + 1) % 10
    fig = image_plots.show_adversarial_examples(x, x_adv, y, pred_clean, pred_adv, CLASSES, n=5,
                                          title="demo")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 15                     # 3 rows x 5 columns
    titles = _titles(fig)
    assert titles[0] == "true: airplane\npred: airplane"
    assert titles[10] == "pred: automobile"        # row 3, column 1: adversarial prediction
    assert fig.axes[0].title.get_color() == "green"
    assert fig.axes[10].title.get_color() == "red"
    assert fig.axes[0].get_ylabel() == "clean"
    assert fig.axes[5].get_ylabel().startswith("perturbation")
    assert fig.axes[10].get_ylabel() == "adversarial"
    # the perturbation row is grey where nothing changed and within [0, 1]
    img = fig.axes[5].images[0].get_array()
    assert img.min() >= 0 and img.max() <= 1


def test_show_adversarial_examples_rejects_mismatched_inputs():
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(ValueError, match="same shape"):
        image_plots.show_adversarial_examples(x, x[:3], torch.zeros(4), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="same number"):
        image_plots.show_adversarial_examples(x, x, torch.zeros(3), torch.zeros(4), torch.zeros(4))
