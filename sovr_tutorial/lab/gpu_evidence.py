"""The paper's scale in one shot: a GPU run sized by a wall-clock deadline (issue 23).

    python -m sovr_tutorial.lab.gpu_evidence --plan              # the H200 plan, from FLOPs
    python -m sovr_tutorial.lab.gpu_evidence --out DIR           # the run (make gpu-evidence)
    python -m sovr_tutorial.lab.gpu_evidence --preset cpu-dry-run --out DIR   # the CPU test

A lent GPU is one H200 for 15 minutes in all, one command of at most 10. So the run measures
its own costs in its first seconds (a few training steps of every method, one epoch's margin
frames, fp32 attack passes at AutoAttack's batch sizes) and then sizes itself to end inside
``--budget`` seconds (default 480, counted from the start of this program): which methods
(AT; then GAIRAT and SOVR; then MART), how many training images, how many epochs, which
AutoAttack. The same sizing, fed with costs predicted from FLOP counts instead of measured,
is the printed ``--plan``. Methods run one after the other, each trained by the package's
own loop (``train.train``: data on the device, bf16 autocast, channels_last, no DataLoader)
and evaluated by the runner's ``evaluate_run``; each writes its result file as soon as it
is done, and the margin movie's frames are rewritten after every epoch, so a run cut off at
its limit still returns what it had. A method whose training would overrun the deadline
stops early (``cut_short``, labelled) and is evaluated as it is; one that cannot start in
time is skipped (listed in the summary).

Decisions, and why (the numbers are the plan's, ``--plan`` prints them):

- Network: PreAct ResNet-18 (the paper's). At the assumed rate one PGD-10 AT step of it at
  batch 128 takes about 21 ms on an H200, so all four methods get 15,000 images for 30
  epochs inside the budget: it fits. models.py has no narrower ResNet to fall back on (that
  would need a width argument on ``PreActResNet18``); if the GPU is slower than assumed,
  the sizing gives up images, then MART, then GAIRAT and SOVR, before it gives up epochs
  (at least 30): the easy-sample peak, if it forms, forms after the learning-rate decay.
- lr decay: ``fit``'s rule, x0.1 at half and three quarters of the epochs, so half of the
  run lies after the first decay. GAIRAT's burn-in: 45% of the epochs, as in the gpu tier.
- ``torch.compile``: off. ``fit`` compiles only the training forward; the PGD attacks run on
  the plain module, and they are 20 of the 23 forward-equivalents of a step. Even a 1.5x
  faster compiled forward+backward would save ~4% of ~300 s of training, about 12 s, less
  than compiling a ResNet-18 takes (tens of seconds, per method: each builds a new model).
- Concurrent runs: no. At batch 128 the predicted GPU time of a step (~21 ms) is above the
  host's launch time for its ~2,500 kernels (~15 ms at OP_SECONDS each), so the GPU is
  mostly busy and a second process (without MPS: time-sliced) or a second stream (launched
  from the same Python thread, under the GIL) would add little, and neither was ever tried
  on that machine: a one-shot run should not depend on it. One method after the other also
  brings AT's result back first if the run is cut off. ``plan.json`` keeps the measured
  step times beside the FLOP prediction and the launch floor: a step near the floor is
  launch-bound, where concurrent processes would pay; decide again from that.
- AutoAttack: standard (APGD-CE, APGD-T, FAB-T, Square) on as many test images as its
  predicted time fits into ``AA_SHARE`` of the budget, else the custom pair (APGD-CE +
  APGD-T), labelled so in every result (in chunks of 250, ``evaluate_run``'s).
- ``cudnn.benchmark`` on: every shape repeats thousands of times.

What it writes into ``--out`` (at most 8 files, none in subfolders): ``plan.json`` (the
measured costs, the sizing, the environment, the budget), ``frames.json`` (the margin movie,
``sovr-margin-movie/1``), ``<run>.json`` per method (the experiment runner's result schema,
plus a ``gpu_evidence`` block), ``summary.json`` (peak counts on the way and at the end,
accuracies, the AutoAttack gap, predicted against measured seconds), ``log.txt``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from ..models import build_model, eval_mode
from ..autoattack import STANDARD_ATTACKS
from ..devices import pick_device, resolve_precision, torch_threads
from ..figures.frames import frames_from_history, make_frames, peak_counts, pick_epochs, save_frames
from ..files import atomic_write_text
from ..runs import as_run
from ..sampling import balanced_subset, split_train_heldout
from ..tiers import get_tier
from ..train import epoch_metrics, set_seed, train, train_step
from .experiments import command_line, environment, evaluate_run
from .gpu_pack import load_pack, pack_dir, travel_bytes

#: the H200's bf16 dense matmul rate measured on this workplace's machines (KINDS.md:
#: 788 TFLOP/s on random 8192^3 products); the datasheet says about 990
H200_BF16_TFLOPS = 790.0
#: [assumption] the fraction of that rate PreAct ResNet-18's convolutions on 32x32 images
#: reach at batch 128-1000 in eager PyTorch: layer 1's GEMM (M = 131k, N = 64, K = 576) has
#: N too small for full tensor-core tiles, the last stage (4x4 maps) too few tiles for 132
#: SMs, and the BN/ReLU/add kernels between them are memory-bound and uncounted
CONV_FRACTION = 0.20
#: [assumption] host time per eager kernel launch (PyTorch dispatch + CUDA launch): the
#: floor of a step made of many small kernels
OP_SECONDS = 6e-6

#: the methods in the order they are given time: AT; then GAIRAT and SOVR; then MART
METHOD_SETS = (("at", "gairat", "sovr-r0.4", "mart"), ("at", "gairat", "sovr-r0.4"), ("at",))
#: candidate training-set sizes (largest first; the pack holds 20,000 images)
LADDER = (20000, 15000, 10000, 7500, 5000, 2500, 1000)
#: the fraction of the time left after setup that AutoAttack may take, all methods together
AA_SHARE = 0.2
#: AutoAttack options, best first: (version, test images)
AA_OPTIONS = (("standard", 1000), ("standard", 500), ("standard", 250), ("custom", 1000),
              ("custom", 500), ("custom", 250), ("custom", 100))
#: [assumption] per stage: (iterations per chunk, fraction of the chunk still robust when
#: it starts, the pass each iteration makes: fp32 forward+input-backward "fb" or forward
#: "f", overhead factor: FAB-T and Square do many small operations beside the model's pass)
AA_STAGES = {"apgd-ce": (100, 0.8, "fb", 1.2), "apgd-t": (900, 0.5, "fb", 1.2),
             "fab-t": (900, 0.5, "fb", 1.5), "square": (5000, 0.5, "f", 1.5)}
CUSTOM_STAGES = ("apgd-ce", "apgd-t")
#: the chunk autoattack_eval attacks at once (its default, which evaluate_run keeps)
AA_BATCH = 250


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything about a run that is not measured: the tier it starts from and the sizing."""
    name: str
    tier: dict                 # Tier fields over the gpu tier's
    budget: float              # seconds, from this program's start to its last write
    reserve: float             # seconds kept free at the end (writing, process exit)
    n_heldout: int             # held-out images of the margin movie (and as many training)
    n_test: int                # test images of the PGD evaluation and margins
    ladder: tuple = LADDER
    # (methods, fewest training images) in the order tried: the methods of claims 3 and 4
    # (AT, GAIRAT, SOVR) on fewer images before AT alone on more, MART first to go
    choices: tuple = ((4, 10000), (3, 10000), (3, 5000), (1, 10000), (1, 2500))
    e_min: int = 30
    e_max: int = 100
    aa_options: tuple = AA_OPTIONS
    fb_batches: tuple = (125, 500)    # batch sizes the fp32 passes are timed at
    calib_steps: tuple = (3, 5)       # warm-up and timed training steps per method
    threads: int = 0                  # CPU threads (0: torch's default)


PRESETS = {
    # The paper's network and attack settings; the size is left to the deadline.
    "h200": Preset("h200", tier=dict(model="preact_resnet18", batch_size=128, lr=0.1),
                   budget=480.0, reserve=20.0, n_heldout=500, n_test=2000),
    # The same code path on 2 CPU cores in well under a minute: a tiny CNN, a few hundred
    # images, short attacks. Its numbers say nothing about the methods.
    "cpu-dry-run": Preset("cpu-dry-run", tier=dict(model="small_cnn", width=4, batch_size=50,
                                                   lr=0.05, train_steps=2, eval_steps=3),
                          budget=20.0, reserve=2.0, n_heldout=40, n_test=80,
                          ladder=(300, 200, 100), choices=((4, 200), (3, 200), (1, 100)),
                          e_min=2, e_max=10,
                          aa_options=(("standard", 40), ("custom", 40), ("custom", 20)),
                          fb_batches=(20, 40), calib_steps=(2, 3), threads=1),
}


class _Clock:
    """Seconds since the program started, and the log that goes to stdout and log.txt."""

    def __init__(self, started: float, log_path: Path | None):
        self.started, self.log_path = started, log_path

    def __call__(self) -> float:
        return time.time() - self.started

    def log(self, msg: str) -> None:
        line = f"[{self():6.1f} s] {msg}"
        print(line, flush=True)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(line + "\n")


# --------------------------------------------------------------------------- costs

def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, warm: int, reps: int, pick=lambda t: t[len(t) // 2]) -> float:
    """Seconds of one call: ``pick`` (default the median) of ``reps`` timed calls after
    ``warm`` untimed ones; not the mean, since a shared machine's other work lands on
    single calls (train_step synchronises anyway)."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return pick(sorted(times))


def _fresh_model(tier, device):
    model = build_model(tier.model, width=tier.width, num_classes=tier.num_classes,
                        depth=tier.depth).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def _input_grad(model, x):
    """One fp32 forward and backward to the input, weights frozen: an attack's pass."""
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(model(x).float().sum(), x)[0]


def measure_costs(tier, methods, x, y, x_ho, y_ho, device, preset: Preset) -> dict:
    """The run's costs, measured: seconds per training step of every method at the tier's
    batch, of one epoch's margin frames, and of fp32 forward (``f``) and forward+input-
    backward (``fb``) passes at preset.fb_batches (AutoAttack's and the evaluation's)."""
    warm, reps = preset.calib_steps
    xb = x[:tier.batch_size].to(device).float().div(255)
    yb = y[:tier.batch_size].to(device)
    if device.type == "cuda":
        xb = xb.contiguous(memory_format=torch.channels_last)
    step = {}
    for slug in methods:
        model = _fresh_model(tier, device).train()
        opt = torch.optim.SGD(model.parameters(), lr=tier.lr, momentum=tier.momentum)
        # an epoch past GAIRAT's burn-in: its re-weighted branch, the one most epochs run
        step[slug] = _timed(lambda: train_step(as_run(slug), model, opt, xb, yb, tier=tier,
                                               epoch=10 ** 6), device, warm, reps)
    t0 = time.perf_counter()
    epoch_metrics(model, x_ho, y_ho, tier, device, x[:len(y_ho)], y[:len(y_ho)])
    _sync(device)
    metrics = time.perf_counter() - t0
    fb, f = {}, {}
    with eval_mode(model):
        for p in model.parameters():
            p.requires_grad_(False)
        for b in preset.fb_batches:
            xf = x[:b].to(device).float().div(255)
            # the fastest of five: these few-millisecond passes are the base of a line
            # fit, where one slow outlier would tilt every AutoAttack prediction
            fb[b] = _timed(lambda: _input_grad(model, xf), device, 2, 5, pick=min)
            with torch.no_grad():
                f[b] = _timed(lambda: model(xf), device, 2, 5, pick=min)
    return {"step": step, "metrics": metrics, "fb": fb, "f": f,
            "batch_size": tier.batch_size}


def _per_batch(table: dict, b: float) -> float:
    """Seconds of a pass at batch ``b`` from a {batch: seconds} table: the line through the
    two measured points (a latency floor plus a per-image cost), never below zero."""
    (b1, t1), (b2, t2) = sorted((int(k), v) for k, v in table.items())[:2]
    slope = max(0.0, (t2 - t1) / (b2 - b1))
    return max(t1 - slope * b1, 0.0) + slope * b


def aa_seconds(costs: dict, version: str, n: int) -> float:
    """Predicted seconds of one AutoAttack evaluation of ``n`` images, chunk by chunk of
    AA_BATCH, each stage on the images still robust (AA_STAGES' guesses)."""
    stages = STANDARD_ATTACKS if version == "standard" else CUSTOM_STAGES
    total = 0.0
    for start in range(0, n, AA_BATCH):
        chunk = min(AA_BATCH, n - start)
        for stage in stages:
            iters, robust, kind, overhead = AA_STAGES[stage]
            total += iters * overhead * _per_batch(costs[kind], max(1.0, chunk * robust))
    return total


def eval_seconds(costs: dict, n_test: int, n_train_eval: int, tier) -> float:
    """Predicted seconds of evaluate_run without AutoAttack: PGD-eval_steps (CE and margin)
    on the test images, PGD on as many training images, four margin passes, in batches of
    500 (attack_dataset's), 10% for the clean predictions between them."""
    passes = n_test * (2 * tier.eval_steps + 2) + n_train_eval * (tier.eval_steps + 2)
    return 1.1 * passes * _per_batch(costs["fb"], 500) / 500


def epoch_seconds(costs: dict, slug: str, n: int) -> float:
    return math.ceil(n / costs["batch_size"]) * costs["step"][slug] + costs["metrics"]


# --------------------------------------------------------------------------- sizing

def size_run(costs: dict, preset: Preset, elapsed: float, pack_train: int) -> dict:
    """The plan: methods, training images, epochs and AutoAttack that fit the deadline.

    Tried in the order of preset.choices, (number of methods, fewest images): the first
    METHOD_SETS entry of that many methods on the largest image count of the ladder, not
    below the fewest, whose epochs reach preset.e_min. AutoAttack takes the best option
    whose predicted time for all methods fits AA_SHARE of the time left. Nothing fits: AT
    alone on the smallest count, with the epochs there are (``fits`` False, said in the
    log and the results).
    """
    avail = preset.budget - elapsed - preset.reserve
    usable = [n for n in preset.ladder if n <= pack_train - preset.n_heldout]
    tier = get_tier("gpu").replace(**preset.tier)

    def plan_for(methods, n, aa):
        version, n_aa, aa_s = aa
        ev = eval_seconds(costs, preset.n_test, min(n, preset.n_test), tier)
        train_time = avail - len(methods) * (ev + aa_s)
        per_epoch = sum(epoch_seconds(costs, m, n) for m in methods)
        epochs = min(preset.e_max, int(train_time // per_epoch)) if train_time > 0 else 0
        return {"methods": list(methods), "n_train": n, "epochs": epochs,
                "autoattack": {"version": version, "n": n_aa, "seconds": aa_s},
                "eval_seconds": ev,
                "train_seconds": {m: epochs * epoch_seconds(costs, m, n) for m in methods},
                "available_seconds": avail}

    def best_aa(k):
        for version, n in preset.aa_options:
            n = min(n, preset.n_test)
            s = aa_seconds(costs, version, n)
            if k * s <= AA_SHARE * avail:
                return version, n, s
        version, n = preset.aa_options[-1]
        return version, min(n, preset.n_test), aa_seconds(costs, version, min(n, preset.n_test))

    for k, floor in preset.choices:
        methods = next(m for m in METHOD_SETS if len(m) == k)
        aa = best_aa(k)
        for n in (n for n in usable if n >= floor):
            plan = plan_for(methods, n, aa)
            if plan["epochs"] >= preset.e_min:
                return {**plan, "fits": True}
    plan = plan_for(METHOD_SETS[-1], usable[-1], best_aa(1))
    return {**plan, "epochs": max(1, plan["epochs"]), "fits": False}


def plan_tier(preset: Preset, plan: dict):
    """The tier the run trains and evaluates with (name ``gpu-evidence``)."""
    epochs = plan["epochs"]
    return get_tier("gpu").replace(
        name="gpu-evidence", **preset.tier, n_train=plan["n_train"], n_test=preset.n_test,
        n_heldout=preset.n_heldout, n_autoattack=plan["autoattack"]["n"],
        autoattack_version=plan["autoattack"]["version"], epochs=epochs,
        gairat_burn_in=round(0.45 * epochs))


# --------------------------------------------------------------------------- FLOP plan

def counted_costs(preset: Preset, tflops_bf16: float = H200_BF16_TFLOPS,
                  fraction: float = CONV_FRACTION) -> dict:
    """The costs ``measure_costs`` would find on a GPU of ``tflops_bf16``, predicted: FLOPs
    and kernel counts counted here on the CPU on 2 real-sized images (both linear in the
    batch), over ``fraction`` of the rate, never below the kernels' launch time."""
    from benchmarks.gpu import CountFlops   # the repository's FLOP counter (make bench-gpu)

    class Count(CountFlops):   # ... also counting the kernels, for the launch floor
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            return super().__torch_dispatch__(func, types, args, kwargs)

    tier = get_tier("gpu").replace(**preset.tier, precision="fp32")
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    y = torch.tensor([0, 1])
    counts, batch = {}, tier.batch_size
    for slug in METHOD_SETS[0]:
        model = _fresh_model(tier, device).train()
        opt = torch.optim.SGD(model.parameters(), lr=tier.lr)
        with Count() as c:
            train_step(as_run(slug), model, opt, x, y, tier=tier, epoch=10 ** 6)
        counts[slug] = (c.total / 2, c.ops)
    model = _fresh_model(tier, device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with Count() as cf, torch.no_grad():
        model(x)
    with Count() as cfb:
        _input_grad(model, x)
    # fp32 passes (evaluation, AutoAttack) run as TF32 through cuDNN's default allow_tf32,
    # at half the bf16 rate
    bf16, tf32 = tflops_bf16 * 1e12 * fraction, tflops_bf16 / 2 * 1e12 * fraction

    def t(flops_per_image, ops, b, rate):
        return max(flops_per_image * b / rate, ops * OP_SECONDS)

    step = {m: t(fl, ops, batch, bf16) for m, (fl, ops) in counts.items()}
    n_ho = preset.n_heldout
    # the frames of one epoch: PGD-train_steps on the held-out and the training slice
    metrics = 2 * n_ho * (tier.train_steps + 1) * cfb.total / 2 / tf32
    return {"step": step, "metrics": metrics, "batch_size": batch,
            "fb": {b: t(cfb.total / 2, cfb.ops, b, tf32) for b in preset.fb_batches},
            "f": {b: t(cf.total / 2, cf.ops, b, tf32) for b in preset.fb_batches},
            "flops_per_image": {"step": {m: fl for m, (fl, _) in counts.items()},
                                "forward": cf.total / 2, "forward_input_backward": cfb.total / 2},
            "kernels_per_step": {m: ops for m, (_, ops) in counts.items()},
            "assumed": {"tflops_bf16": tflops_bf16, "tflops_tf32": tflops_bf16 / 2,
                        "fraction": fraction, "op_seconds": OP_SECONDS}}


def print_plan(preset: Preset, setup_seconds: float = 30.0) -> dict:
    """The printed H200 plan: costs from FLOPs, the sizing they give, what travels."""
    costs = counted_costs(preset)
    plan = size_run(costs, preset, setup_seconds, pack_train=20000)
    fl = costs["flops_per_image"]
    a = costs["assumed"]
    print(f"Plan for one H200 ({a['tflops_bf16']:.0f} TFLOP/s bf16 measured, assumed "
          f"{a['fraction']:.0%} of it for 32x32 convs = {a['tflops_bf16'] * a['fraction']:.0f} "
          f"TFLOP/s; fp32 passes at {a['tflops_tf32'] * a['fraction']:.0f} TFLOP/s (TF32)), "
          f"budget {preset.budget:.0f} s, {setup_seconds:.0f} s assumed for start-up and "
          "measuring")
    print(f"  {preset.tier['model']}: forward {fl['forward'] / 1e9:.2f} GFLOP/image, "
          f"forward+input-backward {fl['forward_input_backward'] / 1e9:.2f} GFLOP/image")
    for m, s in costs["step"].items():
        print(f"  {m:>10} step, batch {costs['batch_size']}: {fl['step'][m] / 1e9:.1f} "
              f"GFLOP/image, {costs['kernels_per_step'][m]} kernels -> {1e3 * s:.1f} ms "
              f"({costs['batch_size'] / s:,.0f} img/s)")
    print(f"  margin frames per epoch ({preset.n_heldout} held-out + as many training "
          f"images): {costs['metrics']:.2f} s")
    print(f"  sizing ({'fits' if plan['fits'] else 'does NOT fit'}): methods "
          f"{', '.join(plan['methods'])}; {plan['n_train']:,} training images, "
          f"{plan['epochs']} epochs (lr x0.1 after {plan['epochs'] // 2} and "
          f"{3 * plan['epochs'] // 4}); AutoAttack {plan['autoattack']['version']} on "
          f"{plan['autoattack']['n']} test images")
    total = setup_seconds
    for m in plan["methods"]:
        part = plan["train_seconds"][m] + plan["eval_seconds"] + plan["autoattack"]["seconds"]
        total += part
        print(f"  {m:>10}: train {plan['train_seconds'][m]:5.0f} s + PGD/margins "
              f"{plan['eval_seconds']:4.0f} s + AutoAttack {plan['autoattack']['seconds']:4.0f} s"
              f" = {part:4.0f} s")
    print(f"  expected wall: {total:.0f} s of the {preset.budget:.0f} s budget")
    try:
        sizes = travel_bytes()
        print(f"  travels: tracked {sizes['tracked'] / 2**20:.1f} MiB + untracked "
              f"{sizes['untracked'] / 2**20:.2f} MiB + gpu_pack "
              f"{sum(sizes['carried'].values()) / 2**20:.1f} MiB = "
              f"{sizes['total'] / 2**20:.1f} MiB of 64 MiB")
    except (OSError, RuntimeError, ValueError) as err:   # no git here: say so, plan anyway
        print(f"  travels: not measured ({err})")
    print(f"  comes back: plan.json, frames.json, summary.json, log.txt and "
          f"{len(plan['methods'])} result files (8 files at most; a few MB)")
    return {"costs": costs, "plan": plan}


# --------------------------------------------------------------------------- the run

class _Stop(Exception):
    """Raised from fit's on_epoch when the next epoch would overrun the method's deadline."""


def pack_data(loaded, n_train: int, n_heldout: int, n_test: int, data_seed: int = 0):
    """The run's data from a loaded pack (:func:`load_pack`'s triple), cut as
    sampling.load_data cuts a tier's: balanced, disjoint, class-interleaved training and
    held-out images; a class-interleaved test subset."""
    (x, y), (xt, yt), info = loaded
    tr, ho = split_train_heldout(x, y, n_train, n_heldout, seed=data_seed)
    te = balanced_subset(xt, yt, n_test, seed=data_seed)
    te, _ = split_train_heldout(te[0], te[1], n_test, 0, seed=data_seed)
    info = {**info, "n_train": n_train, "n_heldout": n_heldout, "n_test": n_test,
            "data_seed": data_seed,
            "subset": f"{n_train:,} training and {n_heldout} held-out images of the pack's "
                      f"{len(y):,} (balanced, from the JPEG copy's training zip), {n_test:,} "
                      f"test images of its {len(yt):,}"}
    return (tr, ho, te), info


def _summary_entry(result: dict, frames_entry: dict, predicted: dict) -> dict:
    counts = peak_counts(frames_entry, "train")
    held = peak_counts(frames_entry, "heldout")
    epochs = frames_entry["epochs"]
    chosen = pick_epochs(epochs, n=6)
    m = result["margins"]
    aa = result["autoattack"]
    steps = result["tier"]["eval_steps"]
    return {"run": result["run"], "label": result["label"],
            "epochs_trained": len(result["history"]),
            "cut_short": result["gpu_evidence"]["cut_short"],
            "train_slice_peaks_on_the_way": {e: counts[epochs.index(e)] for e in chosen},
            "heldout_peaks_on_the_way": {e: held[epochs.index(e)] for e in chosen},
            "peaks_at_end": {k: m[k]["peaks"] for k in m},
            "clean_acc": result["clean_acc"], f"pgd{steps}_ce_acc": result[f"pgd{steps}_ce_acc"],
            "pgd_acc_on_aa_subset": result["pgd_acc_on_aa_subset"],
            "autoattack": {"label": aa["label"], "n": aa["n"], "robust": aa["robust"],
                           "gap": result["pgd_acc_on_aa_subset"] - aa["robust"]},
            "robust_train_acc": result["robust_train_acc"],
            "seconds": {"train": {"predicted": predicted["train"],
                                  "measured": result["train_seconds"]},
                        "autoattack": {"predicted": predicted["aa"], "measured": aa["seconds"]},
                        "evaluation_with_aa": {"predicted": predicted["eval"] + predicted["aa"],
                                               "measured": result["gpu_evidence"]["eval_seconds"]}}}


def run_evidence(out, *, preset: Preset, pack=None, device=None, seed: int = 0,
                 budget: float | None = None, started: float | None = None,
                 scratch=None, command: str = "") -> dict:
    """Measure, size, train and evaluate; returns the summary (also ``out/summary.json``).

    ``scratch``: where AutoAttack keeps its state (default: a temporary folder, removed at
    the end; nothing there needs to come back).
    """
    if scratch is None:
        with tempfile.TemporaryDirectory(prefix="gpu-evidence-") as tmp:
            return run_evidence(out, preset=preset, pack=pack, device=device, seed=seed,
                                budget=budget, started=started, scratch=tmp, command=command)
    started = time.time() if started is None else started
    if budget is not None:
        preset = dataclasses.replace(preset, budget=float(budget))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock(started, out / "log.txt")
    scratch = Path(scratch)
    device = pick_device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    env = environment()
    clock.log(f"{env['gpu'] or 'CPU'} ({device}), torch {env['torch']}, preset {preset.name}, "
              f"budget {preset.budget:.0f} s")

    # the largest training set the pack allows, cut once; a smaller plan takes its prefix
    # (split_train_heldout interleaves classes, so every prefix is balanced too)
    loaded = load_pack(pack)
    n_pack, n_pack_test = len(loaded[0][1]), len(loaded[1][1])
    n_max = max(n for n in preset.ladder if n <= n_pack - preset.n_heldout)
    data, info = pack_data(loaded, n_max, preset.n_heldout, min(preset.n_test, n_pack_test))
    (x_tr, y_tr), (x_ho, y_ho), (x_te, y_te) = data
    clock.log(f"pack {info['label']}: {info['subset']}; decoded as built: "
              f"{info['decoded_as_built']}")

    set_seed(seed)
    base = get_tier("gpu").replace(**preset.tier)
    costs = measure_costs(base, METHOD_SETS[0], x_tr, y_tr, x_ho, y_ho, device, preset)
    clock.log("measured: " + ", ".join(f"{m} {1e3 * s:.1f} ms/step" for m, s in
                                       costs["step"].items())
              + f"; frames {costs['metrics']:.2f} s/epoch")
    plan = size_run(costs, preset, clock(), pack_train=n_pack)
    tier = plan_tier(preset, plan)
    clock.log(f"plan ({'fits' if plan['fits'] else 'DOES NOT FIT: AT alone, cut down'}): "
              f"{', '.join(plan['methods'])}; {plan['n_train']} images x {tier.epochs} epochs;"
              f" AutoAttack {tier.autoattack_version} on {tier.n_autoattack}")
    x_tr, y_tr = x_tr[:plan["n_train"]], y_tr[:plan["n_train"]]
    info = {**info, "n_train": plan["n_train"],
            "subset": info["subset"].replace(f"{n_max:,} training", f"{plan['n_train']:,} training")}
    labels = {"gpu": env["gpu"], "device": str(device), "preset": preset.name,
              "budget_seconds": preset.budget, "data": info["label"], "subset": info["subset"],
              "autoattack": tier.autoattack_version}
    record = {"format": "sovr-gpu-evidence/1", "labels": labels, "preset": dataclasses.asdict(preset),
              "measured_costs": costs,
              "plan": plan, "tier": dataclasses.asdict(tier), "data": info, "environment": env,
              "command": command, "started": dt.datetime.fromtimestamp(
                  started, dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(out / "plan.json", json.dumps(record, indent=1, default=str))

    entries = []
    summary = {"labels": labels, "plan": plan, "runs": [], "skipped": [], "failed": []}
    meta = {"tier": dataclasses.asdict(tier), "seed": seed, "environment": env,
            "data": f"{info['label']}: {info['subset']}; frames of {preset.n_heldout} held-out "
                    f"and the first {preset.n_heldout} training images", "command": command}
    # measured / predicted seconds of the methods done so far (never below 1: the sizing's
    # guesses are not trusted to be pessimistic), for training and for the evaluation
    speed = {"train": 1.0, "eval": 1.0}

    def one(run, deadline):
        """Train, evaluate and write one method; the result dict."""
        history, holder, t0 = [], {}, time.time()

        def on_epoch(epoch, rec, model):
            history.append(rec)
            holder["model"] = model
            save_frames(make_frames(entries + [frames_from_history(history, run=run, seed=seed)],
                                    **meta), out / "frames.json")
            if epoch in (1, tier.epochs) or epoch % max(1, tier.epochs // 5) == 0:
                clock.log(f"{run.label} epoch {epoch}/{tier.epochs}: loss {rec['loss']:.3f}, "
                          f"held-out PGD {rec['pgd_acc']:.3f}, {rec['seconds']:.1f} s")
            if epoch < tier.epochs and clock() + (time.time() - t0) / epoch > deadline:
                raise _Stop

        set_seed(seed)
        try:
            model, history = train(run, x_tr, y_tr, tier=tier, seed=seed, x_val=x_ho,
                                   y_val=y_ho, device=device, progress=False, on_epoch=on_epoch)
            cut = False
        except _Stop:
            model, cut = holder["model"].eval(), True
            clock.log(f"{run.label}: cut short after {len(history)} of {tier.epochs} epochs")
        train_seconds = sum(h["seconds"] for h in history)
        speed["train"] = max(speed["train"], train_seconds / (
            len(history) * epoch_seconds(costs, run.slug, plan["n_train"])))
        t1 = time.time()
        metrics = evaluate_run(model, ((x_tr, y_tr), (x_te, y_te)), tier, device,
                               scratch / f"{run.name(seed)}.aa", seed)
        speed["eval"] = max(speed["eval"], (time.time() - t1) / (
            plan["eval_seconds"] + plan["autoattack"]["seconds"]))
        # the keys of experiments.run_one's result file, then this run's own labels
        result = {"run": run.name(seed), "method": run.method, "label": run.label,
                  "options": run.options(), "seed": seed, "tier": dataclasses.asdict(tier),
                  "precision": resolve_precision(tier.precision, device),
                  "data": info, "environment": env, "history": history,
                  "train_seconds": train_seconds, **metrics, "wall_seconds": time.time() - t0,
                  "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": command,
                  "gpu_evidence": {**labels, "cut_short": cut, "epochs_trained": len(history),
                                   "eval_seconds": time.time() - t1}}
        atomic_write_text(out / f"{run.name(seed)}.json", json.dumps(result, indent=1))
        entries.append(frames_from_history(history, run=run, seed=seed))
        save_frames(make_frames(entries, **meta), out / "frames.json")
        return result

    for slug in plan["methods"]:
        run = as_run(slug)
        per_epoch = epoch_seconds(costs, slug, plan["n_train"]) * speed["train"]
        after = (plan["eval_seconds"] + plan["autoattack"]["seconds"]) * speed["eval"]
        deadline = preset.budget - preset.reserve - after
        ends = clock() + tier.epochs * per_epoch
        if ends > deadline and (summary["runs"] or summary["skipped"] or summary["failed"]):
            # (the first method always runs: some evidence rather than none)
            clock.log(f"{run.label}: skipped, {tier.epochs} epochs would end at {ends:.0f} s, "
                      f"after {deadline:.0f} s")
            summary["skipped"].append(slug)
            continue
        try:
            result = one(run, deadline)
        except Exception as err:   # noqa: BLE001 - one shot: the next method keeps its time
            clock.log(f"{run.label}: FAILED\n{traceback.format_exc()}")
            summary["failed"].append({"run": slug, "error": repr(err)})
            atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
            continue
        predicted = {"train": plan["train_seconds"][slug], "eval": plan["eval_seconds"],
                     "aa": plan["autoattack"]["seconds"]}
        summary["runs"].append(_summary_entry(result, entries[-1], predicted))
        summary["wall_seconds"] = clock()
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
        aa = result["autoattack"]
        clock.log(f"{run.label}: clean {result['clean_acc']:.3f}, PGD-{tier.eval_steps} "
                  f"{result[f'pgd{tier.eval_steps}_ce_acc']:.3f}, {aa['label']} "
                  f"{aa['robust']:.3f} (n={aa['n']}); training-margin peaks at the end "
                  f"{len(result['margins']['train_adv']['peaks'])} (adversarial), "
                  f"{len(result['margins']['train_clean']['peaks'])} (clean)")
    summary["wall_seconds"] = clock()
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    if device.type == "cuda" and clock() < preset.budget - 45:
        # last, with time to spare: the FLOP prediction and this GPU's bf16 matmul rate
        # beside the measured step times (a step far slower than its FLOPs at that rate
        # and near the launch floor is launch-bound: there concurrent processes would pay)
        try:
            from benchmarks.gpu import matmul_peak
            record["measured_bf16_matmul_tflops"] = matmul_peak(device)[0]
            record["flop_predicted"] = counted_costs(preset)
            atomic_write_text(out / "plan.json", json.dumps(record, indent=1, default=str))
        except Exception as err:   # noqa: BLE001 - only the comparison is lost
            clock.log(f"no FLOP prediction: {err}")
    clock.log(f"done in {clock():.0f} s of {preset.budget:.0f}")
    return summary


def main(argv=None) -> int:
    started = time.time()
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.lab.gpu_evidence",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", action="store_true", help="print the plan from FLOP counts")
    p.add_argument("--preset", default="h200", choices=sorted(PRESETS))
    p.add_argument("--budget", type=float, default=None, help="seconds (default: the "
                   "preset's; h200: 480)")
    p.add_argument("--pack", default=str(pack_dir()))
    p.add_argument("--out", default="gpu-evidence-out")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.budget is not None:
        preset = dataclasses.replace(preset, budget=args.budget)
    if args.plan:   # start-up and measuring: ~30 s on the device (imports, pack, CUDA)
        print_plan(preset, setup_seconds=min(30.0, preset.budget / 8))
        return 0
    command = command_line("sovr_tutorial.lab.gpu_evidence", argv)
    # one thread for the tiny dry run: on a shared 2-core machine two threads waiting on
    # each other make its many small operations several times slower (devices.torch_threads)
    with torch_threads(preset.threads):
        run_evidence(args.out, preset=preset, pack=args.pack, device=args.device,
                     seed=args.seed, started=started, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
