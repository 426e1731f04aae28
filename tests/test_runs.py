"""A run is a method and its options; its slug, file name and label follow from them."""
import pytest

from sovr_tutorial.runs import Run, as_run


@pytest.mark.parametrize("run, slug, label", [
    (Run("at"), "at", "AT"),
    (Run("standard"), "standard", "standard"),
    (Run("sovr"), "sovr-r0.4", "SOVR (ratio 0.4)"),
    (Run("sovr", "ratio", 0.0), "sovr-r0", "SOVR (ratio 0)"),
    (Run("sovr", "threshold", 1.0), "sovr-t1", "SOVR (threshold 1)"),
    (Run("sovr", "threshold", -0.5), "sovr-t-0.5", "SOVR (threshold -0.5)"),
    (Run("sovr", "boundary", 0.25), "sovr-b0.25", "SOVR (boundary 0.25)"),
    (Run("trades", trades_beta=3.0), "trades-beta3", "TRADES (beta 3)"),
    (Run("gairat", gairat_lambda=0.0), "gairat-lam0", "GAIRAT (lam 0)"),
])
def test_slug_and_label_and_their_round_trip(run, slug, label):
    assert run.slug == slug and run.label == label
    assert Run.parse(slug) == run and as_run(slug) == run
    assert run.name(2) == f"{slug}-s2"
    assert Run(**run.options()) == run


def test_options_of_other_methods_do_not_change_a_run():
    # SOVR's rule and MART's beta mean nothing to AT: one AT run, one name
    assert Run("at", value=0.2).slug == "at" and Run("at", mart_beta=2).label == "AT"
    assert Run.parse("sovr") == Run("sovr", "ratio", 0.4)


def test_runs_with_other_options_are_other_runs():
    assert Run("sovr", value=0.2) != Run("sovr")
    assert len({Run("sovr").name(0), Run("sovr", "threshold", 0.4).name(0),
                Run("sovr", "boundary", 0.4).name(0)}) == 3


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(method="madry"), ValueError, "method"),
    (dict(method="sovr", rule="margin"), ValueError, "rule"),
    (dict(method="sovr", value=1.5), ValueError, "ratio"),
    (dict(method="sovr", rule="boundary", value=-0.1), ValueError, "boundary"),
    (dict(method="sovr", rule="threshold", value=float("nan")), ValueError, "threshold"),
    (dict(method="sovr", rule="threshold", value=float("inf")), ValueError, "threshold"),
    (dict(method="sovr", value="0.4"), TypeError, "value"),
    (dict(method="trades", trades_beta=-1.0), ValueError, "trades_beta"),
])
def test_bad_values_raise_naming_them(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        Run(**kwargs)


@pytest.mark.parametrize("text", ["madry", "sovr-x0.4", "at-beta3", "trades-gamma2", "sovr-r2"])
def test_unreadable_slugs_raise(text):
    with pytest.raises(ValueError):
        Run.parse(text)


def test_as_run_takes_runs_and_slugs_only():
    run = Run("mart")
    assert as_run(run) is run
    with pytest.raises(TypeError, match="run"):
        as_run(0.4)
