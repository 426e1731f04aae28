"""GPU benchmark: epoch time of PGD-10 AT and achieved TFLOP/s against the measured bf16 peak.

    python -m benchmarks.gpu                         # the gpu tier: PreAct ResNet-18, 50k images
    python -m benchmarks.gpu --epochs 2 --compile    # with torch.compile (first epoch compiles)
    python -m benchmarks.gpu --device cpu --model small_cnn --images 512 --peak-size 512

Prints measured figures, asserts nothing. Three numbers:

1. the device's bf16 matmul peak, *measured* here (a large square matmul in a loop), not
   read from a datasheet;
2. the FLOPs of one PGD-10 AT step (10 attack forward+backward passes and one training
   forward+backward), counted with torch's own FLOP formulas (``flop_registry`` of
   ``torch.utils.flop_counter``) on a real batch; they cover convolutions and matmuls,
   where nearly all the work is;
3. the wall time of each training epoch of the package's own loop (``st.train``: data on the
   device, bf16 autocast and channels_last on CUDA), hence achieved TFLOP/s and its fraction
   of the peak. The first epoch includes warm-up (and compilation with ``--compile``).

The CPU mode exists so the script itself is tested without a GPU; its figures say little.
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

import sovr_tutorial as st
from sovr_tutorial.lab.experiments import environment
from sovr_tutorial.runs import Run
from sovr_tutorial.sampling import split_train_heldout
from sovr_tutorial.train import train_step


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device, n: int = 8192, iters: int = 20) -> tuple[float, str]:
    """Measured TFLOP/s of an n x n matmul: bf16 on CUDA, float32 on CPU."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    seconds = time.perf_counter() - t0
    return 2 * n ** 3 * iters / seconds / 1e12, str(dtype).replace("torch.", "")


class CountFlops(TorchDispatchMode):
    """Sum torch's FLOP formulas over every op that runs inside the ``with`` block.

    ``FlopCounterMode`` itself cannot be used here: its module tracker fails on
    ``torch.autograd.grad`` with respect to the input ("A leaf node was passed to
    _will_engine_execute_node"), which is exactly what PGD does.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def step_flops(tier, x, y, device) -> int:
    """FLOPs of one PGD AT step of the package's loop on the batch (x uint8, y)."""
    model = st.build_model(tier.model, width=tier.width).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=tier.lr, momentum=tier.momentum)
    xb = x.to(device).float().div(255).contiguous(memory_format=torch.channels_last)
    model.train()
    with CountFlops() as counter:
        train_step(Run("at"), model, opt, xb, y.to(device), tier=tier, epoch=0)
    return counter.total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--model", default=None, help="default: the gpu tier's (preact_resnet18)")
    p.add_argument("--images", type=int, default=None, help="default: the gpu tier's 50000")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--peak-size", type=int, default=8192, help="matmul size for the peak")
    p.add_argument("--data", default=None, help="data folder (default: $SOVR_TUTORIAL_DATA)")
    args = p.parse_args(argv)
    device = st.pick_device(args.device)
    base = st.get_tier("gpu")
    tier = base.replace(epochs=args.epochs, model=args.model or base.model,
                        n_train=args.images or base.n_train,
                        width=8 if (args.model or base.model) == "small_cnn" else base.width)
    env = environment()
    print(f"device: {env['gpu'] or 'CPU'} ({device}), torch {env['torch']}, "
          f"{env['cpu_count']} CPU cores")

    peak, dtype = matmul_peak(device, args.peak_size)
    print(f"measured {dtype} matmul peak ({args.peak_size}^2): {peak:.1f} TFLOP/s")

    x, y, info = st.load_cifar10("train", args.data)
    (x, y), _ = split_train_heldout(x, y, tier.n_train, 0)
    flops = step_flops(tier, x[:tier.batch_size], y[:tier.batch_size], device)
    steps = math.ceil(len(y) / tier.batch_size)
    print(f"one PGD-{tier.train_steps} AT step, {tier.model}, batch {tier.batch_size}: "
          f"{flops / 1e12:.3f} TFLOP (counted); {steps} steps per epoch of "
          f"{len(y)} images of {info['label']}")

    _, history = st.train("at", x, y, tier=tier, seed=0, device=device, compile=args.compile,
                          progress=True)
    for h in history:
        achieved = flops * steps / h["seconds"] / 1e12
        print(f"  epoch {h['epoch']}: {h['seconds']:7.1f} s, {len(y) / h['seconds']:8.0f} img/s, "
              f"{achieved:6.1f} TFLOP/s = {100 * achieved / peak:4.1f}% of the measured peak"
              + ("  (includes warm-up" + (" and compilation" if args.compile else "") + ")"
                 if h["epoch"] == 1 else ""))
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    main()
