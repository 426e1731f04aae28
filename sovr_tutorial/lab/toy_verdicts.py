"""Verdicts on the paper's claims 1-4 from the toy world's result files.

The toy world (``python -m sovr_tutorial.lab.toy``) writes the CIFAR-10 runner's keys
(read by the same :func:`sovr_tutorial.lab.results.load_runs`); its verdicts compare per-seed
numbers on 2,048 test points, so every comparison here is the seed-paired t-test. The
verdict format and every rule are :mod:`sovr_tutorial.lab.rules`', shared with the CIFAR-10
engine :mod:`sovr_tutorial.lab.verdicts`: claim 3 by :func:`~sovr_tutorial.lab.rules.claim3`
(a peak counts towards the paper's two peaks only at a margin >= 0, so the toy AT's bump of
misclassified points near -2 is not a second peak), claim 4 by
:func:`~sovr_tutorial.lab.rules.claim4` (a run whose AutoAttack failed makes it "not
measured: AutoAttack failed (...)").
"""
from __future__ import annotations

from pathlib import Path

from ..runs import DEFAULT_SOVR_RATIO, Run, pgd_key
from .provenance import hardware
from .results import load_runs
from .rules import (
    IMPORTANCE_AWARE,
    aa_failure,
    aa_robust,
    claim3,
    claim4,
    compare_seeds,
    missing_runs,
    seed_text,
    stat,
    upper_margins,
)


def toy_claim_verdicts(folder, sovr: str | None = None) -> dict:
    """Verdicts on claims 1-4 from the toy world's files, in :func:`claim_verdicts`' format.

    The toy files hold per-seed numbers on 2,048 test points, so every comparison is the
    seed-paired t-test (:func:`sovr_tutorial.lab.rules.compare_seeds`). Claim 1: PGD-20 accuracy
    minus accuracy under the margin attack (PGD-50 on the margin, 3 restarts; same points),
    importance-aware minus AT. Claim 2: 95th-percentile clean training margin ("the easy
    samples" only where AT has an easy-sample mode, :func:`sovr_tutorial.lab.rules.upper_margins`)
    and upper-quartile flip budget (input units of [0, 1]^2), importance-aware minus AT.
    Claim 3: :func:`sovr_tutorial.lab.rules.claim3`. Claim 4: AutoAttack (custom) accuracy
    and the lower-quartile adversarial training margin, SOVR minus GAIRAT and MART beside AT
    minus the same, then SOVR minus AT (:func:`sovr_tutorial.lab.rules.claim4`).
    """
    sovr = sovr or Run("sovr", value=DEFAULT_SOVR_RATIO).slug
    runs = load_runs(folder) if Path(folder).is_dir() else {}
    names = {slug: Run.parse(slug).label for slug in runs}
    source = {}
    if runs:
        every = [r for by_seed in runs.values() for r in by_seed.values()]
        r0, done = every[0], [r for r in every if not aa_failure(r)]
        failed = len(every) - len(done)
        aa = (f"AutoAttack {done[0]['autoattack'].get('label', '?')} on "
              f"{done[0]['autoattack'].get('n', '?')} test points" if done else "AutoAttack")
        source = {"folder": str(folder), "tier": "toy", "by": "sovr_tutorial.lab.toy_verdicts.toy_claim_verdicts",
                  "data": "toy world (sovr_tutorial.toy), 2,048 test points",
                  "hardware": hardware(r0.get("environment", {})),
                  "autoattack": aa + (f"; it failed in {failed} of {len(every)} runs" if failed else ""),
                  "files": len(every)}

    def missing(*slugs):
        return missing_runs(runs, folder, *slugs)

    claims = []
    ev, parts = [], []
    gap_of = lambda r: r[pgd_key(r)] - r["margin_attack_acc"]
    loose = lambda r: r["pgd_point_acc"] - r["margin_attack_acc"]
    for m in IMPORTANCE_AWARE:
        if missing(m, "at"):
            parts.append(f"{Run.parse(m).label}: {missing(m, 'at')}")
            continue
        t = compare_seeds(runs[m], runs["at"], gap_of, +1, scale=100.0)
        tl = compare_seeds(runs[m], runs["at"], loose, +1, scale=100.0)
        parts.append(f"{names[m]}: {t['verdict']}")
        ev.append(f"{names[m]} minus {names['at']}, PGD-20 minus margin-attack accuracy: "
                  f"{seed_text(t['diffs'], 'points')}; counting every point right at the PGD "
                  f"point (loose): {seed_text(tl['diffs'], 'points')}")
    claims.append({"claim": 1, "says": "importance-aware methods look strong under PGD but "
                   "are weaker under a stronger attack", "verdict": "; ".join(parts), "evidence": ev})

    ev, parts = [], []
    if "at" in runs:
        easy, words, line = upper_margins(runs["at"], names["at"])
        ev.append(line)
    for m in IMPORTANCE_AWARE:
        if missing(m, "at"):
            parts.append(f"{Run.parse(m).label}: {missing(m, 'at')}")
            continue
        tm = compare_seeds(runs[m], runs["at"], stat("train_clean", "margin", "q95"), -1)
        tf = compare_seeds(runs[m], runs["at"], stat("train_clean", "flip_budget", "q75"), -1)
        parts.append(f"{names[m]}: {words} (95th percentile) shrink: {tm['verdict']}; "
                     f"flip budgets shrink: {tf['verdict']}")
        ev.append(f"{names[m]} minus {names['at']}, 95th-percentile clean training margin "
                  f"({'the easy samples' if easy else 'the upper margins'}): "
                  f"{seed_text(tm['diffs'], 'logits', 2)}; upper-quartile flip budget: "
                  f"{seed_text(tf['diffs'], 'input units', 3)}")
    claims.append({"claim": 2, "says": "they shrink the logit margins of the easy samples so "
                   "a small perturbation flips the top logit", "verdict": "; ".join(parts),
                   "evidence": ev})

    claims.append(claim3(runs, names, missing))
    claims.append(claim4(runs, names, sovr,
                         lambda a, b: compare_seeds(a, b, aa_robust, +1, scale=100.0), missing))
    return {"source": source, "left_out": [], "claims": claims}
