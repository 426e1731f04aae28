"""Shared fixtures: the offline CIFAR-10 copy and a small model trained on it."""
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _jpeg_dir():
    env = os.environ.get("SOVR_TUTORIAL_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture(scope="session")
def jpeg_dir():
    d = _jpeg_dir()
    if not (d / "test.zip").is_file():
        pytest.skip(f"offline CIFAR-10 copy not found at {d} (set SOVR_TUTORIAL_DATA)")
    return d


@pytest.fixture(scope="session")
def cifar_test(jpeg_dir):
    from sovr_tutorial.data import load_cifar10
    x, y, _ = load_cifar10("test", jpeg_dir)
    return x, y


@pytest.fixture(scope="session")
def small_split(cifar_test):
    """1000 real training-distribution images and 200 others, balanced, uint8."""
    from sovr_tutorial.data import balanced_subset
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
    torch.manual_seed(0)
    model, _ = train("standard", x, y, tier=tier, seed=0, progress=False)
    return model.eval()


@pytest.fixture(scope="session")
def eval_batch(small_split):
    _, (x, y) = small_split
    return x[:64].float() / 255, y[:64]
