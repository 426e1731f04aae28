"""Seconds per move of notebook 04's toy explorer (prints figures; no assertions).

    python -m benchmarks.toy_explorer [--moves 7] [--threads 2] [--base-epochs 180] [--no-check]

Trains the AT model the explorer starts from (the toy tier, seed 0), builds the explorer
without drawing and computes its CE reference (the same fine-tune under CE, once per
explorer; timed on its own), then times ``--moves`` moves at values it has not seen (a
cache miss, as when a reader releases the slider at a new value): fine-tuning a copy of AT
with SOVR (:func:`sovr_tutorial.toy.model.toy_move`), measuring it on the held-out points
and drawing the PNG the widget shows. Prints each move and the median, in wall-clock and
CPU seconds (the CPU figure is what a move costs when the machine is shared).

Then (unless ``--no-check``) the check behind the explorer's margin attack, PGD-20 on the
margin (``EXPLORER_MARGIN_STEPS``), untimed: for AT, the CE reference and the first three
moves' models, its accuracy against PGD-50 with 1 and 3 restarts (what the explorer used
before, and what :func:`sovr_tutorial.toy.model.evaluate_toy` uses), and the largest
difference.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from sovr_tutorial.evaluate import pgd_accuracy
from sovr_tutorial.figures.toy_widgets import ToyExplorer
from sovr_tutorial.runs import Run
from sovr_tutorial.tiers import pgd_step_size
from sovr_tutorial.toy import model as toy_model
from sovr_tutorial.toy import world as toy_data
from sovr_tutorial.train import finetune

#: (rule, value) of the timed moves, in order; all differ from the explorer's start.
MOVES = [("ratio", 0.2), ("ratio", 0.8), ("ratio", 1.0), ("threshold", 0.0),
         ("threshold", 2.0), ("boundary", 0.2), ("boundary", 0.6), ("ratio", 0.6),
         ("threshold", -1.0), ("boundary", 1.0)]
#: the margin attacks the check compares the explorer's with: (steps, restarts)
CHECKED = ((50, 1), (50, 3))


def margin_attack_check(base, world, tier, infos) -> float:
    """Print the margin-attack accuracy of AT and of the models behind ``infos`` (the CE
    reference and moves, fine-tuned again with their settings) at the explorer's PGD steps
    and at CHECKED; returns the largest difference from the explorer's, in points."""
    (x_tr, y_tr, _), (x_te, y_te, _) = world
    x, y = x_te[:toy_model.EXPLORER_HELDOUT], y_te[:toy_model.EXPLORER_HELDOUT]
    models = [("AT", base)]
    for info in infos:
        s = info["settings"]
        run = Run("at") if info["label"] == toy_model.TOY_CE_LABEL else \
            Run("sovr", rule=info["rule"], value=info["value"])
        ft = tier.replace(train_steps=s["attack_steps"],
                          alpha=pgd_step_size(tier.eps, s["attack_steps"]))
        models.append((info["label"], finetune(base, run, x_tr, y_tr, tier=ft, steps=s["steps"],
                                               batch_size=s["batch_size"], lr=s["lr"],
                                               seed=s["seed"])[0]))
    mine = toy_model.EXPLORER_MARGIN_STEPS
    worst = 0.0
    print(f"margin attack: PGD-{mine} (the explorer's) against "
          + ", ".join(f"PGD-{s} x{r}" for s, r in CHECKED) + " (held-out accuracy, %)")
    for label, model in models:
        accs = [pgd_accuracy(model, x, y, eps=tier.eps, steps=s, restarts=r, loss="margin",
                             alpha=pgd_step_size(tier.eps, s), batch_size=len(y))
                for s, r in ((mine, 1), *CHECKED)]
        worst = max(worst, *(abs(a - accs[0]) for a in accs[1:]))
        print(f"  {label:>24}: " + " / ".join(f"{100 * a:.1f}" for a in accs), flush=True)
    print(f"largest difference: {100 * worst:.2f} points", flush=True)
    return worst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--moves", type=int, default=7, help=f"at most {len(MOVES)}")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--base-epochs", type=int, default=None,
                   help="epochs of the AT model (default: the toy tier's)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the check of the margin attack against PGD-50")
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
    wall = time.perf_counter()
    reference = explorer.ce_reference
    print(f"CE reference (once per explorer): {time.perf_counter() - wall:.2f} s wall; a move: "
          f"{reference['steps']} fine-tuning steps (batch {reference['settings']['batch_size']}"
          f", PGD-{reference['settings']['attack_steps']}, lr {reference['settings']['lr']:g}),"
          f" PGD-{reference['eval_steps']} and PGD-{reference['margin_steps']} on the margin, "
          f"{reference['grid']}x{reference['grid']} regions", flush=True)
    walls, cpus, infos = [], [], []
    for rule, value in MOVES[:args.moves]:
        wall, cpu = time.perf_counter(), time.process_time()
        info, png = explorer.result(rule, value)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        infos.append(info)
        print(f"  {rule:>9} {value:+.1f}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU "
              f"({info['seconds']:.2f} s fine-tuning and measuring, {len(png) // 1024} KB "
              "figure)", flush=True)
    print(f"median per move: {statistics.median(walls):.2f} s wall, "
          f"{statistics.median(cpus):.2f} s CPU over {len(walls)} moves", flush=True)
    if not args.no_check:
        margin_attack_check(at, world, tier, [reference, *infos[:3]])


if __name__ == "__main__":
    main()
