"""Benchmarks: print measured figures (never asserted in tests).

    python -m benchmarks.run [--rounds 7] [--steps 6] [--threads 2] [--aa-images 100] [--skip-aa]

1. Adversarial-training throughput (images/s of a PGD-10 AT step) of the package's loop
   against the plain reference a user would otherwise write: a torchvision-style Dataset
   with per-image PIL transforms behind a DataLoader, and a textbook PGD loop
   (``loss.backward()`` on the input, which also fills every parameter's .grad). Same
   model, batch size, eps and steps, float32 weights, same machine. The loops are timed
   INTERLEAVED: each round runs a block of ``--steps`` steps of every loop in turn
   (reference, package fp32, package bf16, ...), so a machine that gets busier or
   quieter affects every loop alike; each round gives one ratio per variant (its img/s
   over the reference's in that round), and the median ratio is printed with its range
   over the rounds. Variants of the package loop: fp32; bf16 autocast (the tier's
   ``precision="bf16"``, fp32 master weights); ``compile``: ``fit(compile=True)``'s models
   (the update and the attack passes compiled, as fit compiles them); ``fold``: the tier
   option ``fold_bn`` (the attack's passes on the model with BatchNorm folded into the
   convs). Every variant after the first is also given as its per-round ratio to the first
   (``--variants "package fp32,package fp32 fold"``: fold's speed-up over plain fp32).
2. Time of AutoAttack (standard) per 100 test images for the cpu-tier small model.
"""
from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from PIL import Image

import sovr_tutorial as st
from sovr_tutorial.batches import batches
from sovr_tutorial.runs import Run
from sovr_tutorial.train import step_models, train_step

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


def _fresh(model_name, width, channels_last):
    torch.manual_seed(0)
    m = st.build_model(model_name, width=width, channels_last=channels_last).train()
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def reference_loop(x, y, model_name, width, batch_size):
    """(step, endless batch iterator) of the textbook loop."""
    model, opt = _fresh(model_name, width, channels_last=False)

    def step(xb, yb):
        x_adv = textbook_pgd(model, xb, yb)
        loss = F.cross_entropy(model(x_adv), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    loader = torch.utils.data.DataLoader(PilCifar(x, y), batch_size=batch_size, shuffle=True,
                                         num_workers=0, drop_last=True)
    return step, itertools.chain.from_iterable(itertools.repeat(loader))


def package_loop(x, y, model_name, width, batch_size, precision="fp32", compile=False,
                 channels_last=True, fold_bn=False):
    """(step, endless batch iterator) of the package's loop: its batches and train_step,
    channels_last weights and inputs (as build_model and fit make them), with the tier's
    precision and ``fold_bn``; the update's and the attack's models are the ones ``fit``
    runs (:func:`sovr_tutorial.train.step_models`), compiled as ``fit(compile=...)`` does."""
    tier = st.get_tier("cpu", model=model_name, width=width, batch_size=batch_size,
                       precision=precision, fold_bn=fold_bn)
    model, opt = _fresh(model_name, width, channels_last=channels_last)
    step_model, attack_model = step_models(model, tier, compile=compile)
    run = Run("at")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(xb, yb):
        xb = xb.contiguous(memory_format=memory_format)
        train_step(run, step_model, opt, xb, yb, tier=tier, epoch=0, attack_model=attack_model)

    loader = batches(x, y, batch_size, shuffle=True, augment=True, seed=0, drop_last=True)
    return step, itertools.chain.from_iterable(itertools.repeat(loader))


def _block(step, it, n):
    t0, images = time.perf_counter(), 0
    for _ in range(n):
        xb, yb = next(it)
        step(xb, yb)
        images += len(yb)
    return images / (time.perf_counter() - t0)


def interleaved(loops: dict, rounds: int, steps: int, warmup: int = 3) -> dict:
    """img/s of every loop per round, the loops run one block each in turn, every round."""
    for step, it in loops.values():        # warm-up (and compilation) outside the timing
        _block(step, it, warmup)
    rates = {name: [] for name in loops}
    for r in range(rounds):
        # alternate the order every round: no loop always runs right after the same one
        names = list(loops) if r % 2 == 0 else list(reversed(loops))
        for name in names:
            rates[name].append(_block(*loops[name], steps))
    return rates


def _spread(values) -> str:
    q = (statistics.quantiles(values, n=4, method="inclusive") if len(values) >= 2
         else [values[0]] * 3)
    return (f"median {statistics.median(values):.2f}x (IQR {q[0]:.2f}-{q[2]:.2f}, "
            f"range {min(values):.2f}-{max(values):.2f}, {len(values)} rounds)")


def bench_training(x, y, *, rounds, steps, variants, model_name="small_cnn", width=16,
                   batch_size=128):
    loops = {"reference": reference_loop(x, y, model_name, width, batch_size)}
    for name in variants:
        precision = "bf16" if "bf16" in name else "fp32"
        loops[name] = package_loop(x, y, model_name, width, batch_size, precision=precision,
                                   compile="compile" in name, channels_last="nchw" not in name,
                                   fold_bn="fold" in name)
    rates = interleaved(loops, rounds, steps)
    ratios = {name: [p / r for p, r in zip(rates[name], rates["reference"])]
              for name in variants}
    return rates, ratios


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


VARIANTS = ("package fp32", "package bf16", "package fp32 compile")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=6, help="timed training steps per block")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the goal: 2 cores)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"package loops to time against the reference (default {VARIANTS}; "
                   "also 'package bf16 compile', 'package fp32 fold' (BatchNorm folded into "
                   "the convs for the attack) and 'package fp32 nchw': plain NCHW tensors)")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--aa-images", type=int, default=100)
    p.add_argument("--skip-aa", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"torch threads, torch {torch.__version__}, no GPU used")
    x, y, info = st.load_cifar10("train")
    x, y = st.balanced_subset(x, y, 128 * 16, seed=0)
    rates, ratios = bench_training(x, y, rounds=args.rounds, steps=args.steps,
                                   variants=variants, model_name=args.model, width=args.width)
    print(f"PGD-10 AT step, {args.model} w{args.width}, batch 128, {info['label']}, "
          f"{args.rounds} interleaved rounds of {args.steps} steps per loop:")
    print(f"  reference (DataLoader + PIL transforms + textbook PGD, fp32): median "
          f"{statistics.median(rates['reference']):7.1f} img/s")
    for name in variants:
        print(f"  {name:<22}: median {statistics.median(rates[name]):7.1f} img/s; "
              f"ratio to the reference {_spread(ratios[name])}")
    for name in variants[1:]:
        per_round = [a / b for a, b in zip(rates[name], rates[variants[0]])]
        print(f"  {name} / {variants[0]}: {_spread(per_round)}")
    if not args.skip_aa:
        per100, res, which, label = bench_autoattack(args.aa_images)
        print(f"AutoAttack standard, L-inf 8/255, {args.aa_images} test images of {label}, {which}:")
        print(f"  {per100:.1f} s per 100 images; clean {res['clean']:.3f}, robust {res['robust']:.3f}, "
              f"per attack {res['per_attack']}")


if __name__ == "__main__":
    main()
