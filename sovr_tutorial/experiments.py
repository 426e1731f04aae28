"""The experiment runner: train, evaluate and measure every (method, seed), resumably.

    python -m sovr_tutorial.experiments --tier cpu --methods at,trades,mart,gairat,sovr --seeds 0

Each run writes ``results/<tier>/<run>.json`` (metrics, margin statistics, histogram
data, and the tier, seed, data source, hardware, versions and wall time that produced
them). A killed command restarted as it was continues from the last epoch checkpoint
(``runs/<tier>/<run>.pt``) and from AutoAttack's state, and skips runs already written.
Figures are drawn from those files (``--plot``), never from memory.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .attacks import pgd
from .checkpoint import save_checkpoint
from .files import atomic_write_text, sha256_file
from .checks import check_choice, check_number, check_ratio
from .data import balanced_subset, load_cifar10
from .evaluate import accuracy, autoattack_eval
from .margins import collect_margins, margin_histogram, margin_summary
from .tiers import TIERS, get_tier
from .train import METHODS, distributed_context, pick_device, run_name, set_seed, train

ROOT = Path(__file__).resolve().parents[1]
HIST_RANGE = (-10.0, 10.0)
HIST_BINS = 80


def split_train_heldout(x, y, n_train: int, n_heldout: int, seed: int = 0):
    """Balanced, disjoint training and held-out subsets, each in a shuffled class order."""
    xs, ys = balanced_subset(x, y, n_train + n_heldout, seed=seed)
    g = torch.Generator().manual_seed(seed)
    # rank of each sample inside its class (in a random order), then a stable sort by rank:
    # classes interleave, so any prefix is balanced
    order = torch.randperm(len(ys), generator=g)
    ys_o = ys[order]
    rank = torch.zeros_like(ys_o)
    for c in ys_o.unique():
        idx = (ys_o == c).nonzero().flatten()
        rank[idx] = torch.arange(len(idx))
    order = order[torch.argsort(rank, stable=True)]
    xs, ys = xs[order], ys[order]
    return (xs[:n_train], ys[:n_train]), (xs[n_train:], ys[n_train:])


def environment() -> dict:
    """Hardware and software that produced a result."""
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "sovr_tutorial": __version__, "platform": platform.platform(),
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    for name in ("torchvision", "pyautoattack", "autoattack"):
        try:
            env[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just absent
            pass
    return env


def margin_stats(model, x, y, tier, attack: bool, device) -> dict:
    """Margins, gradient norms and flip budgets at clean or PGD inputs, summarised."""
    atk = None
    if attack:
        def atk(m, xb, yb):
            return pgd(m, xb, yb, tier.eps, tier.alpha, tier.eval_steps)
    out = collect_margins(model, x, y, attack=atk, device=device, progress=False)
    counts, edges = margin_histogram(out["margin"], bins=HIST_BINS, range=HIST_RANGE)
    fb = out["flip_budget"][np.isfinite(out["flip_budget"])]
    return {"margin": margin_summary(out["margin"]),
            "grad_norm_l1": margin_summary(out["grad_norm"]),
            "flip_budget": margin_summary(fb) if len(fb) else None,
            "hist_counts": counts.tolist(), "hist_edges": edges.tolist(),
            "accuracy": float(out["correct"].mean())}


def evaluate_run(model, data, tier, device, state_dir: Path, seed: int) -> dict:
    (x_tr, y_tr), (x_te, y_te) = data
    f = lambda u: u.float().div(255)  # noqa: E731
    xt, yt = f(x_te).to(device), y_te.to(device)
    torch.manual_seed(seed)
    x_adv = torch.cat([pgd(model, xt[i:i + 500], yt[i:i + 500], tier.eps, tier.alpha,
                           tier.eval_steps) for i in range(0, len(xt), 500)])
    x_adv_m = torch.cat([pgd(model, xt[i:i + 500], yt[i:i + 500], tier.eps, tier.alpha,
                             tier.eval_steps, loss="margin") for i in range(0, len(xt), 500)])
    n_aa = tier.n_autoattack
    aa = autoattack_eval(model, xt[:n_aa], yt[:n_aa], eps=tier.eps,
                         version=tier.autoattack_version, state_path=state_dir, seed=seed,
                         device=device, progress=False)
    n_m = min(len(x_tr), len(x_te))
    return {
        "clean_acc": accuracy(model, xt, yt),
        f"pgd{tier.eval_steps}_ce_acc": accuracy(model, x_adv, yt),
        f"pgd{tier.eval_steps}_margin_acc": accuracy(model, x_adv_m, yt),
        # PGD accuracy on exactly the images AutoAttack saw, for an honest gap
        "pgd_acc_on_aa_subset": accuracy(model, x_adv[:n_aa], yt[:n_aa]),
        "autoattack": aa,
        "margins": {
            "test_clean": margin_stats(model, xt, yt, tier, False, device),
            "test_adv": margin_stats(model, xt, yt, tier, True, device),
            "train_clean": margin_stats(model, f(x_tr[:n_m]).to(device), y_tr[:n_m].to(device),
                                        tier, False, device),
            "train_adv": margin_stats(model, f(x_tr[:n_m]).to(device), y_tr[:n_m].to(device),
                                      tier, True, device),
        },
    }


def run_one(method, seed, tier, data, info, out_dir: Path, run_dir: Path, device,
            ratio=None, progress=True, ship_dir: Path | None = None, command: str = "") -> dict:
    name = run_name(method, seed, ratio)
    result_path = out_dir / f"{name}.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    t0 = time.time()
    (x_tr, y_tr), (x_ho, y_ho), (x_te, y_te) = data
    opts = {"sovr_ratio": ratio} if method == "sovr" else {}
    model, history = train(method, x_tr, y_tr, tier=tier, x_val=x_ho, y_val=y_ho, seed=seed,
                           checkpoint_path=run_dir / f"{name}.pt", device=device,
                           progress=progress, **opts)
    if distributed_context()[0] != 0:
        return None  # rank 0 evaluates and writes; the others go on to the next run
    train_seconds = sum(h["seconds"] for h in history)
    metrics = evaluate_run(model, ((x_tr, y_tr), (x_te, y_te)), tier, device,
                           run_dir / f"{name}.aa", seed)
    result = {"run": name, "method": method, "seed": seed, "sovr_ratio": ratio,
              "tier": dataclasses.asdict(tier), "data": info, "environment": environment(),
              "history": history, "train_seconds": train_seconds, **metrics,
              "wall_seconds": time.time() - t0,
              "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": command}
    if ship_dir is not None:
        result["checkpoint"] = ship_checkpoint(model, ship_dir / f"{tier.name}-{name}.pt",
                                               result)
    atomic_write_text(result_path, json.dumps(result, indent=1))
    return result


def ship_checkpoint(model, path: Path, result: dict) -> dict:
    """Weights only (no optimiser) + sha256, listed in SHA256SUMS beside it."""
    save_checkpoint(path, model, epoch=result["tier"]["epochs"],
                    config={"method": result["method"], "seed": result["seed"],
                            "sovr_ratio": result["sovr_ratio"], "tier": result["tier"]},
                    history=result["history"])
    digest = sha256_file(path)
    sums = path.parent / "SHA256SUMS"
    lines = {}
    if sums.exists():
        for line in sums.read_text().splitlines():
            h, n = line.split()
            lines[n] = h
    lines[path.name] = digest
    text = "".join(f"{h}  {n}\n" for n, h in sorted(lines.items()))
    atomic_write_text(sums, text)
    return {"file": path.name, "sha256": digest}


def load_data(tier, data_path=None, data_seed: int = 0):
    x, y, info = load_cifar10("train", data_path)
    tr, ho = split_train_heldout(x, y, tier.n_train, tier.n_heldout, seed=data_seed)
    xt, yt, _ = load_cifar10("test", data_path)
    te = balanced_subset(xt, yt, tier.n_test, seed=data_seed)
    # a class-interleaved test subset, so the first n_autoattack images are balanced too
    (te_x, te_y), _ = split_train_heldout(te[0], te[1], tier.n_test, 0, seed=data_seed)
    keep = {k: info[k] for k in ("source", "label", "sha256") if k in info}
    return (tr, ho, (te_x, te_y)), {**keep, "n_train": len(tr[1]), "n_heldout": len(ho[1]),
                                    "n_test": len(te_y), "data_seed": data_seed}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.experiments",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--tier", default=None, help=f"one of {sorted(TIERS)} (default: "
                   "$SOVR_TUTORIAL_TIER or cpu)")
    p.add_argument("--methods", default="at,trades,mart,gairat,sovr")
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--sovr-ratios", default=None, help="comma-separated SOVR ratios "
                   "(default: the package default)")
    p.add_argument("--epochs", type=int, default=None, help="override the tier's epochs")
    p.add_argument("--lr", type=float, default=None, help="override the tier's learning rate")
    p.add_argument("--data", default=None, help="data folder (default: $SOVR_TUTORIAL_DATA "
                   "or the official CIFAR-10 in data/)")
    p.add_argument("--out", default=None, help="results folder (default results/<tier>, or "
                   "results/<tier>-e<epochs>-lr<lr> when --epochs / --lr change the tier)")
    p.add_argument("--runs", default=None, help="checkpoint folder (default runs/<tier>, "
                   "named like --out's)")
    p.add_argument("--ship", action="store_true",
                   help="also write weights-only checkpoints to data/checkpoints/")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--plot", action="store_true", help="only draw figures from the results")
    args = p.parse_args(argv)
    try:
        args.tier = get_tier(args.tier)
        args.methods = [check_choice("method", m.strip(), METHODS)
                        for m in args.methods.split(",") if m.strip()]
        args.seeds = [check_number("seed", int(s), low=0, integer=True)
                      for s in args.seeds.split(",")]
        from .losses import DEFAULT_SOVR_RATIO
        args.sovr_ratios = ([check_ratio(float(r), "sovr ratio") for r in args.sovr_ratios.split(",")]
                            if args.sovr_ratios else [DEFAULT_SOVR_RATIO])
        if args.epochs is not None:
            args.tier = args.tier.replace(epochs=check_number("epochs", args.epochs, low=1,
                                                              integer=True))
        if args.lr is not None:
            args.tier = args.tier.replace(lr=check_number("lr", args.lr, low=0.0, low_open=True))
        if args.data is not None and not Path(args.data).exists():
            raise ValueError(f"--data {args.data!r} does not exist")
    except ValueError as e:
        p.error(str(e))
    return args


def default_folder(tier) -> str:
    """``cpu``; ``cpu-e30`` for the cpu tier trained for 30 epochs instead of its 10;
    ``cpu-lr0.01`` for another learning rate (``cpu-e30-lr0.01`` for both).

    Runs with other settings must not share a folder with the tier's own runs: the runner
    skips a run whose results file exists and resumes from a checkpoint of the same name.
    """
    base = get_tier(tier.name)
    name = tier.name
    if tier.epochs != base.epochs:
        name += f"-e{tier.epochs}"
    if tier.lr != base.lr:
        name += f"-lr{tier.lr:g}"
    return name


def main(argv=None):
    args = parse_args(argv)
    command = " ".join([Path(sys.executable).name, "-m", __name__]
                       + list(sys.argv[1:] if argv is None else argv))
    tier = args.tier
    out_dir = Path(args.out or ROOT / "results" / default_folder(tier))
    if args.plot:
        from .plots import plot_results
        for path in plot_results(out_dir):
            print("wrote", path)
        return 0
    run_dir = Path(args.runs or ROOT / "runs" / default_folder(tier))
    out_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        import torch.distributed as dist
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        # rank 0 evaluates alone after each run; give it hours before the others time out
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=dt.timedelta(hours=12))
    set_seed(0)
    data, info = load_data(tier, args.data)
    jobs = [(m, s, r) for s in args.seeds for m in args.methods
            for r in (args.sovr_ratios if m == "sovr" else [None])]
    for method, seed, ratio in jobs:
        name = run_name(method, seed, ratio)
        res = run_one(method, seed, tier, data, info, out_dir, run_dir, device, ratio=ratio,
                      progress=not args.no_progress,
                      ship_dir=ROOT / "data" / "checkpoints" if args.ship else None,
                      command=command)
        if res is None:
            continue
        aa = res["autoattack"]
        print(f"{name:>16}: clean {res['clean_acc']:.3f}  PGD-{tier.eval_steps} "
              f"{res[f'pgd{tier.eval_steps}_ce_acc']:.3f}  AA[{aa['version']}] "
              f"{aa['robust']:.3f} (n={aa['n']})  {res['wall_seconds']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
