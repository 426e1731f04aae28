"""One adversarial-training loop, parameterised by the method's loss.

``method_loss`` says how each method turns a clean batch into a loss; ``train`` is the
loop around it: SGD, the usual step schedule, per-epoch history, progress bars, and a
checkpoint after every epoch from which the same call resumes bit-identically on CPU.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .attacks import eval_mode, pgd, trades_pgd
from .checkpoint import CheckpointError, load_checkpoint, load_shipped, save_checkpoint
from .checks import check_choice, check_labels, check_number, check_ratio
from .data import batches
from .losses import DEFAULT_SOVR_RATIO, ce_loss, gairat_loss, mart_loss, sovr_loss, trades_loss
from .margins import logit_margin
from .models import build_model
from .tiers import Tier, get_tier

METHODS = ("standard", "at", "trades", "mart", "gairat", "sovr")


@dataclasses.dataclass(frozen=True)
class MethodOptions:
    """The knobs of the methods (defaults from ../shared/spec/METHOD.md)."""
    sovr_ratio: float = DEFAULT_SOVR_RATIO
    sovr_threshold: float | None = None
    trades_beta: float = 6.0
    mart_beta: float = 5.0
    gairat_lambda: float = -1.0

    def __post_init__(self):
        check_ratio(self.sovr_ratio, "sovr_ratio")
        if self.sovr_threshold is not None:
            check_number("sovr_threshold", self.sovr_threshold)
        check_number("trades_beta", self.trades_beta, low=0.0)
        check_number("mart_beta", self.mart_beta, low=0.0)
        check_number("gairat_lambda", self.gairat_lambda)


def pick_device(device=None) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def set_seed(seed: int) -> None:
    check_number("seed", seed, low=0, integer=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (tensor cores); plain float32 on CPU, where it would be slower."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def method_loss(method: str, model, x, y, *, tier: Tier, epoch: int, opts: MethodOptions,
                attack_model=None):
    """The training loss of ``method`` on a clean batch x (N, C, H, W), y (N,).

    Returns (loss scalar, stats dict of floats). The model is in train mode on entry;
    attacks switch it to eval mode while they run and back afterwards. Under
    DistributedDataParallel, ``model`` is the DDP wrapper (its forward syncs gradients)
    and ``attack_model`` the plain module the attacks differentiate through.
    """
    atk = model if attack_model is None else attack_model
    stats = {}
    if method == "standard":
        logits = model(x)
        loss = ce_loss(logits.float(), y)
    elif method == "trades":
        x_adv = trades_pgd(atk, x, tier.eps, tier.alpha, tier.train_steps)
        logits = model(x_adv)
        loss = trades_loss(model(x).float(), logits.float(), y, beta=opts.trades_beta)
    else:
        x_adv, kappa = pgd(atk, x, y, tier.eps, tier.alpha, tier.train_steps, return_kappa=True)
        logits = model(x_adv)
        if method == "at" or (method == "gairat" and epoch < tier.gairat_burn_in):
            loss = ce_loss(logits.float(), y)
        elif method == "gairat":
            loss = gairat_loss(logits.float(), y, kappa, tier.train_steps, lam=opts.gairat_lambda)
        elif method == "mart":
            loss = mart_loss(model(x).float(), logits.float(), y, beta=opts.mart_beta)
        else:  # sovr
            loss, mask = sovr_loss(logits.float(), y, ratio=opts.sovr_ratio,
                                   threshold=opts.sovr_threshold, return_mask=True)
            stats["switched"] = mask.float().mean().item()
    stats["train_acc"] = (logits.argmax(1) == y).float().mean().item()
    return loss, stats


def train_step(method: str, model, opt, x, y, *, tier: Tier, epoch: int, opts: MethodOptions,
               attack_model=None) -> dict:
    """One SGD step of ``method`` on the batch x (N, C, H, W), y (N,); returns its stats."""
    device = x.device
    with autocast(device):
        loss, stats = method_loss(method, model, x, y, tier=tier, epoch=epoch, opts=opts,
                                  attack_model=attack_model)
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"{method}: the loss became {loss.item()} (epoch {epoch + 1}); "
                                 f"lower the learning rate (now {opt.param_groups[0]['lr']})")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    stats["loss"] = loss.item()
    return stats


@torch.no_grad()
def _clean_logits(model, x, batch_size=500):
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])


def epoch_metrics(model, x_val, y_val, tier: Tier, device) -> dict:
    """Clean and PGD accuracy and adversarial-margin statistics on a held-out slice."""
    x = x_val.to(device).float().div_(255) if x_val.dtype == torch.uint8 else x_val.to(device)
    y = y_val.to(device)
    clean = _clean_logits(model, x)
    x_adv = torch.cat([pgd(model, x[i:i + 500], y[i:i + 500], tier.eps, tier.alpha,
                           tier.train_steps) for i in range(0, len(x), 500)])
    adv = _clean_logits(model, x_adv)
    m = logit_margin(adv, y)
    q = torch.quantile(m, torch.tensor([0.1, 0.5, 0.9], device=m.device)).tolist()
    return {"clean_acc": (clean.argmax(1) == y).float().mean().item(),
            "pgd_acc": (adv.argmax(1) == y).float().mean().item(),
            "adv_margin_q10": q[0], "adv_margin_median": q[1], "adv_margin_q90": q[2]}


def _run_config(method, tier, seed, opts, n_train) -> dict:
    return {"method": method, "seed": seed, "n_train": n_train, "tier": dataclasses.asdict(tier),
            "options": dataclasses.asdict(opts)}


def distributed_context() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless torchrun started us and a process group is up."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(method: str, x_train, y_train, *, tier=None, x_val=None, y_val=None, seed: int = 0,
          checkpoint_path=None, resume: bool = True, device=None, progress: bool = True,
          epochs: int | None = None, compile: bool = False, on_epoch=None, **options):
    """Train a fresh model of ``tier`` with ``method``; returns (model, history).

    x_train: uint8 (N, 3, 32, 32), y_train: (N,). ``options`` are MethodOptions fields
    (``sovr_ratio``, ``sovr_threshold``, ``trades_beta``, ``mart_beta``, ``gairat_lambda``).
    With ``checkpoint_path`` a checkpoint is written after every epoch, and a call with the
    same arguments resumes from it (skipping the work already done).
    ``on_epoch(epoch, record)`` is called after each epoch's checkpoint is written.

    Under ``torchrun`` (a process group initialised, e.g. by the experiment runner) the
    model is wrapped in DistributedDataParallel and every rank trains on its slice of each
    global batch; rank 0 alone writes checkpoints, shows progress and returns history.
    """
    check_choice("method", method, METHODS)
    tier = tier if isinstance(tier, Tier) else get_tier(tier)
    if epochs is not None:
        tier = tier.replace(epochs=check_number("epochs", epochs, low=1, integer=True))
    opts = MethodOptions(**options)
    if not isinstance(x_train, torch.Tensor) or x_train.dtype != torch.uint8 or x_train.dim() != 4:
        raise TypeError("x_train must be a uint8 tensor (N, 3, H, W) as returned by load_cifar10")
    check_labels(y_train, x_train.shape[0], 10, name="y_train")
    device = pick_device(device)
    set_seed(seed)
    model = build_model(tier.model, width=tier.width).to(device)
    if device.type == "cuda":
        # weights and inputs both channels_last: cuDNN's tensor-core kernels, no transposes
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=tier.lr, momentum=tier.momentum,
                          weight_decay=tier.weight_decay)
    # the usual piecewise schedule: lr / 10 at half and at three quarters of training
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=sorted({max(1, tier.epochs // 2), max(1, (3 * tier.epochs) // 4)}), gamma=0.1)
    config = _run_config(method, tier, seed, opts, int(x_train.shape[0]))
    history, start = [], 0
    if checkpoint_path is not None and resume and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(checkpoint_path, model, opt, sched, restore_rng=True,
                               map_location=device)
        if ckpt["config"] != config:
            raise CheckpointError(
                f"{checkpoint_path} belongs to another run ({ckpt['config'].get('method')}, "
                f"seed {ckpt['config'].get('seed')}): resume needs the same method, tier, seed, "
                "options and data size; pass resume=False or another checkpoint_path")
        history, start = list(ckpt["history"]), int(ckpt["epoch"])
    rank, world = distributed_context()
    step_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        step_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_model = torch.compile(step_model) if compile else step_model
    progress = progress and rank == 0
    bar = tqdm(range(start, tier.epochs), desc=f"{method} ({tier.name})", disable=not progress,
               initial=start, total=tier.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        sums, n = {}, 0
        loader = batches(x_train, y_train, tier.batch_size, shuffle=True, augment=True,
                         seed=seed * 1000 + epoch, device=device)
        for x, y in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress):
            if world > 1:  # every rank draws the same global batch and keeps its slice
                x, y = x[rank::world], y[rank::world]
            x = x.contiguous(memory_format=torch.channels_last)
            stats = train_step(method, step_model, opt, x, y, tier=tier, epoch=epoch,
                               opts=opts, attack_model=model)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * len(y)
            n += len(y)
        record = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
                  **{k: v / n for k, v in sums.items()}}
        sched.step()
        if x_val is not None:
            record.update(epoch_metrics(model, x_val, y_val, tier, device))
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.set_postfix({k: round(record[k], 3) for k in ("loss", "pgd_acc") if k in record})
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(checkpoint_path, model, opt, sched, epoch=epoch + 1, config=config,
                            history=history)
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
    model.eval()
    return model, history


def run_name(method: str, seed: int = 0, ratio: float | None = None) -> str:
    """The name of a run (results file, checkpoint): ``at-s0``, ``sovr-r0.4-s0``."""
    return f"sovr-r{ratio:g}-s{seed}" if method == "sovr" else f"{method}-s{seed}"


def trained_model(method: str, x_train=None, y_train=None, *, retrain: bool, tier=None,
                  seed: int = 0, sovr_ratio: float = DEFAULT_SOVR_RATIO, x_val=None, y_val=None,
                  shipped_tier: str = "cpu", runs_dir=None, device=None, progress: bool = True):
    """The model of ``method`` a notebook works with; returns (model in eval mode, history).

    ``retrain=False``: the checkpoint the course ships for ``shipped_tier`` (sha256-checked).
    ``retrain=True``: trained here at ``tier`` with a checkpoint per epoch in ``runs_dir``
    (default ``runs/notebooks-<tier>/``), so re-running a notebook, or the next notebook with
    the same settings, resumes instead of training again; a checkpoint left by other
    settings is replaced.
    """
    check_choice("method", method, METHODS)
    name = run_name(method, seed, sovr_ratio if method == "sovr" else None)
    device = pick_device(device)
    if not retrain:
        model, ckpt = load_shipped(name, tier=shipped_tier)
        return model.to(device), ckpt["history"]
    tier = tier if isinstance(tier, Tier) else get_tier(tier)
    runs_dir = Path(runs_dir) if runs_dir is not None else (
        Path(__file__).resolve().parents[1] / "runs" / f"notebooks-{tier.name}")
    options = {"sovr_ratio": sovr_ratio} if method == "sovr" else {}
    kwargs = dict(tier=tier, x_val=x_val, y_val=y_val, seed=seed, device=device,
                  checkpoint_path=runs_dir / f"{name}.pt", progress=progress, **options)
    try:
        return train(method, x_train, y_train, **kwargs)
    except CheckpointError:  # left by a run with other settings: start afresh
        return train(method, x_train, y_train, resume=False, **kwargs)
