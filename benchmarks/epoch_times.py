"""Wall time of one training epoch per method and tier (prints figures; no assertions).

    python -m benchmarks.epoch_times [--tiers ci,cpu] [--methods standard,at,trades,mart,gairat,sovr]

Each figure is one epoch of the package's training loop (data, attack, update), without
the per-epoch held-out evaluation, on the tier's training-set size.
"""
from __future__ import annotations

import argparse
import platform

import torch

import sovr_tutorial as st
from sovr_tutorial.sampling import split_train_heldout


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiers", default="ci,cpu")
    p.add_argument("--methods", default=",".join(st.METHODS))
    args = p.parse_args(argv)
    x, y, info = st.load_cifar10("train")
    print(f"one epoch, {info['label']}, {platform.machine()}, {torch.get_num_threads()} torch "
          f"threads, torch {torch.__version__}")
    for tier_name in args.tiers.split(","):
        tier = st.get_tier(tier_name, epochs=1)
        (xt, yt), _ = split_train_heldout(x, y, tier.n_train, 0)
        for method in args.methods.split(","):
            _, hist = st.train(method, xt, yt, tier=tier, seed=0, progress=False)
            print(f"  {tier_name:>4} {method:>8}: {hist[0]['seconds']:7.1f} s  "
                  f"({tier.n_train} images, PGD-{tier.train_steps}, batch {tier.batch_size})",
                  flush=True)


if __name__ == "__main__":
    main()
