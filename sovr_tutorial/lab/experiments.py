"""The experiment runner: train, evaluate and measure every (method, seed), resumably.

    python -m sovr_tutorial.lab.experiments --tier cpu --methods at,trades,mart,gairat,sovr --seeds 0

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

import torch

from .. import __version__
from ..attacks import attack_dataset
from ..autoattack import autoattack_eval
from ..checkpoint import save_checkpoint, shipped_path
from ..checks import check_number
from ..devices import pick_device, resolve_precision
from ..evaluate import adversarial_margins, predictions
from ..files import atomic_write_text, sha256_file
from ..margins import collect_margins, margin_stats
from ..paths import checkout, results_dir, runs_dir, shipped_dir
from ..runs import Run, as_run
from ..sampling import load_data
from ..tiers import TIERS, get_tier, parse_overrides
from ..train import distributed_context, set_seed, train


def environment() -> dict:
    """Hardware and software that produced a result."""
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "sovr_tutorial": __version__, "platform": platform.platform(),
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    env["git_commit"] = git_commit()
    if env["git_commit"] and env["git_commit"].endswith("+dirty"):
        env["git_diff_sha256"] = git_diff_sha256()
    for name in ("torchvision", "pyautoattack", "autoattack"):
        try:
            env[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just absent
            pass
    return env


# What the runners write (result files, shipped checkpoints) is not the code that made it: a
# change there does not make a result dirty, so a run in progress never dirties the next.
_OUTPUTS = (":(exclude)results", ":(exclude)data/checkpoints")


def git_commit() -> str | None:
    """The commit of the code that produced a result (``+dirty`` if the tracked files outside
    the runners' outputs had changes)."""
    import subprocess
    root = checkout()
    if root is None:   # an installed package has no commit
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *_OUTPUTS],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
        return head + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def git_diff_sha256() -> str | None:
    """sha256 of ``git diff HEAD`` (the tracked files' uncommitted changes outside the runners'
    outputs): which dirty tree made a ``+dirty`` result, so the same diff applied to its
    commit can be told apart."""
    import hashlib
    import subprocess
    root = checkout()
    if root is None:
        return None
    try:
        diff = subprocess.run(["git", "diff", "HEAD", "--no-color", "--no-ext-diff", "--", ".",
                               *_OUTPUTS], cwd=root,
                              capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return hashlib.sha256(diff).hexdigest()


def command_line(module: str, argv=None) -> str:
    """The command a result file records: ``python -m <module> <arguments>``, runnable as it
    stands from the repository root (``__name__`` is ``__main__`` under ``-m``)."""
    return " ".join(["python", "-m", module] + list(sys.argv[1:] if argv is None else argv))


def _adversarial(model, x, y, tier, seed) -> dict:
    """The runner's attack: :func:`adversarial_margins` at PGD-``eval_steps`` at the tier's
    eps and step size (its "x_adv" are the images the accuracies below count on)."""
    return adversarial_margins(model, x, y, eps=tier.eps, steps=tier.eval_steps, seed=seed,
                               step_size=tier.eval_step_size, batch_size=500)


def _correct(model, x, y) -> torch.Tensor:
    return predictions(model, x) == y.cpu()


def _bits(correct) -> str:
    """Per-image correctness as a string of 0/1 (for McNemar tests on the same images)."""
    return "".join("1" if ok else "0" for ok in correct.tolist())


def evaluate_run(model, data, tier, device, state_dir: Path, seed: int) -> dict:
    """Test accuracies, AutoAttack, per-image correctness and margin statistics of a model.

    Robust accuracy under PGD counts an image only when it is right clean AND at its PGD
    point, as AutoAttack counts: the last PGD iterate can land a clean mistake on the right
    side (GAIRAT's masked gradients do this often), which would otherwise count as robust.
    """
    (x_tr, y_tr), (x_te, y_te) = data
    f = lambda u: u.float().div(255).to(device)  # noqa: E731
    xt, yt = f(x_te), y_te.to(device)
    test_adv = _adversarial(model, xt, yt, tier, seed)
    x_adv = test_adv["x_adv"]
    # the same attack on the margin loss: only its images are needed, not their margins
    x_adv_m = attack_dataset(model, xt, yt, eps=tier.eps, steps=tier.eval_steps, loss="margin",
                             seed=seed, alpha=tier.eval_step_size, batch_size=500)
    n_aa = tier.n_autoattack
    aa = autoattack_eval(model, xt[:n_aa], yt[:n_aa], eps=tier.eps,
                         version=tier.autoattack_version, state_path=state_dir, seed=seed,
                         device=device, progress=False)
    n_m = min(len(x_tr), len(x_te))
    xr, yr = f(x_tr[:n_m]), y_tr[:n_m].to(device)
    train_adv = _adversarial(model, xr, yr, tier, seed)
    xr_adv = train_adv["x_adv"]
    clean, at_pgd, at_margin = (_correct(model, x, yt) for x in (xt, x_adv, x_adv_m))
    robust, robust_m = clean & at_pgd, clean & at_margin
    return {
        "clean_acc": clean.float().mean().item(),
        f"pgd{tier.eval_steps}_ce_acc": robust.float().mean().item(),
        f"pgd{tier.eval_steps}_margin_acc": robust_m.float().mean().item(),
        # PGD accuracy on exactly the images AutoAttack saw, for an honest gap
        "pgd_acc_on_aa_subset": robust[:n_aa].float().mean().item(),
        "robust_train_acc": (_correct(model, xr, yr) & _correct(model, xr_adv, yr))
        .float().mean().item(),
        "pgd_counting": "clean and adversarial both correct",
        "autoattack": aa,
        # raw correctness at each input, one bit per image (robust = clean & pgd); the toy
        # runner writes the same key, one bit per toy point
        "per_image": {"clean": _bits(clean), "pgd": _bits(at_pgd),
                      "pgd_margin": _bits(at_margin)},
        "margins": {
            "test_clean": margin_stats(collect_margins(model, xt, yt, progress=False)),
            # the PGD images of the accuracy above, not a second attack
            "test_adv": margin_stats(test_adv),
            "train_clean": margin_stats(collect_margins(model, xr, yr, progress=False)),
            "train_adv": margin_stats(train_adv),
        },
    }


def run_one(run: Run, seed, tier, data, info, out_dir: Path, run_dir: Path, device,
            progress=True, ship_dir: Path | None = None, command: str = "") -> dict:
    name = run.name(seed)
    result_path = out_dir / f"{name}.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    t0 = time.time()
    (x_tr, y_tr), (x_ho, y_ho), (x_te, y_te) = data
    model, history = train(run, x_tr, y_tr, tier=tier, x_val=x_ho, y_val=y_ho, seed=seed,
                           checkpoint_path=run_dir / f"{name}.pt", device=device,
                           progress=progress)
    if distributed_context()[0] != 0:
        return None  # rank 0 evaluates and writes; the others go on to the next run
    train_seconds = sum(h["seconds"] for h in history)
    metrics = evaluate_run(model, ((x_tr, y_tr), (x_te, y_te)), tier, device,
                           run_dir / f"{name}.aa", seed)
    result = {"run": name, "method": run.method, "label": run.label, "options": run.options(),
              "seed": seed, "tier": dataclasses.asdict(tier),
              "precision": resolve_precision(tier.precision, device), "data": info,
              "environment": environment(),
              "history": history, "train_seconds": train_seconds, **metrics,
              "wall_seconds": time.time() - t0,
              "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": command}
    if ship_dir is not None:
        result["checkpoint"] = ship_checkpoint(model, shipped_path(name, tier.name, ship_dir),
                                               result)
    atomic_write_text(result_path, json.dumps(result, indent=1))
    return result


def ship_checkpoint(model, path: Path, result: dict) -> dict:
    """Weights only (no optimiser) + sha256, listed in SHA256SUMS beside it."""
    save_checkpoint(path, model, epoch=result["tier"]["epochs"],
                    config={"method": result["method"], "seed": result["seed"],
                            "options": result["options"], "tier": result["tier"]},
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.lab.experiments",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--tier", default=None, help=f"one of {sorted(TIERS)} (default: "
                   "$SOVR_TUTORIAL_TIER or cpu)")
    p.add_argument("--methods", default="at,trades,mart,gairat,sovr",
                   help="comma-separated runs: a method, or SOVR with its rule and value: "
                   "sovr-r0.4 (ratio), sovr-t1 (threshold), sovr-b0.4 (boundary) [sovr = "
                   "sovr-r0.4]")
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a tier field, e.g. --set n_train=2000 --set eps=4/255 "
                   "--set model=cnn --set width=32 (repeatable)")
    p.add_argument("--epochs", type=int, default=None, help="override the tier's epochs "
                   "(same as --set epochs=N)")
    p.add_argument("--lr", type=float, default=None, help="override the tier's learning rate "
                   "(same as --set lr=X)")
    p.add_argument("--data", default=None, help="data folder (default: $SOVR_TUTORIAL_DATA "
                   "or the official CIFAR-10 in data/)")
    p.add_argument("--out", default=None, help="results folder (default results/<tier>, or "
                   "results/<tier>-<changes> when --set / --epochs / --lr change the tier, "
                   "e.g. cpu-e30, cpu-cnn-w32-n1000-e60-eps2)")
    p.add_argument("--runs", default=None, help="checkpoint folder (default runs/<tier>, "
                   "named like --out's)")
    p.add_argument("--ship", action="store_true",
                   help="also write weights-only checkpoints to data/checkpoints/")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--plot", action="store_true", help="only draw figures from the results")
    args = p.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        if args.lr is not None:
            overrides["lr"] = args.lr
        if "epochs" in overrides:
            check_number("epochs", overrides["epochs"], low=1, integer=True)
        if "lr" in overrides:
            check_number("lr", overrides["lr"], low=0.0, low_open=True)
        args.tier = get_tier(args.tier, **overrides)
        args.methods = [as_run(m) for m in args.methods.split(",") if m.strip()]
        args.seeds = [check_number("seed", int(s), low=0, integer=True)
                      for s in args.seeds.split(",")]
        if args.data is not None and not Path(args.data).exists():
            raise ValueError(f"--data {args.data!r} does not exist")
    except ValueError as e:
        p.error(str(e))
    return args


# How a changed tier field shows in a folder name (cpu-e30, cpu-lr0.01, cpu-cnn-w32-n1000).
_FOLDER_KEYS = {"model": "", "width": "w", "depth": "d", "n_train": "n", "epochs": "e",
                "lr": "lr", "eps": "eps", "alpha": "alpha", "train_steps": "k",
                "batch_size": "b", "gairat_burn_in": "burn", "precision": ""}


def default_folder(tier) -> str:
    """``cpu``; ``cpu-e30`` for the cpu tier trained for 30 epochs instead of its 10;
    ``cpu-lr0.01`` for another learning rate; ``cpu-cnn-w32-n1000-e60-eps2-bf16`` for a
    model, width, training-set size, epochs, eps (in /255) and precision of its own.

    Runs with other settings must not share a folder with the tier's own runs: the runner
    skips a run whose results file exists and resumes from a checkpoint of the same name.
    """
    base = get_tier(tier.name)
    name = tier.name
    for field in dataclasses.fields(tier):
        key, value = field.name, getattr(tier, field.name)
        if key == "name" or value == getattr(base, key):
            continue
        if key in ("eps", "alpha"):
            value = round(value * 255, 4)
        prefix = _FOLDER_KEYS.get(key, key.replace("_", "") + "_")
        name += f"-{prefix}{value:g}" if isinstance(value, (int, float)) else f"-{prefix}{value}"
    return name


def main(argv=None):
    args = parse_args(argv)
    command = command_line("sovr_tutorial.lab.experiments", argv)
    tier = args.tier
    out_dir = Path(args.out or results_dir() / default_folder(tier))
    if args.plot:
        from .report import plot_results
        for path in plot_results(out_dir):
            print("wrote", path)
        return 0
    run_dir = Path(args.runs or runs_dir() / default_folder(tier))
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
    for seed, run in [(s, r) for s in args.seeds for r in args.methods]:
        res = run_one(run, seed, tier, data, info, out_dir, run_dir, device,
                      progress=not args.no_progress,
                      ship_dir=shipped_dir() if args.ship else None,
                      command=command)
        if res is None:
            continue
        aa = res["autoattack"]
        print(f"{run.name(seed):>16}: clean {res['clean_acc']:.3f}  PGD-{tier.eval_steps} "
              f"{res[f'pgd{tier.eval_steps}_ce_acc']:.3f}  AA[{aa['version']}] "
              f"{aa['robust']:.3f} (n={aa['n']})  {res['wall_seconds']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
