"""One adversarial-training loop, parameterised by the method's loss.

``method_loss`` says how each method turns a clean batch into a loss; ``train`` is the
loop around it: SGD, the usual step schedule, per-epoch history, progress bars, and a
checkpoint after every epoch from which the same call resumes bit-identically on CPU.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import paths
from .attacks import _pgd, _trades_pgd, seeded
from .batches import batches
from .checkpoint import (CheckpointError, load_checkpoint, load_shipped, rng_state, save_checkpoint,
                         set_rng_state)
from .checks import check_images, check_labels, check_number
from .devices import pick_device, resolve_precision, torch_threads
from .evaluate import adversarial_margins
from .losses import (_ce_per_sample, _gairat_per_sample, _mart_per_sample, _sovr_per_sample,
                     _trades_per_sample)
from .models import FoldedBN, build_model, eval_mode, fold_bn
from .runs import Run, as_run
from .tiers import Tier, as_tier


def set_seed(seed: int) -> None:
    check_number("seed", seed, low=0, integer=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str = "auto"):
    """Mixed precision for the training step; the weights stay float32 (fp32 master weights).

    ``precision``: "fp32", "bf16", or "auto": bf16 on CUDA and on a CPU with native bf16,
    fp32 on any other CPU (:func:`sovr_tutorial.devices.resolve_precision`).
    """
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def method_loss(run: Run, model, x, y, *, tier: Tier, epoch: int, attack_model=None):
    """The training loss of ``run`` on a clean batch x (N, ...), y (N,).

    Returns (loss scalar, stats dict of floats). Each method is one branch below; an
    unknown method raises. The model is in train mode on entry; attacks switch it to eval
    mode while they run and back afterwards. Under DistributedDataParallel, ``model`` is
    the DDP wrapper (its forward syncs gradients) and ``attack_model`` the plain module
    the attacks differentiate through. With ``tier.fold_bn`` the attacks run the model
    with its BatchNorms folded into the convs (:func:`attack_view`); the update pass keeps
    the real BatchNorms in train mode. Arguments are checked by the public entry points
    (:func:`train`, :func:`fit`, :func:`finetune`); this calls the unchecked kernels.
    """
    atk = attack_view(model if attack_model is None else attack_model, tier)
    eps, steps = tier.eps, tier.train_steps
    alpha = tier.alpha
    stats = {}
    if run.method == "standard":
        logits = model(x)
        per_sample = _ce_per_sample(logits.float(), y)
    elif run.method == "at":
        logits = model(_pgd(atk, x, y, eps, alpha, steps))
        per_sample = _ce_per_sample(logits.float(), y)
    elif run.method == "trades":
        logits = model(_trades_pgd(atk, x, eps, alpha, steps))
        per_sample = _trades_per_sample(model(x).float(), logits.float(), y, run.trades_beta)
    elif run.method == "mart":
        logits = model(_pgd(atk, x, y, eps, alpha, steps))
        per_sample = _mart_per_sample(model(x).float(), logits.float(), y, run.mart_beta)
    elif run.method == "gairat":
        x_adv, kappa = _pgd(atk, x, y, eps, alpha, steps, return_kappa=True)
        logits = model(x_adv)
        if epoch < tier.gairat_burn_in:   # burn-in: plain AT until the geometry means something
            per_sample = _ce_per_sample(logits.float(), y)
        else:
            per_sample = _gairat_per_sample(logits.float(), y, kappa, steps, run.gairat_lambda)
    elif run.method == "sovr":
        logits = model(_pgd(atk, x, y, eps, alpha, steps))
        per_sample, mask = _sovr_per_sample(logits.float(), y, run.rule, run.value)
        stats["switched"] = mask.float().mean()
    else:
        raise ValueError(f"method_loss: no rule for method {run.method!r}")
    stats["train_acc"] = (logits.argmax(1) == y).float().mean()
    return per_sample.mean(), stats


def attack_view(attack_model, tier: Tier):
    """The model the training attack runs: ``attack_model`` itself, or with ``tier.fold_bn``
    its BatchNorms folded into the convs at the current weights (a :class:`FoldedBN` made by
    :func:`step_models` is refolded in place, any other model folded afresh)."""
    if not tier.fold_bn:
        return attack_model
    if isinstance(getattr(attack_model, "_orig_mod", attack_model), FoldedBN):
        attack_model.refresh()    # a compiled FoldedBN passes refresh on to the module
        return attack_model
    return fold_bn(getattr(attack_model, "_orig_mod", attack_model))


def step_models(model, tier: Tier, *, compile: bool = False, ddp=None):
    """(the update pass's model, the attack passes' model) as :func:`fit` runs them.

    The update pass runs ``ddp`` (the DistributedDataParallel wrapper, under torchrun) or
    ``model``; the attacks run ``model``, or with ``tier.fold_bn`` its :func:`fold_bn` view.
    ``compile``: both through ``torch.compile`` (one compiled module where they are the
    same model; its train-mode and eval-mode graphs are compiled on first use).
    """
    step = model if ddp is None else ddp
    attack = fold_bn(model) if tier.fold_bn else model
    if not compile:
        return step, attack
    if attack is step:
        step = attack = torch.compile(model)
        return step, attack
    return torch.compile(step), torch.compile(attack)


def train_step(run: Run, model, opt, x, y, *, tier: Tier, epoch: int, attack_model=None) -> dict:
    """One SGD step of ``run`` on the batch x (N, ...), y (N,); returns its stats (floats).

    The stats stay on the device until the one host transfer at the end of the step.
    """
    with autocast(x.device, tier.precision):
        loss, stats = method_loss(run, model, x, y, tier=tier, epoch=epoch,
                                  attack_model=attack_model)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    stats["loss"] = loss.detach()
    keys = list(stats)
    values = torch.stack([stats[k].float() for k in keys]).tolist()   # one synchronisation
    stats = dict(zip(keys, values))
    if not math.isfinite(stats["loss"]):
        raise FloatingPointError(f"{run.label}: the loss became {stats['loss']} (epoch "
                                 f"{epoch + 1}); lower the learning rate (now "
                                 f"{opt.param_groups[0]['lr']})")
    return stats


@torch.no_grad()
def _clean_logits(model, x, batch_size=500):
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])


# Fixed bins for the margin histograms recorded every epoch (the "margin movie"): the same
# for every epoch, method and tier, so frames compare directly.
MOVIE_RANGE = (-10.0, 10.0)
MOVIE_BINS = 80


def _on_device(x, y, device):
    """x (uint8 images or float points) as floats in [0, 1] and y, on ``device``."""
    x = x.to(device).float().div_(255) if x.dtype == torch.uint8 else x.to(device)
    return x, y.to(device)


def _training_attack_margins(model, x, y, tier: Tier, device, seed) -> dict:
    """:func:`~sovr_tutorial.evaluate.adversarial_margins` at the tier's training attack
    (PGD-``train_steps`` at its eps and step size), without gradient norms."""
    return adversarial_margins(model, x, y, eps=tier.eps, steps=tier.train_steps,
                               step_size=tier.alpha, seed=seed, batch_size=500,
                               gradients=False, device=device)


def _share(correct) -> float:
    """The fraction of True in a bool array, as a float32 mean (as the histories store)."""
    return torch.from_numpy(correct).float().mean().item()


def _movie_frame(margins) -> list:
    clipped = margins.clamp(*MOVIE_RANGE)   # the edge bins hold everything beyond the range
    return torch.histc(clipped.float().cpu(), bins=MOVIE_BINS, min=MOVIE_RANGE[0],
                       max=MOVIE_RANGE[1]).long().tolist()


def epoch_metrics(model, x_val, y_val, tier: Tier, device, x_slice=None, y_slice=None,
                  seed: int = 0) -> dict:
    """Clean and PGD accuracy and adversarial-margin statistics on a held-out slice.

    The attack is :func:`sovr_tutorial.attacks.attack_dataset` under ``seed``, so every
    epoch sees the same random starts and training's own random stream is not touched.
    Also the histogram of the held-out adversarial margins (``hist_heldout_adv``) and, with
    ``x_slice``, of a fixed slice of training images (``hist_train_adv``), on the bins
    MOVIE_RANGE / MOVIE_BINS (values beyond the range counted in the edge bins).
    """
    x, y = _on_device(x_val, y_val, device)
    adv = _training_attack_margins(model, x, y, tier, device, seed)
    clean = _clean_logits(model, x)
    m = torch.from_numpy(adv["margin"])
    q = torch.quantile(m, torch.tensor([0.1, 0.5, 0.9])).tolist()
    out = {"clean_acc": (clean.argmax(1) == y).float().mean().item(),
           "pgd_acc": _share(adv["correct"]),
           "adv_margin_q10": q[0], "adv_margin_median": q[1], "adv_margin_q90": q[2],
           "hist_heldout_adv": _movie_frame(m)}
    if x_slice is not None:
        adv_tr = _training_attack_margins(model, *_on_device(x_slice, y_slice, device), tier,
                                          device, seed)
        out["hist_train_adv"] = _movie_frame(torch.from_numpy(adv_tr["margin"]))
        out["train_slice_pgd_acc"] = _share(adv_tr["correct"])
    return out


def _run_config(run: Run, tier, seed, n_train) -> dict:
    return {"method": run.method, "seed": seed, "n_train": n_train,
            "tier": dataclasses.asdict(tier), "options": run.options()}


def _settings(config: dict) -> dict:
    # a tier's name is a label: the search's run of tier small's fields (named "cpu" with
    # overrides) is the same training, so tier small may resume or adopt its checkpoint
    tier = {k: v for k, v in config.get("tier", {}).items() if k != "name"}
    tier.setdefault("eval_alpha", None)   # configs from before the field: eval took alpha
    tier.setdefault("fold_bn", False)      # configs from before the field: nothing folded
    return {**config, "tier": tier}


def distributed_context() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless torchrun started us and a process group is up."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_training_set(x_train, y_train, num_classes, *, float_images=False):
    """uint8 images (N, C, H, W) or float points (N, D) in [0, 1]; float images in [0, 1]
    too when ``float_images`` (fine-tuning takes them; the loop's batches do not)."""
    if not isinstance(x_train, torch.Tensor) or x_train.dim() not in (2, 4) or \
            x_train.shape[0] == 0 or (x_train.dim() == 4 and x_train.dtype != torch.uint8
                                      and not float_images):
        raise TypeError("x_train must be uint8 images (N, 3, H, W) as returned by "
                        "load_cifar10, or float points (N, D) in [0, 1]")
    if x_train.dtype != torch.uint8:
        check_images(x_train, name="x_train")
    check_labels(y_train, x_train.shape[0], num_classes, name="y_train")


def _tier(tier, epochs=None) -> Tier:
    tier = as_tier(tier)
    if epochs is not None:
        tier = tier.replace(epochs=check_number("epochs", epochs, low=1, integer=True))
    return tier


def train(run, x_train, y_train, *, tier=None, seed: int = 0, epochs: int | None = None,
          device=None, **fit_options):
    """Train a fresh model of ``tier`` (its ``model`` and ``width``) with ``run``.

    run: a :class:`Run` or a name (``"at"``, ``"sovr-r0.4"``, ``"sovr-t1"``).
    x_train: uint8 (N, 3, 32, 32) or float (N, D) points; y_train: (N,).
    ``epochs`` overrides the tier's; every other keyword goes to :func:`fit`.
    Returns (model in eval mode, history). The caller's global random state (torch,
    NumPy, Python) is as it was before the call.
    """
    run, tier = as_run(run), _tier(tier, epochs)
    device = pick_device(device)
    caller = rng_state()   # the run seeds the global RNGs; the caller gets its own back
    try:
        set_seed(seed)
        model = build_model(tier.model, width=tier.width, num_classes=tier.num_classes,
                            depth=tier.depth)
        return fit(model.to(device), run, x_train, y_train, tier=tier, seed=seed,
                   device=device, **fit_options)
    finally:
        set_rng_state(caller)


def fit(model, run, x_train, y_train, *, tier=None, **options):
    """The course's one training loop: ``tier.epochs`` epochs of :func:`train_step`, on the
    tier's CPU threads (``tier.threads``; the toy world's tiny MLP runs fastest on one).

    SGD with the tier's lr, momentum and weight decay; lr / 10 at half and three quarters
    of training; augmentation (random crop + flip) for images, none for points. After each
    epoch the record (mean step stats, and with ``x_val`` clean/PGD accuracy and margin
    quantiles on it) joins the history. With ``checkpoint_path`` a checkpoint is written
    after every epoch and a call with the same arguments resumes from it bit-identically
    on CPU. ``on_epoch(epoch, record, model)`` is called after each epoch's checkpoint.

    Under ``torchrun`` the model is wrapped in DistributedDataParallel and every rank
    trains on its slice of each global batch; rank 0 alone writes checkpoints, shows
    progress and returns history. Returns (model in eval mode, history).

    ``compile=True`` runs the update pass and the training attack's passes through
    ``torch.compile`` (:func:`step_models`; compilation takes a minute or more on a CPU, at
    the first step and again at an epoch's smaller last batch); the per-epoch evaluation
    (``x_val``) runs eager. Its results agree with eager ones to float rounding, not bit
    for bit.
    """
    tier = _tier(tier)
    with torch_threads(tier.threads):
        return _fit(model, run, x_train, y_train, tier=tier, **options)


def _fit(model, run, x_train, y_train, *, tier=None, seed: int = 0, x_val=None, y_val=None,
        checkpoint_path=None, resume: bool = True, device=None, progress: bool = True,
        compile: bool = False, on_epoch=None):
    # arguments and behaviour: see the docstring of fit
    run, tier = as_run(run), _tier(tier)
    _check_training_set(x_train, y_train, tier.num_classes)
    device = pick_device(device)
    model = model.to(device)
    images = x_train.dim() == 4
    if images and device.type == "cuda":
        # weights and inputs both channels_last: cuDNN's tensor-core kernels, no transposes
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=tier.lr, momentum=tier.momentum,
                          weight_decay=tier.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=sorted({max(1, tier.epochs // 2), max(1, (3 * tier.epochs) // 4)}),
        gamma=0.1)
    config = _run_config(run, tier, seed, int(x_train.shape[0]))
    history, start = [], 0
    if checkpoint_path is not None and resume and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(checkpoint_path, model, opt, sched, restore_rng=True,
                               map_location=device)
        if _settings(ckpt["config"]) != _settings(config):
            raise CheckpointError(
                f"{checkpoint_path} belongs to another run ({ckpt['config'].get('method')}, "
                f"seed {ckpt['config'].get('seed')}): resume needs the same method, tier "
                "settings, seed, options and data size; pass resume=False or another "
                "checkpoint_path")
        history, start = list(ckpt["history"]), int(ckpt["epoch"])
    rank, world = distributed_context()
    ddp = None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_model, attack_model = step_models(model, tier, compile=compile, ddp=ddp)
    progress = progress and rank == 0
    bar = tqdm(range(start, tier.epochs), desc=f"{run.label} ({tier.name})",
               disable=not progress, initial=start, total=tier.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        sums, n = {}, 0
        loader = batches(x_train, y_train, tier.batch_size, shuffle=True, augment=images,
                         seed=seed * 1000 + epoch, device=device)
        for x, y in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress):
            if world > 1:  # every rank draws the same global batch and keeps its slice
                x, y = x[rank::world], y[rank::world]
            if images:
                x = x.contiguous(memory_format=torch.channels_last)
            stats = train_step(run, step_model, opt, x, y, tier=tier, epoch=epoch,
                               attack_model=attack_model)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * len(y)
            n += len(y)
        record = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
                  **{k: v / n for k, v in sums.items()}}
        sched.step()
        if x_val is not None:   # the training slice: as many training images as held-out ones
            record.update(epoch_metrics(model, x_val, y_val, tier, device,
                                        x_train[:len(y_val)], y_train[:len(y_val)], seed=seed))
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.set_postfix({k: round(record[k], 3) for k in ("loss", "pgd_acc") if k in record})
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(checkpoint_path, model, opt, sched, epoch=epoch + 1, config=config,
                            history=history)
        if on_epoch is not None:
            on_epoch(epoch + 1, record, model)
    model.eval()
    return model, history


def finetune(model, run, x_train, y_train, *, tier, **options):
    """``steps`` SGD steps of :func:`train_step` on a copy of ``model``: (copy, stats per step).

    Mini-batches of ``batch_size`` cycle through x_train (reshuffled on each pass) under
    ``seed``; the caller's random state is untouched and ``model`` is never changed.
    x_train: float inputs in [0, 1] (N, ...) on any device; the copy stays on ``model``'s.
    """
    tier = _tier(tier)
    with torch_threads(tier.threads):
        return _finetune(model, run, x_train, y_train, tier=tier, **options)


def _finetune(model, run, x_train, y_train, *, tier, steps: int, batch_size: int = 64,
             lr: float | None = None, seed: int = 0):
    # arguments and behaviour: see the docstring of finetune
    run, tier = as_run(run), _tier(tier)
    _check_training_set(x_train, y_train, tier.num_classes, float_images=True)
    steps = check_number("steps", steps, low=1, integer=True)
    batch_size = min(check_number("batch_size", batch_size, low=1, integer=True),
                     x_train.shape[0])
    lr = float(check_number("lr", tier.lr if lr is None else lr, low=0.0, low_open=True))
    model = copy.deepcopy(model)
    device = next(model.parameters()).device
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=tier.momentum,
                          weight_decay=tier.weight_decay)
    x_train = x_train.float().div(255) if x_train.dtype == torch.uint8 else x_train
    y_train, log = y_train.long(), []
    with seeded(seed, device):
        g = torch.Generator().manual_seed(seed)
        order, pos = torch.randperm(x_train.shape[0], generator=g), 0
        model.train()
        for _ in range(steps):
            if pos + batch_size > order.numel():
                order, pos = torch.randperm(x_train.shape[0], generator=g), 0
            idx = order[pos:pos + batch_size]
            pos += batch_size
            log.append(train_step(run, model, opt, x_train[idx].to(device),
                                  y_train[idx].to(device), tier=tier, epoch=tier.epochs))
    return model.eval(), log


def trained_model(run, x_train=None, y_train=None, *, retrain: bool, tier=None,
                  seed: int = 0, x_val=None, y_val=None, shipped_tier: str = "cpu",
                  runs_dir=None, device=None, progress: bool = True):
    """The model of ``run`` a notebook works with; returns (model in eval mode, history).

    run: a :class:`Run` or a name (``"at"``, ``"sovr-r0.4"``, ``"sovr-t1"``).
    ``retrain=False``: the checkpoint the course ships for ``shipped_tier`` (sha256-checked).
    ``retrain=True``: trained here at ``tier`` with a checkpoint per epoch in ``runs_dir``
    (default ``notebooks-<tier>/`` of :func:`sovr_tutorial.paths.runs_dir`), so re-running a
    notebook, or the next notebook with the same settings, resumes instead of training
    again; a checkpoint left by other settings is replaced.
    """
    run = as_run(run)
    name = run.name(seed)
    device = pick_device(device)
    if not retrain:
        model, ckpt = load_shipped(name, tier=shipped_tier)
        return model.to(device), ckpt["history"]
    tier = _tier(tier)
    runs_dir = Path(runs_dir) if runs_dir is not None else (
        paths.runs_dir() / f"notebooks-{tier.name}")
    kwargs = dict(tier=tier, x_val=x_val, y_val=y_val, seed=seed, device=device,
                  checkpoint_path=runs_dir / f"{name}.pt", progress=progress)
    try:
        return train(run, x_train, y_train, **kwargs)
    except CheckpointError:  # left by a run with other settings: start afresh
        return train(run, x_train, y_train, resume=False, **kwargs)
