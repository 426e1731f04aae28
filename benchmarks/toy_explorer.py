"""Seconds per move of notebook 04's toy explorer (prints figures; no assertions).

    python -m benchmarks.toy_explorer [--moves 7] [--threads 2] [--base-epochs 180]

Trains the AT model the explorer starts from (the toy tier, seed 0), builds the explorer
without drawing, then times ``--moves`` moves at values it has not seen (a cache miss, as
when a reader releases the slider at a new value): fine-tuning a copy of AT with SOVR
(:func:`sovr_tutorial.toy.model.toy_move`), measuring it on the held-out points and drawing the
PNG the widget shows. Prints each move and the median, in wall-clock and CPU seconds (the
CPU figure is what a move costs when the machine is shared).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from sovr_tutorial.toy import world as toy_data, model as toy_model
from sovr_tutorial.figures.toy_widgets import ToyExplorer

#: (rule, value) of the timed moves, in order; all differ from the explorer's start.
MOVES = [("ratio", 0.2), ("ratio", 0.8), ("ratio", 1.0), ("threshold", 0.0),
         ("threshold", 2.0), ("boundary", 0.2), ("boundary", 0.6), ("ratio", 0.6),
         ("threshold", -1.0), ("boundary", 1.0)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--moves", type=int, default=7, help=f"at most {len(MOVES)}")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--base-epochs", type=int, default=None,
                   help="epochs of the AT model (default: the toy tier's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tier = toy_data.toy_tier()
    base_tier = tier if args.base_epochs is None else tier.replace(epochs=args.base_epochs)
    at, _, world, seconds = toy_model.train_toy("at", 0, base_tier)
    print(f"toy explorer, {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; AT trained "
          f"in {seconds:.1f} s ({base_tier.epochs} epochs)", flush=True)
    explorer = ToyExplorer(at, world, tier=tier, compute=False)
    walls, cpus = [], []
    for rule, value in MOVES[:args.moves]:
        wall, cpu = time.perf_counter(), time.process_time()
        info, png = explorer.result(rule, value)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        print(f"  {rule:>9} {value:+.1f}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU "
              f"({info['steps']} fine-tuning steps, {len(png) // 1024} KB figure)", flush=True)
    print(f"median per move: {statistics.median(walls):.2f} s wall, "
          f"{statistics.median(cpus):.2f} s CPU over {len(walls)} moves", flush=True)


if __name__ == "__main__":
    main()
