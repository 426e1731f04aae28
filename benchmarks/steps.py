"""N PGD-10 AT steps of a tier's training loop, nothing else: a whole process to time from
outside, two settings in alternation (A B A B ...), e.g. with ``/usr/bin/time -v``:

    python -m benchmarks.steps --steps 12               # the cpu tier: SmallCNN w16, batch 128
    python -m benchmarks.steps --steps 12 --fold-bn     # the same with the tier's fold_bn

The models are the ones ``fit`` runs (:func:`sovr_tutorial.train.step_models`); one torch
thread unless ``--threads`` says otherwise.
"""
from __future__ import annotations

import argparse

import torch

import sovr_tutorial as st
from sovr_tutorial.batches import batches
from sovr_tutorial.runs import Run
from sovr_tutorial.train import step_models, train_step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tier", default="cpu")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--fold-bn", action="store_true", help="the tier option fold_bn=True")
    p.add_argument("--compile", action="store_true", help="as fit(compile=True)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tier = st.get_tier(args.tier, fold_bn=args.fold_bn)
    x, y, _ = st.load_cifar10("train")
    x, y = st.balanced_subset(x, y, tier.batch_size * args.steps, seed=0)
    torch.manual_seed(0)
    model = st.build_model(tier.model, width=tier.width, depth=tier.depth).train()
    opt = torch.optim.SGD(model.parameters(), lr=tier.lr, momentum=tier.momentum,
                          weight_decay=tier.weight_decay)
    step, attack = step_models(model, tier, compile=args.compile)
    for xb, yb in batches(x, y, tier.batch_size, augment=True, seed=0, drop_last=True):
        train_step(Run("at"), step, opt, xb.contiguous(memory_format=torch.channels_last), yb,
                   tier=tier, epoch=0, attack_model=attack)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
