"""Where computations run: the package's one device rule.

A new model or run goes to :func:`pick_device` (CUDA when present, else the CPU); work with
an existing model happens where its weights are (:func:`model_device`). The training step's
precision on a device is :func:`resolve_precision`'s.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from .checks import check_choice


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


PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache   # the CPU does not change; autocast asks at every training step
def cpu_runs_bf16_natively() -> bool:
    """Whether this CPU computes bf16 in hardware, as oneDNN (torch's CPU kernels) sees it:
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``, True on x86 with AVX-512 (BW, VL, DQ)
    or AMX and on Arm with bf16. Elsewhere (an AVX2-only laptop) bf16 is emulated: an AT
    step measured about 7x slower than in fp32 on such an AMD EPYC."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):   # a torch build without oneDNN
        return False


def resolve_precision(precision: str, device) -> str:
    """The precision a training step runs in: "bf16" or "fp32".

    "auto" is bf16 on CUDA (tensor cores) and on a CPU that runs bf16 natively
    (:func:`cpu_runs_bf16_natively`), fp32 on any other CPU; "bf16" and "fp32" are taken as
    given (a stored run that trained in bf16 is reproduced in bf16, even where it is slow).
    """
    if check_choice("precision", precision, PRECISIONS) != "auto":
        return precision
    device = _as_device(device)
    if device.type == "cuda" or (device.type == "cpu" and cpu_runs_bf16_natively()):
        return "bf16"
    return "fp32"
