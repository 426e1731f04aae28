"""Where the course's things are: the one module that knows the folders.

The package runs from a checkout of the course (the notebooks beside it, ``pip install -e .``)
or installed into an environment (``pip install .``). In a checkout every folder is the
repository's; installed, the package never writes beside itself, so data and runs go to the
working directory instead. Two variables override::

    SOVR_TUTORIAL_HOME   the data folder: the official download and the decoded cache
    SOVR_TUTORIAL_RUNS   the folder of training runs (epoch checkpoints that resume)

Every function reads the environment when it is called, so a test or a teacher's script can
point a variable elsewhere after import.
"""
from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SOVR_TUTORIAL_HOME"
RUNS_ENV = "SOVR_TUTORIAL_RUNS"


def checkout() -> Path | None:
    """The course's repository when the package sits in one (its parent holds
    ``pyproject.toml`` and ``notebooks/``), else None (an installed package)."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root
    return None


def base() -> Path:
    """The folder the other paths hang from: the checkout, else the working directory."""
    return checkout() or Path.cwd()


def _env(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """The official CIFAR-10 download and the decoded cache: ``$SOVR_TUTORIAL_HOME`` (the
    folder itself), else ``data/`` of :func:`base`."""
    return _env(HOME_ENV) or base() / "data"


def runs_dir() -> Path:
    """Training runs (per-epoch checkpoints): ``$SOVR_TUTORIAL_RUNS``, else ``runs/`` of
    :func:`base`."""
    return _env(RUNS_ENV) or base() / "runs"


def shipped_dir() -> Path:
    """The checkpoints the course ships (sha256 in ``SHA256SUMS`` beside them): the
    checkout's ``data/checkpoints``; installed, ``checkpoints/`` of :func:`data_dir`."""
    root = checkout()
    return root / "data" / "checkpoints" if root else data_dir() / "checkpoints"


def results_dir() -> Path:
    """The lab's result files (``results/<folder>/*.json``) of :func:`base`."""
    return base() / "results"
