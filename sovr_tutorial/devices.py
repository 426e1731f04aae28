"""Where computations run: the package's one device rule.

A new model or run goes to :func:`pick_device` (CUDA when present, else the CPU); work with
an existing model happens where its weights are (:func:`model_device`).
"""
from __future__ import annotations

import contextlib

import torch


def _as_device(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError("device must be a torch device like 'cpu' or 'cuda', "
                         f"got {device!r}") from err


def pick_device(device=None) -> torch.device:
    """``device`` if given, else CUDA when present, else CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return _as_device(device)


def model_device(model: torch.nn.Module, device=None) -> torch.device:
    """Where to compute with ``model``: the device of its parameters (or buffers; CPU if it
    has neither). An explicit ``device`` must be that one: a model is never moved behind
    the caller's back."""
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    home = tensor.device if tensor is not None else torch.device("cpu")
    if device is None:
        return home
    device = _as_device(device)
    mismatch = device.type != home.type or (
        device.index is not None and home.index is not None and device.index != home.index)
    if tensor is not None and mismatch:
        raise ValueError(f"device={str(device)!r} but the model lives on {str(home)!r}; "
                         f"move it first with model.to({str(device)!r})")
    return device


@contextlib.contextmanager
def torch_threads(n: int = 0):
    """Run the block on ``n`` CPU threads (0: leave torch's setting), then restore it.

    A tiny model (the toy world's MLP) is fastest on one thread, and on a machine whose
    other core is busy, several threads waiting on each other make it many times slower.
    """
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
