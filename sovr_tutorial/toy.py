"""The toy world: six classes in the plane, where the course's mechanisms show in seconds.

Each class is a tight core around a point on a circle plus a fraction of *wide* points
that spill into the neighbouring classes: the easy and the hard samples of the paper.
The points are scaled into [0, 1]^2, so the package's own attacks (L-inf, eps in those
units) work on them unchanged, and the one training loop (:func:`sovr_tutorial.train.fit`)
trains the MLP of the ``toy`` tier with every method.

    python -m sovr_tutorial.toy --methods at,trades,mart,gairat,sovr --seeds 0,1,2,3,4 --out results/toy

writes one JSON per (method, seed): clean accuracy, PGD-20 (CE) accuracy, accuracy under a
stronger attack on the margin (PGD-50 on the margin loss, 3 restarts) and under AutoAttack
(custom: APGD-CE + APGD-T), the adversarial margins of the training and test points
(quantiles, histogram, peaks, gradient norms, flip budgets), the push of CE and OVR on the
margin, the decision regions on a grid, and the seconds it took. ``--plot`` draws the
figures from those files. A (method, seed) whose file exists is skipped, so a killed
command restarted as it was continues where it stopped.

The explorer of notebook 04 moves here too: :func:`toy_move` fine-tunes a copy of an AT
model with SOVR at one switching rule and value and measures it on held-out points.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .attacks import attack_dataset
from .autoattack import autoattack_eval
from .checks import check_number, check_ratio
from .devices import model_device, pick_device
from .evaluate import pgd_accuracy, predictions
from .experiments import environment, margin_stats
from .files import atomic_write_text
from .losses import sovr_select
from .margins import _margin, margin_summary
from .runs import Run, as_run
from .tiers import get_tier, parse_overrides
from .train import finetune, set_seed, train

ROOT = Path(__file__).resolve().parents[1]
#: where the committed toy results live (the command line's default --out)
RESULTS_DIR = ROOT / "results" / "toy"

# The world in data units: class centres on a circle of radius RADIUS; core points drawn
# from N(centre, CORE_STD^2 I), wide points from N(centre, WIDE_STD^2 I). Neighbouring
# centres are RADIUS apart (six classes: a hexagon), so wide points reach the neighbours.
NUM_CLASSES = 6
RADIUS = 2.0
CORE_STD = 0.25
WIDE_STD = 1.0
WIDE_FRACTION = 0.3
# Data units -> [0, 1]: the square [-HALF_WIDTH, HALF_WIDTH]^2 maps onto [0, 1]^2 (the few
# wide points outside it are clipped onto its edge). eps 0.0375 in [0, 1] is 0.3 here.
HALF_WIDTH = 4.0
SCALE = 1.0 / (2 * HALF_WIDTH)

# The stronger attack on the margin: PGD on z_y - max_k z_k with more steps and restarts;
# a point counts as broken if any restart breaks it.
MARGIN_ATTACK_STEPS = 50
MARGIN_ATTACK_RESTARTS = 3
# Decision regions are stored as the predicted class on a REGION_GRID x REGION_GRID grid.
REGION_GRID = 120
# Bins of the push ratio OVR / CE on the margin, by adversarial margin (logits).
PUSH_EDGES = tuple(np.round(np.arange(-6.0, 6.01, 0.5), 2).tolist())


# --------------------------------------------------------------------------- the world

def to_unit(points: np.ndarray) -> np.ndarray:
    """Data units (N, 2) -> the [0, 1]^2 square the model sees (clipped at its edges)."""
    return np.clip(points * SCALE + 0.5, 0.0, 1.0)


def eps_in_data_units(eps: float) -> float:
    """An L-inf budget in [0, 1] units as a distance in the world's data units."""
    return eps / SCALE


def make_points(n: int, seed: int, *, num_classes: int = NUM_CLASSES,
                wide_fraction: float = WIDE_FRACTION):
    """``n`` points drawn by ``seed``: (x float32 (n, 2) in [0, 1], y int64 (n,), wide bool (n,)).

    Classes are balanced (``n // num_classes`` or one more each) in a shuffled order; each
    point is wide with probability ``wide_fraction``, else drawn from its class's core.
    """
    n = check_number("n", n, low=1, integer=True)
    seed = check_number("seed", seed, low=0, integer=True)
    num_classes = check_number("num_classes", num_classes, low=2, integer=True)
    wide_fraction = check_ratio(wide_fraction, "wide_fraction")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % num_classes)
    wide = rng.random(n) < wide_fraction
    angle = 2 * np.pi * y / num_classes
    centre = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    std = np.where(wide, WIDE_STD, CORE_STD)[:, None]
    x = to_unit(centre + std * rng.standard_normal((n, 2)))
    return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)),
            torch.from_numpy(wide))


def make_world(seed: int = 0, *, n_train: int = 2048, n_test: int = 2048):
    """The training and test sets of ``seed``: ((x, y, wide), (x, y, wide)), independent draws
    (the test set does not depend on ``n_train``)."""
    seed = check_number("seed", seed, low=0, integer=True)
    return make_points(n_train, 2 * seed), make_points(n_test, 2 * seed + 1)


def region_grid(n: int = REGION_GRID) -> torch.Tensor:
    """Cell centres of an n x n grid over [0, 1]^2: (n * n, 2), row by row from y = 0."""
    ticks = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


@torch.no_grad()
def decision_regions(model, n: int = REGION_GRID) -> str:
    """The predicted class on :func:`region_grid` (one digit per cell, classes < 10)."""
    was = model.training
    model.eval()
    pred = model(region_grid(n).to(model_device(model))).argmax(1).cpu().tolist()
    model.train(was)
    return "".join(str(p) for p in pred)


# --------------------------------------------------------------------------- measures

def margin_push(logits: torch.Tensor, y: torch.Tensor):
    """How hard CE and OVR push the margin up: ``(push_ce, push_ovr)``, each (N,).

    The push is ``-(dl/dz_y - dl/dz_j)`` with j the strongest wrong class: the rate at which
    gradient descent on the logits themselves raises the margin ``z_y - z_j``. CE:
    ``(1 - p_y) + p_j`` (it sees only differences of logits); OVR: ``sigmoid(-z_y) +
    sigmoid(z_j)`` (each logit against 0). For two symmetric logits (m/2, -m/2) they are
    ``2 sigmoid(-m)`` and ``2 sigmoid(-m/2)`` (notebook 04's curves). logits (N, K), y (N,).
    """
    z = logits.detach().float()
    y = y.long()
    p = torch.softmax(z, dim=1)
    j = z.scatter(1, y[:, None], float("-inf")).argmax(1, keepdim=True)
    z_y, z_j = z.gather(1, y[:, None]).squeeze(1), z.gather(1, j).squeeze(1)
    push_ce = (1 - p.gather(1, y[:, None]).squeeze(1)) + p.gather(1, j).squeeze(1)
    push_ovr = torch.sigmoid(-z_y) + torch.sigmoid(z_j)
    return push_ce, push_ovr


def push_curve(margins, push_ce, push_ovr, edges=PUSH_EDGES) -> dict:
    """Per margin bin: count and medians of push_ce, push_ovr and push_ovr / push_ce
    (None where a bin is empty). All inputs (N,); margins beyond the edges are left out."""
    m, ce, ovr = (np.asarray(torch.as_tensor(a).cpu(), dtype=np.float64)
                  for a in (margins, push_ce, push_ovr))
    edges = np.asarray(edges, dtype=np.float64)
    which = np.digitize(m, edges) - 1
    out = {"edges": edges.tolist(), "count": [], "ce": [], "ovr": [], "ratio": []}
    for b in range(len(edges) - 1):
        sel = which == b
        out["count"].append(int(sel.sum()))
        for key, v in (("ce", ce[sel]), ("ovr", ovr[sel]), ("ratio", ovr[sel] / ce[sel])):
            out[key].append(float(np.median(v)) if sel.any() else None)
    return out


class _PaddedLogits(torch.nn.Module):
    """A model's logits padded with constant -1e4 entries up to ``classes`` outputs.

    Why: the AutoAttack adapter builds APGD-T with AutoAttack's standard 9 target classes,
    which fails (IndexError) below 10 classes; the toy world has 6. Padded classes never
    win (softmax and argmax are unchanged, so APGD-CE is the same attack) and a restart
    aimed at one is wasted, so APGD-T on the padded model is APGD-T with the 5 real target
    classes.
    """

    def __init__(self, model, classes: int = 10):
        super().__init__()
        self.model, self.classes = model, classes

    def forward(self, x):
        z = self.model(x)
        pad = z.new_full((z.shape[0], self.classes - z.shape[1]), -1e4)
        return torch.cat([z, pad], dim=1)


def _autoattack(model, x, y, tier, seed) -> dict:
    n = min(tier.n_autoattack, len(y))
    if n == 0:
        return {"skipped": "the tier's n_autoattack is 0"}
    try:
        aa = autoattack_eval(_PaddedLogits(model).eval(), x[:n], y[:n], eps=tier.eps,
                             version=tier.autoattack_version, seed=seed, batch_size=n,
                             progress=False)
    except Exception as err:  # noqa: BLE001 - recorded: the result says why AA is missing
        return {"error": f"{type(err).__name__}: {err}"}
    keep = ("label", "version", "attacks", "n", "eps", "clean", "robust", "per_attack",
            "seconds", "warnings")
    return {**{k: aa[k] for k in keep},
            "note": "logits padded to 10 classes with -1e4 so APGD-T runs (5 real targets)"}


def _correct(model, x, x_adv, y):
    """(right on x, right on x_adv), bool (N,) on the CPU. Robust accuracy counts a point
    only when both hold, as the margin attack and AutoAttack do: the last PGD iterate can
    land a wrongly classified point on the right side (GAIRAT does this here), which would
    otherwise count as robust."""
    y = y.cpu()
    return predictions(model, x) == y, predictions(model, x_adv) == y


def _bits(mask) -> str:
    return "".join("1" if ok else "0" for ok in mask.tolist())


def _quantiles(stats: dict) -> dict:
    return {k: stats["margin"][k] for k in ("q10", "q50", "q90")}


def _switch_stats(run: Run, margins: np.ndarray) -> dict | None:
    """Which training points SOVR's rule picks at the end of training (applied to the whole
    set at once; training applies it per mini-batch) and how many of them are wrong."""
    if run.method != "sovr":
        return None
    mask = sovr_select(torch.as_tensor(margins), run.rule, run.value).numpy()
    picked = margins[mask]
    return {"fraction": float(mask.mean()),
            "misclassified_share": float((picked < 0).mean()) if picked.size else None,
            "largest_margin_switched": float(picked.max()) if picked.size else None}


def evaluate_toy(model, world, tier, seed: int, run: Run | None = None) -> dict:
    """Every measure of one trained toy model (see the module docstring)."""
    (x_tr, y_tr, _), (x_te, y_te, _) = world
    device = model_device(model)
    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))
    t0 = time.perf_counter()

    def pgd20(x, y):
        return attack_dataset(model, x, y, eps=tier.eps, steps=tier.eval_steps, seed=seed,
                              alpha=tier.step_size(tier.eval_steps), batch_size=len(y))

    x_te_adv, x_tr_adv = pgd20(x_te, y_te), pgd20(x_tr, y_tr)
    margins = {"train_adv": margin_stats(model, x_tr_adv, y_tr, device),
               "test_adv": margin_stats(model, x_te_adv, y_te, device),
               "train_clean": margin_stats(model, x_tr, y_tr, device),
               "test_clean": margin_stats(model, x_te, y_te, device)}
    for key in ("train_clean", "test_clean"):   # per-point values kept for the attacked sets
        margins[key].pop("values")
    for key in ("train_adv", "test_adv"):   # float64 before rounding: float32 reprs are long
        margins[key]["values"] = np.round(np.asarray(margins[key]["values"], np.float64),
                                          3).tolist()
    margin_acc = pgd_accuracy(model, x_te, y_te, eps=tier.eps, steps=MARGIN_ATTACK_STEPS,
                              alpha=tier.step_size(MARGIN_ATTACK_STEPS),
                              restarts=MARGIN_ATTACK_RESTARTS, loss="margin", seed=seed,
                              batch_size=len(y_te))
    with torch.no_grad():
        z_tr = model(x_tr_adv)
    train_m = _margin(z_tr, y_tr).cpu().numpy()
    clean_ok, pgd_ok = _correct(model, x_te, x_te_adv, y_te)
    train_ok, train_pgd_ok = _correct(model, x_tr, x_tr_adv, y_tr)
    eval_seconds = time.perf_counter() - t0
    aa = _autoattack(model, x_te, y_te, tier, seed)
    return {
        "clean_acc": clean_ok.float().mean().item(),
        # robust: right clean and at the PGD-20 point (as for the margin attack and AA)
        "pgd_acc": (clean_ok & pgd_ok).float().mean().item(),
        # right at the PGD-20 point, whatever the clean prediction (what many training
        # scripts print); above pgd_acc when PGD moves wrong points to the right side
        "pgd_point_acc": pgd_ok.float().mean().item(),
        "margin_attack_acc": margin_acc,
        "autoattack": aa,
        "per_point": {"clean": _bits(clean_ok), "pgd": _bits(pgd_ok)},
        "train_clean_acc": train_ok.float().mean().item(),
        "robust_train_acc": (train_ok & train_pgd_ok).float().mean().item(),
        "train_margin_quantiles": _quantiles(margins["train_adv"]),
        "test_margin_quantiles": _quantiles(margins["test_adv"]),
        "train_peaks": margins["train_adv"]["peaks"],
        "test_peaks": margins["test_adv"]["peaks"],
        "margins": margins,
        "push": push_curve(train_m, *margin_push(z_tr, y_tr)),
        "switch": None if run is None else _switch_stats(run, train_m),
        "regions": {"grid": REGION_GRID, "labels": decision_regions(model)},
        "eval_seconds": eval_seconds,
        "autoattack_seconds": aa.get("seconds"),
    }


# --------------------------------------------------------------------------- runs

def toy_tier(**overrides):
    """The ``toy`` tier of tiers.py, with optional field overrides."""
    return get_tier("toy", **overrides)


def train_toy(run, seed: int = 0, tier=None, *, device=None):
    """Train ``run`` (a Run or slug) on the world of ``seed`` through the package's loop.

    Returns (model in eval mode, history, world, seconds of training).
    """
    run, tier = as_run(run), tier if tier is not None else toy_tier()
    world = make_world(seed, n_train=tier.n_train, n_test=tier.n_test)
    t0 = time.perf_counter()
    model, history = train(run, world[0][0], world[0][1], tier=tier, seed=seed,
                           device=pick_device(device), progress=False)
    return model, history, world, time.perf_counter() - t0


def _world_info(tier, seed) -> dict:
    return {"source": "toy world (sovr_tutorial.toy)", "num_classes": NUM_CLASSES,
            "radius": RADIUS, "core_std": CORE_STD, "wide_std": WIDE_STD,
            "wide_fraction": WIDE_FRACTION, "scale": SCALE,
            "eps_data_units": eps_in_data_units(tier.eps), "n_train": tier.n_train,
            "n_test": tier.n_test, "train_seed": 2 * seed, "test_seed": 2 * seed + 1}


def run_toy(run, seed: int = 0, tier=None, *, device=None, out_dir=None,
            command: str = "") -> dict:
    """Train and measure ``run`` at ``seed`` in the toy world; returns the result dict.

    With ``out_dir`` the result goes to ``out_dir/<run name>.json`` (``at-s0.json``,
    ``sovr-r0.4-s1.json``), and a run whose file exists is read back, not trained again.
    """
    run, tier = as_run(run), tier if tier is not None else toy_tier()
    path = None if out_dir is None else Path(out_dir) / f"{run.name(seed)}.json"
    if path is not None and path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    model, history, world, seconds = train_toy(run, seed, tier, device=device)
    switched = [h["switched"] for h in history if "switched" in h]
    result = {"run": run.name(seed), "method": run.method, "slug": run.slug,
              "label": run.label, "options": run.options(), "seed": seed,
              "tier": dataclasses.asdict(tier), "data": _world_info(tier, seed),
              "seconds": seconds,
              "switched": float(np.mean(switched)) if switched else None,
              **evaluate_toy(model, world, tier, seed, run),
              "history": [{k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()}
                          for h in history],
              "environment": environment(), "wall_seconds": time.perf_counter() - t0,
              "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": command}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(result))
    return result


def load_toy_results(out_dir) -> list:
    """Every run's result file of ``out_dir`` (a list of dicts, sorted by file name); the
    noise control (CONTROL_FILE) is read by :func:`load_control`."""
    return [json.loads(p.read_text()) for p in sorted(Path(out_dir).glob("*.json"))
            if p.name != CONTROL_FILE]


# The noise control of section 4: AT trained again on the same points with another
# initialisation and batch order (training seed CONTROL_OFFSET + seed). Its margins minus
# AT's, point by point, show how much two equally trained models differ by chance (and
# any regression to the mean of the binned comparison).
CONTROL_FILE = "control_at_reinit.json"
CONTROL_OFFSET = 1000


def run_control(seeds, tier=None, *, out_dir=None, device=None) -> dict:
    """Train the noise control for ``seeds`` (see CONTROL_FILE); with ``out_dir`` written
    to ``out_dir/CONTROL_FILE`` (read back if it exists for the same seeds)."""
    tier = tier if tier is not None else toy_tier()
    seeds = [check_number("seed", s, low=0, integer=True) for s in seeds]
    path = None if out_dir is None else Path(out_dir) / CONTROL_FILE
    if path is not None and path.exists():
        old = json.loads(path.read_text())
        if old["seeds"] == seeds:
            return old
    t0 = time.perf_counter()
    values = {}
    for seed in seeds:
        (x, y, _), _ = make_world(seed, n_train=tier.n_train, n_test=tier.n_test)
        model, _ = train("at", x, y, tier=tier, seed=CONTROL_OFFSET + seed,
                         device=pick_device(device), progress=False)
        x_adv = attack_dataset(model, x, y, eps=tier.eps, steps=tier.eval_steps, seed=seed,
                               alpha=tier.step_size(tier.eval_steps), batch_size=len(y))
        with torch.no_grad():
            m = _margin(model(x_adv), y).cpu().numpy().astype(np.float64)
        values[seed] = np.round(m, 3).tolist()
    control = {"what": "AT retrained on the same points with training seed offset + seed",
               "offset": CONTROL_OFFSET, "seeds": seeds, "tier": dataclasses.asdict(tier),
               "runs": [{"seed": s, "margins": {"train_adv": {"values": values[s]}}}
                        for s in seeds],
               "seconds": time.perf_counter() - t0, "environment": environment()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(control))
    return control


def load_control(out_dir) -> dict | None:
    """The noise control of ``out_dir``, or None when it was not run."""
    path = Path(out_dir) / CONTROL_FILE
    return json.loads(path.read_text()) if path.exists() else None



def results_note(results: list) -> str:
    """Where a set of toy results comes from, in one line (tier, seeds, hardware, command)."""
    r = results[0]
    t, env = r["tier"], r["environment"]
    seeds = sorted({x["seed"] for x in results})
    steps = t["epochs"] * -(-t["n_train"] // t["batch_size"])
    return (f"toy tier: MLP 2-{t['width']}-{t['width']}-{t['num_classes']}, {t['n_train']} "
            f"training points, {steps} steps of batch {t['batch_size']}, PGD-{t['train_steps']} "
            f"at eps {t['eps']:g} ({eps_in_data_units(t['eps']):g} in data units); seeds "
            f"{', '.join(map(str, seeds))}; {env.get('cpu_count')}-core {env.get('cpu')} CPU, "
            f"{env.get('torch_threads')} torch thread(s), torch {env.get('torch')}")


def paired_margin_shift(at_runs: list, runs: list, edges) -> np.ndarray:
    """A run's adversarial training margins minus AT's on the same points, per bin of AT's.

    Runs pair by seed (same seed: same points, initial weights and batch order). Returns
    (seeds, bins): the mean shift of the points whose AT margin falls in each bin of
    ``edges`` (NaN where a bin is empty), one row per seed present in both lists.
    """
    at = {r["seed"]: np.asarray(r["margins"]["train_adv"]["values"]) for r in at_runs}
    edges = np.asarray(edges, dtype=np.float64)
    rows = []
    for r in runs:
        if r["seed"] not in at:
            continue
        base, mine = at[r["seed"]], np.asarray(r["margins"]["train_adv"]["values"])
        which = np.digitize(base, edges) - 1
        rows.append([float(np.mean(mine[which == b] - base[which == b]))
                     if (which == b).any() else np.nan for b in range(len(edges) - 1)])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(edges) - 1)


#: the groups of training points section 4 reads: wrong under PGD-20 at AT, right with a
#: small margin, right with a large one (AT's adversarial margin, logits)
SHIFT_GROUPS = (("wrong (m < 0)", -np.inf, 0.0), ("small (0 <= m < 1)", 0.0, 1.0),
                ("large (m >= 1)", 1.0, np.inf))


def switch_effect(results: list, control: dict | None = None) -> dict:
    """Section 4's numbers from toy result files.

    ``shift``: per SOVR run slug, per group of SHIFT_GROUPS, the mean over seeds (and std)
    of the mean margin shift against AT on the same points (:func:`paired_margin_shift`).
    ``push``: OVR's push on the margin over CE's on AT's adversarial training logits, per
    group (the per-bin medians of :func:`push_curve`, weighted by the bins' counts, then
    averaged over seeds). ``switched_wrong``: per SOVR slug, the share of the points its
    rule picks at the end of training that are misclassified (mean over seeds). With the
    noise ``control`` (:func:`run_control`), ``shift`` also holds it under "control".
    """
    at_runs = [r for r in results if r["slug"] == "at"]
    if not at_runs:
        raise ValueError("switch_effect needs the AT runs (the reference)")
    edges = [g[1] for g in SHIFT_GROUPS] + [SHIFT_GROUPS[-1][2]]
    out = {"shift": {}, "push": {}, "switched_wrong": {}}
    compared = {slug: [r for r in results if r["slug"] == slug]
                for slug in sorted({r["slug"] for r in results if r["method"] == "sovr"})}
    if control is not None:
        compared["control"] = control["runs"]
    for slug, runs in compared.items():
        shift = paired_margin_shift(at_runs, runs, edges)
        with warnings.catch_warnings():   # a group empty in every seed stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out["shift"][slug] = {g[0]: (float(np.nanmean(shift[:, i])),
                                         float(np.nanstd(shift[:, i], ddof=1))
                                         if len(shift) > 1 else 0.0)
                                  for i, g in enumerate(SHIFT_GROUPS)}
        if slug == "control":
            continue
        shares = [r["switch"]["misclassified_share"] for r in runs
                  if r.get("switch") and r["switch"]["misclassified_share"] is not None]
        out["switched_wrong"][slug] = float(np.mean(shares)) if shares else None
    for name, lo, hi in SHIFT_GROUPS:
        per_seed = []
        for r in at_runs:
            e = np.asarray(r["push"]["edges"])
            centre = (e[:-1] + e[1:]) / 2
            sel = [i for i, c in enumerate(centre) if lo <= c < hi
                   and r["push"]["ratio"][i] is not None]
            w = np.asarray([r["push"]["count"][i] for i in sel], dtype=np.float64)
            if w.sum():
                per_seed.append(float(np.average([r["push"]["ratio"][i] for i in sel], weights=w)))
        out["push"][name] = float(np.mean(per_seed)) if per_seed else None
    return out


# --------------------------------------------------------------------------- the explorer

EXPLORER_HELDOUT = 1024     # held-out points the explorer measures on (the test set's first)


def measure_toy_model(model, x, y, *, tier, seed: int = 0, restarts: int = 1) -> dict:
    """What the explorer shows of a model on held-out points x (N, 2), y (N,).

    Adversarial margins at PGD-``eval_steps`` (CE), robust accuracy under it (right clean
    and at the PGD point), clean accuracy, accuracy under the margin attack (PGD-50 on the
    margin, ``restarts`` restarts) and the decision regions.
    """
    x_adv = attack_dataset(model, x, y, eps=tier.eps, steps=tier.eval_steps, seed=seed,
                           alpha=tier.step_size(tier.eval_steps), batch_size=len(y))
    with torch.no_grad():
        m = _margin(model(x_adv), y).cpu().numpy()
    summary = margin_summary(m)
    clean_ok, pgd_ok = _correct(model, x, x_adv, y)
    return {"margins": m.tolist(), "q10": summary["q10"], "q50": summary["q50"],
            "q90": summary["q90"], "pgd_acc": (clean_ok & pgd_ok).float().mean().item(),
            "clean_acc": clean_ok.float().mean().item(),
            "margin_attack_acc": pgd_accuracy(
                model, x, y, eps=tier.eps, steps=MARGIN_ATTACK_STEPS,
                alpha=tier.step_size(MARGIN_ATTACK_STEPS), restarts=restarts, loss="margin",
                seed=seed, batch_size=len(y)),
            "regions": decision_regions(model), "grid": REGION_GRID}


def toy_move(base_model, world, *, rule: str = "ratio", value: float = 0.4, tier=None,
             steps: int = 120, lr: float = 0.05, batch_size: int = 256,
             attack_steps: int = 5, seed: int = 0) -> dict:
    """One move of the toy explorer: fine-tune a copy of ``base_model`` (AT) with SOVR at
    ``rule`` / ``value`` for ``steps`` steps (:func:`sovr_tutorial.train.finetune`, PGD-
    ``attack_steps`` at the tier's eps) on the training points of ``world``, then measure
    it on the first EXPLORER_HELDOUT test points (:func:`measure_toy_model`).

    ``base_model`` is never changed and the result depends only on the arguments.
    Returns the measures plus ``rule``, ``value``, ``switched_fraction`` (share of the
    fine-tuning samples that got OVR), ``switched_per_step`` and ``seconds``.
    """
    tier = tier if tier is not None else toy_tier()
    run = Run("sovr", rule=rule, value=value)
    t0 = time.perf_counter()
    (x_tr, y_tr, _), (x_te, y_te, _) = world
    ft_tier = tier.replace(train_steps=attack_steps, alpha=tier.step_size(attack_steps))
    model, log = finetune(base_model, run, x_tr, y_tr, tier=ft_tier, steps=steps,
                          batch_size=batch_size, lr=lr, seed=seed)
    out = measure_toy_model(model, x_te[:EXPLORER_HELDOUT], y_te[:EXPLORER_HELDOUT],
                            tier=tier, seed=seed)
    switched = [s["switched"] for s in log]
    return {**out, "rule": run.rule, "value": run.value, "label": run.label,
            "switched_fraction": float(np.mean(switched)), "switched_per_step": switched,
            "steps": steps, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- figures

def plot_toy_results(out_dir) -> list:
    """Draw the toy figures from the result files of ``out_dir`` into it; returns the paths.

    toy_regions.png (decision regions, seed 0), toy_margins.png (margin histograms over all
    seeds), toy_accuracy.png (clean / PGD / margin attack / AA, mean +- std over seeds),
    toy_switch.png (section 4: where SOVR moves the margins, and OVR's push against CE's).
    """
    from . import plots

    out_dir = Path(out_dir)
    results = load_toy_results(out_dir)
    if not results:
        raise FileNotFoundError(f"no toy results in {out_dir}")
    seeds = sorted({r["seed"] for r in results})
    first = [r for r in results if r["seed"] == seeds[0]]
    tier = first[0]["tier"]
    points = make_world(seeds[0], n_train=tier["n_train"], n_test=tier["n_test"])[0]
    figures = {
        "toy_regions.png": plots.plot_toy_regions(first, points[0], eps=tier["eps"]),
        "toy_margins.png": plots.plot_toy_margins(results),
        "toy_accuracy.png": plots.plot_toy_accuracy(results),
        "toy_switch.png": plots.plot_toy_switch(results, control=load_control(out_dir)),
    }
    paths = []
    for name, fig in figures.items():
        path = out_dir / name
        fig.savefig(path, dpi=80, bbox_inches="tight")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.toy",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="at,trades,mart,gairat,sovr",
                   help="comma-separated runs: a method or a SOVR slug: sovr-r0.2 (ratio), "
                   "sovr-t1 (threshold), sovr-b0.4 (boundary) [sovr = sovr-r0.4]")
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2,3,4")
    p.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of the toy tier, e.g. --set epochs=100 "
                   "(use another --out: finished runs are skipped by file name)")
    p.add_argument("--device", default=None)
    p.add_argument("--control", action="store_true",
                   help=f"also train the noise control of section 4 ({CONTROL_FILE}: AT again "
                   "on the same points with another initialisation and batch order)")
    p.add_argument("--plot", action="store_true",
                   help="draw the figures from the results folder after the runs")
    args = p.parse_args(argv)
    try:
        args.tier = toy_tier(**parse_overrides(args.set))
        args.methods = [as_run(m) for m in args.methods.split(",") if m.strip()]
        args.seeds = [check_number("seed", int(s), low=0, integer=True)
                      for s in args.seeds.split(",") if s.strip()]
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    command = " ".join([Path(sys.executable).name, "-m", __name__]
                       + list(sys.argv[1:] if argv is None else argv))
    out_dir = Path(args.out)
    set_seed(0)
    t0 = time.perf_counter()
    for run in args.methods:
        for seed in args.seeds:
            done = (out_dir / f"{run.name(seed)}.json").exists()
            res = run_toy(run, seed, args.tier, device=args.device, out_dir=out_dir,
                          command=command)
            aa = res["autoattack"].get("robust", float("nan"))
            q = res["train_margin_quantiles"]
            print(f"{run.name(seed):>16}{' (done before, skipped)' if done else ''}: clean "
                  f"{res['clean_acc']:.3f}  PGD-{res['tier']['eval_steps']} {res['pgd_acc']:.3f}"
                  f"  margin attack {res['margin_attack_acc']:.3f}  AA {aa:.3f}  train margins "
                  f"q10/q50/q90 {q['q10']:+.2f}/{q['q50']:+.2f}/{q['q90']:+.2f}  peaks "
                  f"{len(res['train_peaks'])}  {res['seconds']:.1f} s", flush=True)
    if args.control:
        control = run_control(args.seeds, args.tier, out_dir=out_dir, device=args.device)
        print(f"noise control (AT, other initialisation), seeds {control['seeds']}: "
              f"{control['seconds']:.1f} s", flush=True)
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)
    if args.plot:
        for path in plot_toy_results(out_dir):
            print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
