"""The margin movie's epoch slider in JupyterLab (headless Chromium, Playwright).

The harness is tests/test_browser.py's (its fixtures and ``drive_slider`` are imported, not
copied): a private JupyterLab serves a copy of notebooks/, the test runs all cells of
03_margins at the ``ci`` tier through the Run menu, moves the epoch slider to its other
end with the keyboard and asserts that the figure (sha256 of its PNG) and the label changed
and that no output shows an error. Screenshots: test-artifacts/browser/03_margins-*.png.
"""
from __future__ import annotations

import re

import pytest
from test_browser import (Explorer, _require_notebook, browser_available,  # noqa: F401
                          browser_context, drive_slider, lab, page, timed)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_margin_movie_slider_in_browser(lab, page, timed):  # noqa: F811 - fixtures
    """03_margins: the epoch slider redraws every run's margin histograms."""
    _require_notebook("03_margins.ipynb")
    result = drive_slider(page, lab, Explorer("03_margins.ipynb", "sovr-movie-slider",
                                              "sovr-movie-figure", "sovr-movie-label",
                                              "sovr-movie-message"))
    before, after = result["label"]
    epochs = [int(re.match(r"epoch (\d+) of (\d+)", text).group(1)) for text in (before, after)]
    last = int(re.match(r"epoch \d+ of (\d+)", before).group(1))
    assert epochs == [last, 1], result["label"]   # it opens at the last epoch; Home goes to 1
    for text in (before, after):
        for label in ("AT", "GAIRAT", "SOVR (ratio 0.4)", "MART"):
            assert f"{label}: " in text, text
