"""The toy world: six classes in the plane, where the course's mechanisms show in seconds.

Each class is a tight core around a point on a circle plus a fraction of *wide* points
that spill into the neighbouring classes: the easy and the hard samples of the paper.
The points are scaled into [0, 1]^2, so the package's own attacks (L-inf, eps in those
units) work on them unchanged, and the one training loop (:func:`sovr_tutorial.train.fit`)
trains the MLP of the ``toy`` tier with every method.

    python -m sovr_tutorial.lab.toy --methods at,trades,mart,gairat,sovr --seeds 0,1,2,3,4 --out results/toy

writes one JSON per (method, seed), under the CIFAR-10 runner's keys where the quantity is
the same (``clean_acc``, ``pgd20_ce_acc``, ``robust_train_acc``, ``per_image``, ``margins``,
``run``, ``label``, ``options``; read back by :func:`sovr_tutorial.lab.results.load_results`):
clean accuracy, PGD-20 (CE) accuracy, accuracy under a
stronger attack on the margin (PGD-50 on the margin loss, 3 restarts) and under AutoAttack
(custom: APGD-CE + APGD-T), the adversarial margins of the training and test points
(quantiles, histogram, peaks, gradient norms, flip budgets), the push of CE and OVR on the
margin, the decision regions on a grid, and the seconds it took. ``--world
two-populations`` trains in the world built for claim 3 instead (easy cores and hard points
just inside the boundaries, :mod:`sovr_tutorial.toy.world`; results/toy-two by default;
each file's ``data.kind`` says its world). ``--plot`` draws the
figures from those files. A (method, seed) whose file exists is skipped, so a killed
command restarted as it was continues where it stopped.

The world itself is :mod:`sovr_tutorial.toy.world` (the points) and
:mod:`sovr_tutorial.toy.model` (training, measuring and moving a model); the figures are
:mod:`sovr_tutorial.figures.toy`.
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

from ..evaluate import adversarial_margins
from ..checks import check_choice, check_number
from ..devices import pick_device, resolve_precision
from ..figures import toy as toy_plots
from ..figures.toy import paired_margin_shift
from ..files import atomic_write_text
from ..paths import results_dir
from ..runs import as_run
from ..tiers import parse_overrides
from ..toy.model import evaluate_toy, train_toy
from ..toy.world import (
    CORE_STD,
    DEFAULT_WORLD,
    HARD_EPS,
    HARD_FRACTION,
    HARD_GAP,
    HARD_SPREAD,
    NUM_CLASSES,
    RADIUS,
    SCALE,
    WIDE_FRACTION,
    WIDE_STD,
    WORLD_KINDS,
    eps_in_data_units,
    make_world,
    toy_tier,
)
from ..train import set_seed, train
from .experiments import command_line, environment
from .results import load_results, pgd_key, run_of

# --------------------------------------------------------------------------- runs

def results_folder() -> Path:
    """The toy world's result files: ``results/toy``."""
    return results_dir() / "toy"


#: each world's results folder, under results/
WORLD_FOLDERS = {"overlap": "toy", "two-populations": "toy-two"}


def world_results_folder(kind: str = DEFAULT_WORLD) -> Path:
    """The result files of the world ``kind``: ``results/toy`` (overlap, the same as
    :func:`results_folder`) or ``results/toy-two`` (two-populations)."""
    return results_dir() / WORLD_FOLDERS[check_choice("kind", kind, WORLD_KINDS)]


def _world_info(tier, seed, kind: str = DEFAULT_WORLD) -> dict:
    info = {"source": "toy world (sovr_tutorial.toy)", "kind": kind,
            "num_classes": NUM_CLASSES, "radius": RADIUS, "core_std": CORE_STD}
    if kind == "two-populations":
        info.update({"hard_fraction": HARD_FRACTION, "hard_eps": HARD_EPS,
                     "hard_gap": list(HARD_GAP), "hard_spread": HARD_SPREAD,
                     "wide_means": "hard: beside a boundary line, eps-box on its side"})
    else:
        info.update({"wide_std": WIDE_STD, "wide_fraction": WIDE_FRACTION})
    return {**info, "scale": SCALE,
            "eps_data_units": eps_in_data_units(tier.eps), "n_train": tier.n_train,
            "n_test": tier.n_test, "train_seed": 2 * seed, "test_seed": 2 * seed + 1}


def result_world(result: dict) -> str:
    """The world a result file was made in (files from before the worlds had kinds: overlap)."""
    return result.get("data", {}).get("kind", DEFAULT_WORLD)


def run_toy(run, seed: int = 0, tier=None, *, device=None, out_dir=None,
            command: str = "", kind: str = DEFAULT_WORLD) -> dict:
    """Train and measure ``run`` at ``seed`` in the toy world ``kind`` (WORLD_KINDS);
    returns the result dict.

    With ``out_dir`` the result goes to ``out_dir/<run name>.json`` (``at-s0.json``,
    ``sovr-r0.4-s1.json``), and a run whose file exists is read back, not trained again
    (a file of another world is refused: ValueError).
    """
    run, tier = as_run(run), tier if tier is not None else toy_tier()
    kind = check_choice("kind", kind, WORLD_KINDS)
    path = None if out_dir is None else Path(out_dir) / f"{run.name(seed)}.json"
    if path is not None and path.exists():
        old = json.loads(path.read_text())
        if result_world(old) != kind:
            raise ValueError(f"{path} holds a run of the {result_world(old)!r} world, not "
                             f"{kind!r}: use another --out")
        return old
    t0 = time.perf_counter()
    model, history, world, seconds = train_toy(run, seed, tier, device=device, kind=kind)
    switched = [h["switched"] for h in history if "switched" in h]
    result = {"run": run.name(seed), "method": run.method, "label": run.label,
              "options": run.options(), "seed": seed, "tier": dataclasses.asdict(tier),
              "precision": resolve_precision(tier.precision, pick_device(device)),
              "data": _world_info(tier, seed, kind),
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


# The noise control of section 4: AT trained again on the same points with another
# initialisation and batch order (training seed CONTROL_OFFSET + seed). Its margins minus
# AT's, point by point, show how much two equally trained models differ by chance (and
# any regression to the mean of the binned comparison).
CONTROL_FILE = "control_at_reinit.json"
CONTROL_OFFSET = 1000


def run_control(seeds, tier=None, *, out_dir=None, device=None,
                kind: str = DEFAULT_WORLD) -> dict:
    """Train the noise control for ``seeds`` (see CONTROL_FILE) in the world ``kind``; with
    ``out_dir`` written to ``out_dir/CONTROL_FILE`` (read back if it exists for the same
    seeds and world)."""
    tier = tier if tier is not None else toy_tier()
    kind = check_choice("kind", kind, WORLD_KINDS)
    seeds = [check_number("seed", s, low=0, integer=True) for s in seeds]
    path = None if out_dir is None else Path(out_dir) / CONTROL_FILE
    if path is not None and path.exists():
        old = json.loads(path.read_text())
        if old["seeds"] == seeds and old.get("kind", DEFAULT_WORLD) == kind:
            return old
    t0 = time.perf_counter()
    values = {}
    for seed in seeds:
        (x, y, _), _ = make_world(seed, n_train=tier.n_train, n_test=tier.n_test, kind=kind)
        model, _ = train("at", x, y, tier=tier, seed=CONTROL_OFFSET + seed,
                         device=pick_device(device), progress=False)
        m = adversarial_margins(model, x, y, eps=tier.eps, steps=tier.eval_steps,
                                step_size=tier.eval_step_size, seed=seed, batch_size=len(y),
                                gradients=False)["margin"]
        values[seed] = np.round(m.astype(np.float64), 3).tolist()
    control = {"what": "AT retrained on the same points with training seed offset + seed",
               "offset": CONTROL_OFFSET, "seeds": seeds, "kind": kind, "tier": dataclasses.asdict(tier),
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
    slugs = [run_of(r).slug for r in results]
    at_runs = [r for r, s in zip(results, slugs) if s == "at"]
    if not at_runs:
        raise ValueError("switch_effect needs the AT runs (the reference)")
    edges = [g[1] for g in SHIFT_GROUPS] + [SHIFT_GROUPS[-1][2]]
    out = {"shift": {}, "push": {}, "switched_wrong": {}}
    compared = {slug: [r for r, s in zip(results, slugs) if s == slug]
                for slug in sorted({s for r, s in zip(results, slugs) if r["method"] == "sovr"})}
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


# --------------------------------------------------------------------------- figures

def plot_toy_results(out_dir) -> list:
    """Draw the toy figures from the result files of ``out_dir`` into it; returns the paths.

    toy_regions.png (decision regions, seed 0), toy_margins.png (margin histograms over all
    seeds), toy_accuracy.png (clean / PGD / margin attack / AA, mean +- std over seeds),
    toy_switch.png (section 4: where SOVR moves the margins, and OVR's push against CE's).
    """

    out_dir = Path(out_dir)
    results = load_results(out_dir, collapsed=True)
    if not results:
        raise FileNotFoundError(f"no toy results in {out_dir}")
    seeds = sorted({r["seed"] for r in results})
    first = [r for r in results if r["seed"] == seeds[0]]
    tier = first[0]["tier"]
    points = make_world(seeds[0], n_train=tier["n_train"], n_test=tier["n_test"],
                        kind=result_world(first[0]))[0]
    figures = {
        "toy_regions.png": toy_plots.plot_toy_regions(first, points[0], eps=tier["eps"]),
        "toy_margins.png": toy_plots.plot_toy_margins(results),
        "toy_accuracy.png": toy_plots.plot_toy_accuracy(results),
        "toy_switch.png": toy_plots.plot_toy_switch(results, control=load_control(out_dir)),
    }
    paths = []
    for name, fig in figures.items():
        path = out_dir / name
        fig.savefig(path, dpi=80, bbox_inches="tight")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.lab.toy",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="at,trades,mart,gairat,sovr",
                   help="comma-separated runs: a method or a SOVR slug: sovr-r0.2 (ratio), "
                   "sovr-t1 (threshold), sovr-b0.4 (boundary) [sovr = sovr-r0.4]")
    p.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2,3,4")
    p.add_argument("--world", default=DEFAULT_WORLD, choices=WORLD_KINDS,
                   help="the toy world: overlap (claims 1 and 2) or two-populations (claim 3: "
                   "easy cores and hard points just inside the boundaries) [%(default)s]")
    p.add_argument("--out", default=None,
                   help=f"results folder (default: {results_folder()} for the overlap world, "
                   f"{world_results_folder('two-populations')} for two-populations)")
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
    if args.out is None:
        args.out = str(world_results_folder(args.world))
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
    command = command_line("sovr_tutorial.lab.toy", argv)
    out_dir = Path(args.out)
    set_seed(0)
    t0 = time.perf_counter()
    for run in args.methods:
        for seed in args.seeds:
            done = (out_dir / f"{run.name(seed)}.json").exists()
            try:
                res = run_toy(run, seed, args.tier, device=args.device, out_dir=out_dir,
                              command=command, kind=args.world)
            except ValueError as e:   # a finished file of another world in --out
                print(f"error: {e}", file=sys.stderr)
                return 2
            aa = res["autoattack"].get("robust", float("nan"))
            q = res["train_margin_quantiles"]
            print(f"{run.name(seed):>16}{' (done before, skipped)' if done else ''}: clean "
                  f"{res['clean_acc']:.3f}  PGD-{res['tier']['eval_steps']} {res[pgd_key(res)]:.3f}"
                  f"  margin attack {res['margin_attack_acc']:.3f}  AA {aa:.3f}  train margins "
                  f"q10/q50/q90 {q['q10']:+.2f}/{q['q50']:+.2f}/{q['q90']:+.2f}  peaks "
                  f"{len(res['train_peaks'])}  {res['seconds']:.1f} s", flush=True)
    if args.control:
        control = run_control(args.seeds, args.tier, out_dir=out_dir, device=args.device,
                              kind=args.world)
        print(f"noise control (AT, other initialisation), seeds {control['seeds']}: "
              f"{control['seconds']:.1f} s", flush=True)
    print(f"total {time.perf_counter() - t0:.1f} s", flush=True)
    if args.plot:
        for path in plot_toy_results(out_dir):
            print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
