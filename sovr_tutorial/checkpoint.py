"""Checkpoints that survive a kill and cannot run code when loaded.

Writes go to a temporary file in the destination folder, are fsync'ed, then renamed
over the old file: a kill at any moment leaves either the old or the new checkpoint,
never half of one. Loads use ``torch.load(weights_only=True)``, which refuses pickles
that would construct arbitrary Python objects.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write, sha256_file
from .paths import shipped_dir

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, unsafe or made for another model."""


def rng_state() -> dict:
    """Every RNG a training run touches, as tensors and plain Python values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_arch(model) -> str:
    return getattr(model, "arch", type(model).__name__)


def save_checkpoint(path, model, optimizer=None, scheduler=None, *, epoch: int = 0,
                    config: dict | None = None, history: list | None = None,
                    extra: dict | None = None) -> Path:
    """Atomically write model (+ optimiser, scheduler, RNG states, config, history)."""
    payload = {
        "format": FORMAT_VERSION,
        "arch": model_arch(model),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "config": dict(config or {}),
        "history": list(history or []),
        "rng": rng_state(),
        "extra": dict(extra or {}),
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path, model=None, optimizer=None, scheduler=None, *, sha256: str | None = None,
                    restore_rng: bool = False, map_location="cpu") -> dict:
    """Load a checkpoint safely and, if given, fill ``model``/``optimizer``/``scheduler``.

    ``sha256``: the expected hash; a mismatch is refused before anything is unpickled.
    Returns the checkpoint dict (``epoch``, ``config``, ``history``, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise CheckpointError(
                f"checkpoint {path} failed its sha256 check (expected {sha256}, got {actual}): "
                "the file is corrupted or not the one shipped. Restore it with "
                f"`git checkout -- {path}` or retrain it (RETRAIN=True in the notebook).")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects beyond tensors and plain data, "
            "which could run code when unpickled. Only checkpoints written by "
            f"sovr_tutorial.save_checkpoint are accepted. (torch said: {str(e).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated ({e})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "arch" not in ckpt:
        raise CheckpointError(f"{path} is not a sovr_tutorial checkpoint (no 'model'/'arch' keys)")
    if model is not None:
        if model_arch(model) != ckpt["arch"]:
            raise CheckpointError(
                f"checkpoint {path} was made for model {ckpt['arch']!r}, but the model given is "
                f"{model_arch(model)!r}: build the model with the checkpoint's settings "
                f"(its config: {ckpt.get('config', {})})")
        model.load_state_dict(ckpt["model"])
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if restore_rng and "rng" in ckpt:
        set_rng_state(ckpt["rng"])
    return ckpt


def shipped_path(run: str, tier: str = "cpu", folder=None) -> Path:
    """Where the course ships the checkpoint of ``run`` (e.g. ``"at-s0"``) at ``tier``:
    ``<folder or paths.shipped_dir()>/<tier>-<run>.pt``, whether it exists or not."""
    return Path(folder or shipped_dir()) / f"{tier}-{run}.pt"


def shipped_sha256(path) -> str:
    """The sha256 listed for a shipped checkpoint in SHA256SUMS beside it."""
    path = Path(path)
    sums = path.parent / "SHA256SUMS"
    if sums.is_file():
        for line in sums.read_text().splitlines():
            digest, _, name = line.partition("  ")
            if name.strip() == path.name:
                return digest
    raise CheckpointError(f"{path.name} is not listed in {sums}: only shipped checkpoints "
                          "with a recorded sha256 are loaded this way")


def load_shipped(run: str, tier: str = "cpu", folder=None):
    """Build the model of a checkpoint the course ships and load it, sha256-verified.

    ``run`` is the run name, e.g. ``"at-s0"`` or ``"sovr-r0.4-s0"``. Returns (model, ckpt);
    ckpt["config"] and ckpt["history"] say how it was made.
    """
    from .models import build_model

    path = shipped_path(run, tier, folder)
    if not path.is_file():
        raise CheckpointError(
            f"no shipped checkpoint {path}: run the notebook with RETRAIN=True, or make it "
            f"with `python -m sovr_tutorial.lab.experiments --tier {tier} --ship`")
    digest = shipped_sha256(path)
    meta = load_checkpoint(path, sha256=digest)
    t = meta["config"]["tier"]
    model = build_model(t["model"], width=t["width"], num_classes=t.get("num_classes", 10),
                        depth=t.get("depth", 3))
    if model_arch(model) != meta["arch"]:
        raise CheckpointError(f"{path}: its config builds {model_arch(model)!r} but its weights "
                              f"are for {meta['arch']!r}")
    model.load_state_dict(meta["model"])
    return model.eval(), meta
