"""Benchmarks: print measured figures (never asserted in tests).

    python -m benchmarks.run [--steps 20] [--aa-images 100] [--skip-aa]

1. Adversarial-training throughput (images/s of a PGD-10 AT step) of the package's loop
   against the plain reference a user would otherwise write: a torchvision-style
   Dataset with per-image PIL transforms behind a DataLoader, and a textbook PGD loop
   (``loss.backward()`` on the input, which also fills every parameter's .grad). Same
   model, same batch size, same eps/steps, float32 both, same machine, one run.
2. Time of AutoAttack (standard) per 100 test images for the cpu-tier small model.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F
from PIL import Image

import sovr_tutorial as st
from sovr_tutorial.data import batches
from sovr_tutorial.train import MethodOptions, method_loss

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10


class PilCifar(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: PIL image, then transforms."""

    def __init__(self, x_uint8, y):
        import torchvision.transforms as T
        self.x = x_uint8.permute(0, 2, 3, 1).numpy()
        self.y = y.tolist()
        self.tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.tf(Image.fromarray(self.x[i])), self.y[i]


def textbook_pgd(model, x, y):
    model.eval()
    x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
    for _ in range(STEPS):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        model.zero_grad()
        loss.backward()
        x_adv = x_adv.detach() + ALPHA * x_adv.grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
    model.train()
    return x_adv.detach()


def time_steps(step, loader, n_steps, warmup=3):
    it = iter(loader)
    for _ in range(warmup):
        step(*next(it))
    t0, n = time.perf_counter(), 0
    for _ in range(n_steps):
        x, y = next(it)
        step(x, y)
        n += len(y)
    return n / (time.perf_counter() - t0)


def bench_training(x, y, steps, batch_size=128, width=16):
    tier = st.get_tier("cpu", width=width, batch_size=batch_size)

    def fresh(channels_last):
        torch.manual_seed(0)
        m = st.build_model("small_cnn", width=width, channels_last=channels_last).train()
        return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    ref_model, ref_opt = fresh(False)

    def ref_step(xb, yb):
        x_adv = textbook_pgd(ref_model, xb, yb)
        loss = F.cross_entropy(ref_model(x_adv), yb)
        ref_opt.zero_grad()
        loss.backward()
        ref_opt.step()

    ref_loader = torch.utils.data.DataLoader(PilCifar(x, y), batch_size=batch_size,
                                             shuffle=True, num_workers=0, drop_last=True)
    pkg_model, pkg_opt = fresh(True)
    opts = MethodOptions()

    def pkg_step(xb, yb):
        xb = xb.contiguous(memory_format=torch.channels_last)
        loss, _ = method_loss("at", pkg_model, xb, yb, tier=tier, epoch=0, opts=opts)
        pkg_opt.zero_grad(set_to_none=True)
        loss.backward()
        pkg_opt.step()

    pkg_loader = batches(x, y, batch_size, shuffle=True, augment=True, seed=0, drop_last=True)
    ref = time_steps(ref_step, ref_loader, steps)
    pkg = time_steps(pkg_step, pkg_loader, steps)
    return ref, pkg


def bench_autoattack(n_images):
    x, y, info = st.load_cifar10("test")
    x, y = st.balanced_subset(x, y, n_images, seed=0)
    try:
        model, meta = st.load_shipped("at-s0")
        which = "shipped cpu-tier AT model (data/checkpoints/cpu-at-s0.pt)"
    except st.CheckpointError:
        torch.manual_seed(0)
        model = st.build_model("small_cnn", width=16).eval()
        which = "UNTRAINED small CNN (no shipped checkpoint found): AA ends early"
    t0 = time.perf_counter()
    res = st.autoattack_eval(model, x.float() / 255, y, eps=EPS, version="standard",
                             progress=True)
    seconds = time.perf_counter() - t0
    return seconds * 100 / n_images, res, which, info["label"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20, help="timed training steps per loop")
    p.add_argument("--aa-images", type=int, default=100)
    p.add_argument("--skip-aa", action="store_true")
    args = p.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"torch threads, torch {torch.__version__}, no GPU used")
    x, y, info = st.load_cifar10("train")
    x, y = st.balanced_subset(x, y, 128 * (args.steps + 4), seed=0)
    ref, pkg = bench_training(x, y, args.steps)
    print(f"PGD-10 AT step, SmallCNN w16, batch 128, {info['label']}:")
    print(f"  reference (DataLoader + PIL transforms + textbook PGD): {ref:8.1f} img/s")
    print(f"  sovr_tutorial (tensor batches + input-only grads + channels_last): {pkg:8.1f} img/s")
    print(f"  ratio: {pkg / ref:.2f}x")
    if not args.skip_aa:
        per100, res, which, label = bench_autoattack(args.aa_images)
        print(f"AutoAttack standard, L-inf 8/255, {args.aa_images} test images of {label}, {which}:")
        print(f"  {per100:.1f} s per 100 images; clean {res['clean']:.3f}, robust {res['robust']:.3f}, "
              f"per attack {res['per_attack']}")


if __name__ == "__main__":
    main()
