"""Verdicts on the paper's claims 1-4 from the toy world's result files.

The toy world (``python -m sovr_tutorial.lab.toy``) stores per-seed numbers on 2,048 test
points, not per-image bits, so every comparison here is the seed-paired t-test; the
verdict format, the decision rule and claim 4's loop are :mod:`sovr_tutorial.lab.verdicts`'.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..runs import DEFAULT_SOVR_RATIO, Run
from .provenance import hardware
from .verdicts import (IMPORTANCE_AWARE, _aa, _compare_seeds, _missing, _seed_text, _stat,
                       claim4)


def load_toy_runs(folder) -> dict:
    """The toy world's result files of ``folder`` (``python -m sovr_tutorial.lab.toy``), by slug
    then seed; the noise control and other JSON files are skipped."""
    runs = {}
    for path in sorted(Path(folder).glob("*.json")):
        r = json.loads(path.read_text())
        if isinstance(r, dict) and {"slug", "seed", "margin_attack_acc"} <= set(r):
            runs.setdefault(r["slug"], {})[r["seed"]] = r
    return runs


def toy_claim_verdicts(folder, sovr: str | None = None) -> dict:
    """Verdicts on claims 1-4 from the toy world's files, in :func:`claim_verdicts`' format.

    The toy files hold per-seed numbers on 2,048 test points, so every comparison is the
    seed-paired t-test of :func:`_compare_seeds`. Claim 1: PGD-20 accuracy minus accuracy under
    the margin attack (PGD-50 on the margin, 3 restarts; same points), importance-aware minus
    AT. Claim 2: 95th-percentile clean training margin and upper-quartile flip budget (input
    units of [0, 1]^2), importance-aware minus AT. Claim 3: peaks of the adversarial training
    margins (``train_peaks``). Claim 4: AutoAttack (custom) accuracy and the lower-quartile
    adversarial training margin, SOVR minus GAIRAT, MART and AT.
    """
    sovr = sovr or Run("sovr", value=DEFAULT_SOVR_RATIO).slug
    runs = load_toy_runs(folder)
    names = {slug: Run.parse(slug).label for slug in runs}
    source = {}
    if runs:
        r0 = next(iter(next(iter(runs.values())).values()))
        env = r0.get("environment", {})
        source = {"folder": str(folder), "tier": "toy", "by": "sovr_tutorial.lab.toy_verdicts.toy_claim_verdicts",
                  "data": "toy world (sovr_tutorial.toy), 2,048 test points",
                  "hardware": hardware(env),
                  "autoattack": f"AutoAttack {r0['autoattack'].get('label', '?')} on "
                                f"{r0['autoattack']['n']} test points",
                  "files": sum(len(v) for v in runs.values())}

    def missing(*slugs):
        return _missing(runs, folder, *slugs)

    claims = []
    ev, parts = [], []
    gap_of = lambda r: r["pgd_acc"] - r["margin_attack_acc"]  # noqa: E731
    loose = lambda r: r["pgd_point_acc"] - r["margin_attack_acc"]  # noqa: E731
    for m in IMPORTANCE_AWARE:
        if missing(m, "at"):
            parts.append(f"{Run.parse(m).label}: {missing(m, 'at')}")
            continue
        t = _compare_seeds(runs[m], runs["at"], gap_of, +1, scale=100.0)
        tl = _compare_seeds(runs[m], runs["at"], loose, +1, scale=100.0)
        parts.append(f"{names[m]}: **{t['verdict']}**")
        ev.append(f"{names[m]} minus {names['at']}, PGD-20 minus margin-attack accuracy: "
                  f"{_seed_text(t['diffs'], 'points')}; counting every point right at the PGD "
                  f"point (loose): {_seed_text(tl['diffs'], 'points')}")
    claims.append({"claim": 1, "says": "importance-aware methods look strong under PGD but "
                   "are weaker under a stronger attack", "verdict": "; ".join(parts), "evidence": ev})

    ev, parts = [], []
    for m in IMPORTANCE_AWARE:
        if missing(m, "at"):
            parts.append(f"{Run.parse(m).label}: {missing(m, 'at')}")
            continue
        tm = _compare_seeds(runs[m], runs["at"], _stat("train_clean", "margin", "q95"), -1)
        tf = _compare_seeds(runs[m], runs["at"], _stat("train_clean", "flip_budget", "q75"), -1)
        parts.append(f"{names[m]}: easy-sample margins shrink: **{tm['verdict']}**; "
                     f"flip budgets shrink: **{tf['verdict']}**")
        ev.append(f"{names[m]} minus {names['at']}, 95th-percentile clean training margin: "
                  f"{_seed_text(tm['diffs'], 'logits', 2)}; upper-quartile flip budget: "
                  f"{_seed_text(tf['diffs'], 'input units', 3)}")
    claims.append({"claim": 2, "says": "they shrink the logit margins of the easy samples so "
                   "a small perturbation flips the top logit", "verdict": "; ".join(parts),
                   "evidence": ev})

    if "at" in runs:
        peaks = {m: [len(r["train_peaks"]) for r in runs[m].values()]
                 for m in ("at", *IMPORTANCE_AWARE) if m in runs}
        at_two, n_at = sum(p >= 2 for p in peaks["at"]), len(peaks["at"])
        collapsed = [m for m in IMPORTANCE_AWARE if m in runs and np.mean(
            [r["train_margin_quantiles"]["q90"] - r["train_margin_quantiles"]["q10"]
             for r in runs[m].values()]) < 0.5]
        verdict = ("**holds**" if at_two == n_at and collapsed else
                   f"**mixed**: {names['at']} has two peaks in {at_two} of {n_at} seeds"
                   if at_two else f"**does not hold**: {names['at']} has one peak in all {n_at} seeds")
        verdict += ("; collapse to one peak near 0: " + (", ".join(names[m] for m in collapsed)
                                                         if collapsed else "none"))
        ev = ["peaks of the adversarial training margins, per seed: " + "; ".join(
                  f"{names[m]} " + ", ".join(map(str, p)) for m, p in peaks.items()),
              "q10 / q90 of the adversarial training margins (mean over seeds): " + "; ".join(
                  f"{names[m]} " + " / ".join(f"{np.mean([r['train_margin_quantiles'][q] for r in runs[m].values()]):+.2f}"
                                             for q in ("q10", "q90")) for m in peaks)]
    else:
        verdict, ev = missing("at"), []
    claims.append({"claim": 3, "says": "under AT the margin histogram has two peaks; "
                   "importance-aware methods collapse it towards one peak near 0",
                   "verdict": verdict, "evidence": ev})

    claims.append(claim4(runs, names, sovr,
                         lambda a, b: _compare_seeds(a, b, _aa, +1, scale=100.0), missing))
    return {"source": source, "left_out": [], "claims": claims}
