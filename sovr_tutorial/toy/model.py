"""A model in the toy world (the points are :mod:`sovr_tutorial.toy.world`): training it
(:func:`train_toy`), measuring it (:func:`evaluate_toy`: accuracies under PGD-20, the margin
attack and AutoAttack, margins, the push of CE and OVR, decision regions) and the explorer's
move of notebook 04 (:func:`toy_move`: fine-tune a copy of an AT model with SOVR at one
switching rule and value and measure it on held-out points, :func:`measure_toy_model`; its
reference :func:`toy_reference`: the same fine-tune under CE).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..autoattack import autoattack_eval
from ..checks import check_number, check_steps
from ..devices import model_device, pick_device, torch_threads
from ..evaluate import adversarial_margins, pgd_accuracy, predictions
from ..losses import sovr_select
from ..margins import _margin, collect_margins, margin_stats, margin_summary
from ..runs import Run, as_run
from ..tiers import pgd_step_size
from ..train import finetune, train
from .world import DEFAULT_WORLD, REGION_GRID, make_world, region_grid, toy_tier

# The stronger attack on the margin: PGD on z_y - max_k z_k with more steps and restarts;
# a point counts as broken if any restart breaks it.
MARGIN_ATTACK_STEPS = 50
MARGIN_ATTACK_RESTARTS = 3
# Bins of the push ratio OVR / CE on the margin, by adversarial margin (logits).
PUSH_EDGES = tuple(np.round(np.arange(-6.0, 6.01, 0.5), 2).tolist())


# --------------------------------------------------------------------------- measures

@torch.no_grad()
def decision_regions(model, n: int = REGION_GRID) -> str:
    """The predicted class on :func:`region_grid` (one digit per cell, classes < 10)."""
    was = model.training
    model.eval()
    pred = model(region_grid(n).to(model_device(model))).argmax(1).cpu().tolist()
    model.train(was)
    return "".join(str(p) for p in pred)


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
    except Exception as err:  # noqa: BLE001 - recorded as a failure: the file says why
        return {"failed": True, "error": f"{type(err).__name__}: {err}",
                "version": tier.autoattack_version, "n": n, "eps": tier.eps}
    keep = ("label", "version", "attacks", "n", "eps", "clean", "robust", "per_attack",
            "broken_by", "seconds", "warnings")
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
        return adversarial_margins(model, x, y, eps=tier.eps, steps=tier.eval_steps,
                                   step_size=tier.eval_step_size, seed=seed, batch_size=len(y))

    te_adv, tr_adv = pgd20(x_te, y_te), pgd20(x_tr, y_tr)
    x_te_adv, x_tr_adv = te_adv["x_adv"], tr_adv["x_adv"]
    margins = {"train_adv": margin_stats(tr_adv), "test_adv": margin_stats(te_adv),
               "train_clean": margin_stats(collect_margins(model, x_tr, y_tr, progress=False)),
               "test_clean": margin_stats(collect_margins(model, x_te, y_te, progress=False))}
    for key in ("train_clean", "test_clean"):   # per-point values kept for the attacked sets
        margins[key].pop("values")
    for key in ("train_adv", "test_adv"):   # float64 before rounding: float32 reprs are long
        margins[key]["values"] = np.round(np.asarray(margins[key]["values"], np.float64),
                                          3).tolist()
    margin_acc = pgd_accuracy(model, x_te, y_te, eps=tier.eps, steps=MARGIN_ATTACK_STEPS,
                              alpha=pgd_step_size(tier.eps, MARGIN_ATTACK_STEPS),
                              restarts=MARGIN_ATTACK_RESTARTS, loss="margin", seed=seed,
                              batch_size=len(y_te))
    with torch.no_grad():
        z_tr = model(x_tr_adv)
    train_m = _margin(z_tr, y_tr).cpu().numpy()
    clean_ok, pgd_ok = _correct(model, x_te, x_te_adv, y_te)
    train_ok, train_pgd_ok = _correct(model, x_tr, x_tr_adv, y_tr)
    eval_seconds = time.perf_counter() - t0
    aa = _autoattack(model, x_te, y_te, tier, seed)
    n_aa = aa.get("n") or len(y_te)   # AutoAttack skipped: every point
    # the CIFAR-10 runner's keys for the same quantities (sovr_tutorial.lab.experiments)
    return {
        "clean_acc": clean_ok.float().mean().item(),
        # robust: right clean and at the PGD-20 point (as for the margin attack and AA)
        f"pgd{tier.eval_steps}_ce_acc": (clean_ok & pgd_ok).float().mean().item(),
        # right at the PGD-20 point, whatever the clean prediction (what many training
        # scripts print); above the robust accuracy when PGD moves wrong points to the right side
        "pgd_point_acc": pgd_ok.float().mean().item(),
        "margin_attack_acc": margin_acc,
        # PGD accuracy on exactly the points AutoAttack saw (its first n), for an honest gap
        "pgd_acc_on_aa_subset": (clean_ok & pgd_ok)[:n_aa].float().mean().item(),
        "autoattack": aa,
        # raw correctness at each test point, one bit per point (robust = clean & pgd)
        "per_image": {"clean": _bits(clean_ok), "pgd": _bits(pgd_ok)},
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


# --------------------------------------------------------------------------- training

def train_toy(run, seed: int = 0, tier=None, *, device=None, kind: str = DEFAULT_WORLD):
    """Train ``run`` (a Run or slug) on the world of ``seed`` through the package's loop;
    ``kind`` picks the world (:data:`sovr_tutorial.toy.world.WORLD_KINDS`).

    Returns (model in eval mode, history, world, seconds of training).
    """
    run, tier = as_run(run), tier if tier is not None else toy_tier()
    world = make_world(seed, n_train=tier.n_train, n_test=tier.n_test, kind=kind)
    t0 = time.perf_counter()
    model, history = train(run, world[0][0], world[0][1], tier=tier, seed=seed,
                           device=pick_device(device), progress=False)
    return model, history, world, time.perf_counter() - t0


# --------------------------------------------------------------------------- the explorer

EXPLORER_HELDOUT = 1024     # held-out points the explorer measures on (the test set's first)
#: The explorer's fine-tune (:func:`toy_move`, :func:`toy_reference`): steps, learning rate,
#: batch size and PGD steps. 60 steps at the toy tier's training learning rate 0.1 (the
#: explorer first did 120 at 0.05: the same lr x steps, half the time; SOVR's shift of the
#: held-out margins against the CE fine-tune is about the same, e.g. ratio 1: median +0.90
#: against +0.93 logits), so that a move answers in about a second.
EXPLORER_STEPS, EXPLORER_LR, EXPLORER_BATCH, EXPLORER_ATTACK_STEPS = 60, 0.1, 256, 5
#: The explorer's margin attack: PGD-20 on the margin, one restart. evaluate_toy's is
#: PGD-50 with 3 restarts; on the toy AT model and the benchmark's moves PGD-20 reports the
#: same accuracy as PGD-50 (to 0.5 pt: ``python -m benchmarks.toy_explorer`` prints both).
EXPLORER_MARGIN_STEPS = 20
#: What the explorer's CE reference is called on its figure and in its text.
TOY_CE_LABEL = "CE fine-tuned (ratio 0)"
#: the options of toy_move that fix a fine-tune and its measurement: a CE reference
#: (:func:`toy_reference`) compares with a move only if all of them agree
TOY_SETTINGS = ("steps", "lr", "batch_size", "attack_steps", "seed", "margin_steps")


def measure_toy_model(model, x, y, *, tier, seed: int = 0, restarts: int = 1,
                      margin_steps: int = EXPLORER_MARGIN_STEPS) -> dict:
    """What the explorer shows of a model on held-out points x (N, 2), y (N,).

    Adversarial margins at PGD-``eval_steps`` (CE), robust accuracy under it (right clean
    and at the PGD point), clean accuracy, accuracy under the margin attack (PGD-
    ``margin_steps`` on the margin, ``restarts`` restarts) and the decision regions on
    :data:`~sovr_tutorial.toy.world.REGION_GRID` cells. One forward pass per set of points
    (clean, PGD), without autograd; the measures are the package's
    (:func:`~sovr_tutorial.evaluate.adversarial_margins`, :func:`~sovr_tutorial.evaluate.pgd_accuracy`).
    """
    adv = adversarial_margins(model, x, y, eps=tier.eps, steps=tier.eval_steps,
                              step_size=tier.eval_step_size, seed=seed, batch_size=len(y),
                              gradients=False)
    margin_acc = pgd_accuracy(model, x, y, eps=tier.eps, steps=margin_steps,
                              alpha=pgd_step_size(tier.eps, margin_steps), restarts=restarts,
                              loss="margin", seed=seed, batch_size=len(y))
    clean_ok = predictions(model, x, batch_size=len(y)) == y.cpu()
    pgd_ok, m = torch.from_numpy(adv["correct"]), adv["margin"]
    summary = margin_summary(m)
    return {"margins": m.tolist(), "q10": summary["q10"], "q50": summary["q50"],
            "q90": summary["q90"], "pgd_acc": (clean_ok & pgd_ok).float().mean().item(),
            "clean_acc": clean_ok.float().mean().item(), "margin_attack_acc": margin_acc,
            "eval_steps": tier.eval_steps, "margin_steps": margin_steps,
            "regions": decision_regions(model), "grid": REGION_GRID}


def _toy_settings(tier, steps, lr, batch_size, attack_steps, seed, margin_steps) -> dict:
    """The checked settings of a fine-tune and its measurement (what :func:`toy_move` and
    :func:`toy_reference` share; a move compares with a reference only if they agree)."""
    return {"tier": tier.name, "eps": float(tier.eps), "eval_steps": int(tier.eval_steps),
            "steps": check_steps(steps, "steps"),
            "lr": float(check_number("lr", lr, low=0.0, low_open=True)),
            "batch_size": check_steps(batch_size, "batch_size"),
            "attack_steps": check_steps(attack_steps, "attack_steps"),
            "seed": check_number("seed", seed, low=0, integer=True),
            "margin_steps": check_steps(margin_steps, "margin_steps")}


def _toy_finetune_and_measure(base_model, run, world, tier, settings: dict) -> dict:
    """One fine-tune of ``run`` from ``base_model`` with ``settings`` and its measures on the
    first EXPLORER_HELDOUT test points: the one computation of :func:`toy_move` and
    :func:`toy_reference` (they differ only in ``run``'s loss)."""
    s = settings
    t0 = time.perf_counter()
    (x_tr, y_tr, _), (x_te, y_te, _) = world
    ft_tier = tier.replace(train_steps=s["attack_steps"],
                           alpha=pgd_step_size(tier.eps, s["attack_steps"]))
    model, log = finetune(base_model, run, x_tr, y_tr, tier=ft_tier, steps=s["steps"],
                          batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"])
    with torch_threads(tier.threads):   # the measurement on the fine-tune's threads too
        out = measure_toy_model(model, x_te[:EXPLORER_HELDOUT], y_te[:EXPLORER_HELDOUT],
                                tier=tier, seed=s["seed"], margin_steps=s["margin_steps"])
    switched = [st.get("switched", 0.0) for st in log]
    return {**out, "rule": run.rule, "value": run.value, "label": run.label,
            "switched_fraction": float(np.mean(switched)), "switched_per_step": switched,
            "steps": s["steps"], "settings": dict(s), "seconds": time.perf_counter() - t0}


def toy_move(base_model, world, *, rule: str = "ratio", value: float = 0.4, tier=None,
             steps: int = EXPLORER_STEPS, lr: float = EXPLORER_LR,
             batch_size: int = EXPLORER_BATCH, attack_steps: int = EXPLORER_ATTACK_STEPS,
             seed: int = 0, margin_steps: int = EXPLORER_MARGIN_STEPS) -> dict:
    """One move of the toy explorer: fine-tune a copy of ``base_model`` (AT) with SOVR at
    ``rule`` / ``value`` for ``steps`` steps (:func:`sovr_tutorial.train.finetune`, PGD-
    ``attack_steps`` at the tier's eps, learning rate ``lr``) on the training points of
    ``world``, then measure it on the first EXPLORER_HELDOUT test points
    (:func:`measure_toy_model`, margin attack PGD-``margin_steps``).

    ``base_model`` is never changed and the result depends only on the arguments; the same
    fine-tune under CE is :func:`toy_reference` (ratio 0 gives it exactly).
    Returns the measures plus ``rule``, ``value``, ``label``, ``switched_fraction`` (share of
    the fine-tuning samples that got OVR), ``switched_per_step``, ``steps``, ``settings``
    (what :func:`check_toy_reference` compares) and ``seconds``.
    """
    tier = tier if tier is not None else toy_tier()
    run = Run("sovr", rule=rule, value=value)
    settings = _toy_settings(tier, steps, lr, batch_size, attack_steps, seed, margin_steps)
    return _toy_finetune_and_measure(base_model, run, world, tier, settings)


def toy_reference(base_model, world, *, tier=None, steps: int = EXPLORER_STEPS,
                  lr: float = EXPLORER_LR, batch_size: int = EXPLORER_BATCH,
                  attack_steps: int = EXPLORER_ATTACK_STEPS, seed: int = 0,
                  margin_steps: int = EXPLORER_MARGIN_STEPS) -> dict:
    """The toy explorer's reference: ``base_model`` fine-tuned with plain CE on the
    PGD-``attack_steps`` points (more AT) exactly as :func:`toy_move` fine-tunes with SOVR
    (same start, steps, lr, batches, attack and seed: SOVR at ratio 0 *is* this loss),
    measured on the same held-out points with the same attacks.

    Returns the keys of :func:`toy_move` with ``rule`` "ratio", ``value`` 0.0,
    ``switched_fraction`` 0.0 and ``label`` :data:`TOY_CE_LABEL`. A pure function: the
    explorer computes it once and keeps it.
    """
    tier = tier if tier is not None else toy_tier()
    settings = _toy_settings(tier, steps, lr, batch_size, attack_steps, seed, margin_steps)
    info = _toy_finetune_and_measure(base_model, Run("at"), world, tier, settings)
    info.update(rule="ratio", value=0.0, label=TOY_CE_LABEL)
    return info


def check_toy_reference(reference, info: dict) -> dict:
    """``reference`` if it is a :func:`toy_reference` made with the settings of the move
    ``info``, else a ValueError saying what differs (TypeError if it is no such dict)."""
    if not isinstance(reference, dict) or "settings" not in reference:
        raise TypeError("reference must be the info dict of toy_reference(...), got "
                        f"{type(reference).__name__}")
    ref, mine = reference["settings"], info["settings"]
    differ = [f"{k} {ref.get(k)!r} != {v!r}" for k, v in mine.items() if ref.get(k) != v]
    if differ:
        raise ValueError("the CE reference was fine-tuned or measured with other settings "
                         "than the move (reference, move): " + ", ".join(differ))
    return reference
