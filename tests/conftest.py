"""Shared fixtures: CIFAR-10 found the way ``load_cifar10`` finds it, and a small model.

The data is ``$SOVR_TUTORIAL_DATA`` (the JPEG copy or the official set) or else the
official CIFAR-10 that ``make data`` fetches into ``data/``: the same tests run on either.
A test that needs it fails, with the message that says how to get it, when neither is there.
"""
import pytest
import torch

from sovr_tutorial.data import DataError, find_cifar10

try:
    DATA_KIND, DATA_DIR = find_cifar10("test")
    DATA_ERROR = None
except DataError as err:   # reported by the tests that need the data, not at collection
    DATA_KIND, DATA_DIR, DATA_ERROR = None, None, err


@pytest.fixture(scope="session")
def data_dir():
    """The folder ``load_cifar10`` reads CIFAR-10 from (pass it as ``path``)."""
    if DATA_ERROR is not None:
        pytest.fail(f"this test needs CIFAR-10: {DATA_ERROR}", pytrace=False)
    return DATA_DIR


@pytest.fixture(scope="session")
def cifar_test(data_dir):
    from sovr_tutorial.data import load_cifar10
    x, y, _ = load_cifar10("test", data_dir)
    return x, y


@pytest.fixture(scope="session")
def small_split(cifar_test):
    """1000 real images for training and 200 others, balanced, uint8."""
    from sovr_tutorial.sampling import balanced_subset
    x, y = cifar_test
    xs, ys = balanced_subset(x, y, 1200, seed=0)
    perm = torch.randperm(1200, generator=torch.Generator().manual_seed(0))
    xs, ys = xs[perm], ys[perm]
    return (xs[:1000], ys[:1000]), (xs[1000:], ys[1000:])


@pytest.fixture(scope="session")
def trained_model(small_split):
    """A small CNN trained without attacks for a few epochs: clearly better than chance."""
    from sovr_tutorial import get_tier, train
    (x, y), _ = small_split
    tier = get_tier("ci", width=8, epochs=4, lr=0.05)
    model, _ = train("standard", x, y, tier=tier, seed=0, progress=False)
    return model.eval()


@pytest.fixture(scope="session")
def eval_batch(small_split):
    _, (x, y) = small_split
    return x[:64].float() / 255, y[:64]
