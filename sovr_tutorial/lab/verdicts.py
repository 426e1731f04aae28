"""Verdicts on the paper's claims 1-4 (docs/method.md), computed from the result files.

Two comparisons a reviewer accepts, both for two runs evaluated on the *same* test images:

* per image, an exact McNemar test: only the images on which the two runs disagree count,
  and under "no difference" each of them is a fair coin (``stats.mcnemar_p``). The course's runs
  of every seed use the same test images, so the discordant pairs of several seeds add up
  (a stratified, pooled test: it asks whether these trained models differ on these images);
* per seed, the seed-paired differences (runs of one seed share initialisation and batch
  order): their mean, standard deviation and a Student-t interval (``stats.paired_summary``).

``claim_verdicts(folder)`` is the one function that turns a results folder into verdicts,
for a CIFAR-10 tier and for the toy world alike (their runners write the same keys): the same
rule per claim, the test chosen by what the files hold (per-image bits: both tests; per-seed
numbers only: the t-test), runs collapsed to chance level set aside in both.
``results/README.md`` and notebook 07 print its output, refreshed by

    python -m sovr_tutorial.lab.verdicts results/cpu --write results/README.md

which replaces the text between the markers ``<!-- verdicts cpu:begin -->`` and
``<!-- verdicts cpu:end -->`` of each file (the folder's name: one file can hold the verdicts
of several tiers, e.g. ``results/small`` between ``<!-- verdicts small:begin -->`` and its end).

The rules themselves (the decision at ``ALPHA``, the wording where the pooled and the
seed-paired tests disagree, the paper's second peak: a peak counts only at a margin >= 0,
claim 3's collapse, when a tier has "easy samples", claim 4's comparison beside AT, a failed
AutoAttack) live in :mod:`sovr_tutorial.lab.rules`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..files import write_between
from ..runs import DEFAULT_SOVR_RATIO, Run
from .provenance import hardware
from .results import is_collapsed, load_runs, pgd_key
from .rules import (
    ALPHA,
    IMPORTANCE_AWARE,
    SECOND_PEAK_RULE,
    aa_failure,
    aa_correct,
    aa_failures,
    claim3,
    claim4,
    compare_autoattack,
    compare_seeds,
    hist_values,
    missing_runs,
    p_is,
    peak_positions,
    per_image_autoattack,
    seed_text,
    seeds_text,
    stat,
    upper_margins,
)
from .stats import mcnemar  # notebooks 04 and 05 import it from here

__all__ = ["ALPHA", "IMPORTANCE_AWARE", "aa_correct", "claim_verdicts", "gap", "judged_runs",
           "main", "markers", "mcnemar", "n_peaks", "overrated", "per_image_autoattack",
           "verdicts_markdown", "write_block"]
#: kept under its old name for sovr_tutorial.lab.scales
_hist_values = hist_values


# ----------------------------------------------------------------------------- result files

def overrated(result: dict):
    """(n_aa,) bool: images the cheaper attack calls robust and AutoAttack breaks, and its name.

    With per-image PGD bits (result files since per_image was added): right under PGD-20,
    wrong under AutoAttack. Older files: survived APGD-CE (a stronger CE attack than PGD)
    but fell to a later attack of the ensemble.
    """
    aa = result["autoattack"]
    bits = result.get("per_image", {}).get("pgd")
    if bits:
        pgd = np.array([ch == "1" for ch in bits[:len(aa["broken_by"])]])
        return pgd & ~aa_correct(result), f"right under PGD-{result['tier']['eval_steps']}, broken by AutoAttack"
    return (np.array([b not in ("clean", "apgd-ce", None) for b in aa["broken_by"]]),
            "survived APGD-CE, broken by a later attack")


def _overrated_images(runs_a: dict, runs_b: dict):
    """(per-image function, its words) for claim 1 over both sides' files: :func:`overrated`
    where every file is of one kind, else the older files' reading for all."""
    kinds = {overrated(r)[1] for r in [*runs_a.values(), *runs_b.values()]
             if "broken_by" in r.get("autoattack", {})}
    if len(kinds) == 1:
        return (lambda r: overrated(r)[0]), kinds.pop()
    return ((lambda r: np.array([b not in ("clean", "apgd-ce", None)
                                 for b in r["autoattack"]["broken_by"]])),
            "survived APGD-CE, broken by a later attack")


def gap(result: dict) -> float:
    """PGD accuracy minus AutoAttack accuracy on the same images."""
    pgd = result.get("pgd_acc_on_aa_subset", result[pgd_key(result)])
    return pgd - result["autoattack"]["robust"]


def n_peaks(result: dict, key: str = "train_adv") -> int:
    """Number of peaks of a run's stored margins (:func:`sovr_tutorial.lab.rules.peak_positions`,
    every peak whatever its margin; claim 3 counts only those of the paper's kind)."""
    return len(peak_positions(result, key))


# ----------------------------------------------------------------------------- verdicts

def _pct(x):
    return f"{100 * x:.1f}%"


def _is_toy(result: dict) -> bool:
    return result.get("tier", {}).get("name") == "toy"


def judged_runs(folder) -> tuple[dict, list, dict]:
    """(runs by slug then seed, collapsed runs, the folder's provenance) of ``folder``: the
    results of :func:`sovr_tutorial.lab.results.load_runs`, those that collapsed to chance
    level set apart (:func:`~sovr_tutorial.lab.results.is_collapsed`). A folder that does not
    exist has no runs."""
    every = load_runs(folder) if Path(folder).is_dir() else {}
    runs, gone = {}, []
    for slug, by_seed in every.items():
        for seed, r in by_seed.items():
            if is_collapsed(r):
                gone.append(r)
            else:
                runs.setdefault(slug, {})[seed] = r
    files = [r for by_seed in every.values() for r in by_seed.values()]
    source = {}
    if files:
        r0, env = files[0], files[0].get("environment", {})
        done = [r for r in files if not aa_failure(r)]
        failed = len(files) - len(done)
        items = "points" if _is_toy(r0) else "images"
        data = r0.get("data", {})
        label = data.get("label") or (f"{data.get('source', 'toy world')}, "
                                      f"{data.get('kind', 'overlap')} world, "
                                      f"{r0['tier'].get('n_test', '?')} test points")
        aa = (f"AutoAttack {done[0]['autoattack'].get('label', '?')} on "
              f"{done[0]['autoattack'].get('n', '?')} test {items}" if done else "AutoAttack")
        source = {"folder": str(folder), "tier": r0["tier"]["name"], "data": label,
                  "hardware": hardware(env),
                  "autoattack": aa + (f"; it failed in {failed} of {len(files)} runs" if failed else ""),
                  "files": len(files)}
    return runs, gone, source


def claim_verdicts(folder, sovr: str | None = None) -> dict:
    """Verdicts on claims 1-4 of docs/method.md from the result files in ``folder``: a
    CIFAR-10 tier's (``python -m sovr_tutorial.lab.experiments``) or the toy world's
    (``python -m sovr_tutorial.lab.toy``), judged by the same rule per claim.

    sovr: the slug of the SOVR runs to judge (default: the default ratio, "sovr-r0.4").
    Returns {"source": provenance, "left_out": collapsed runs, "claims": [{"claim", "says",
    "verdict", "evidence": [str]}]}; every number in the evidence comes from the files.
    Runs collapsed to chance level are set aside and named in ``left_out``. The test is
    chosen per comparison by what the two runs' files hold
    (:func:`sovr_tutorial.lab.rules.compare_autoattack`):
    where they have AutoAttack's verdict per image, the claims on AutoAttack (1 and 4)
    compare images (pooled exact McNemar, with the seed-paired t-test beside it); else the
    seed-paired t-test alone.

    Claim 1: PGD-minus-AutoAttack gap on the same images, importance-aware minus AT; per
    image, the images right under PGD and broken by AutoAttack. Claim 2: the 95th-percentile
    clean training margin ("the easy samples" only where AT has an easy-sample mode,
    :func:`sovr_tutorial.lab.rules.upper_margins`; else "the upper margins") and the
    upper-quartile flip budget, importance-aware minus AT, per seed. Claim 3:
    :func:`sovr_tutorial.lab.rules.claim3` (a peak counts only at a margin >= 0). Claim 4:
    :func:`sovr_tutorial.lab.rules.claim4` (SOVR vs GAIRAT and MART, each beside AT vs the
    same method, then SOVR vs AT).
    """
    sovr = sovr or Run("sovr", value=DEFAULT_SOVR_RATIO).slug
    runs, gone, source = judged_runs(folder)
    names = {slug: Run.parse(slug).label for slug in runs}
    toy = any(_is_toy(r) for by_seed in runs.values() for r in by_seed.values())
    # flip budgets in the input's units: 1/255 of an image's pixel scale; the toy plane's own
    budget_scale, budget_unit, budget_digits = (1.0, "input units", 3) if toy else (255.0, "/255", 1)
    claims = []

    def missing(*slugs):
        return missing_runs(runs, folder, *slugs)

    # claim 1 ----------------------------------------------------------------------
    ev, parts = [], []
    if "at" in runs and not aa_failures(runs, "at"):
        ev.append(f"PGD-minus-AutoAttack gap on the same images, {names['at']}: "
                  + ", ".join(f"{100 * gap(r):+.1f}" for r in runs["at"].values()) + " points")
    for m in IMPORTANCE_AWARE:
        why = missing(m, "at") or aa_failures(runs, m, "at")
        if why:
            parts.append(f"{Run.parse(m).label}: {why}")
            continue
        per_image, kind = _overrated_images(runs[m], runs["at"])
        t = compare_autoattack(runs[m], runs["at"], per_image, gap)
        images = (f"; images {kind}: {t['b']} only for {names[m]}, {t['c']} only for "
                  f"{names['at']} ({seeds_text(t['seeds'])}, exact McNemar {p_is(t['p'])})"
                  if "b" in t else "")
        parts.append(f"{names[m]}: {t['verdict']}")
        ev.append(f"{names[m]} minus {names['at']}, gap: {seed_text(t['diffs'], 'points')}{images}")
        if all("margin_attack_acc" in r for r in [*runs[m].values(), *runs["at"].values()]):
            tm = compare_seeds(runs[m], runs["at"],
                               lambda r: r[pgd_key(r)] - r["margin_attack_acc"], +1, scale=100.0)
            ev.append(f"{names[m]} minus {names['at']}, PGD minus the margin attack's accuracy "
                      f"(all test points): {seed_text(tm['diffs'], 'points')}")
    claims.append({"claim": 1, "says": "importance-aware methods (MART, GAIRAT) look strong "
                   "under PGD but are weaker under AutoAttack", "verdict": "; ".join(parts),
                   "evidence": ev})

    # claim 2 ----------------------------------------------------------------------
    ev, parts = [], []
    q95 = stat("train_clean", "margin", "q95")
    fb75 = stat("train_clean", "flip_budget", "q75")
    g50 = stat("train_clean", "grad_norm_l1", "q50")
    if "at" in runs:
        easy, words, line = upper_margins(runs["at"], names["at"])
        ev.append(line)
    for m in IMPORTANCE_AWARE:
        if missing(m, "at"):
            parts.append(f"{Run.parse(m).label}: {missing(m, 'at')}")
            continue
        tm = compare_seeds(runs[m], runs["at"], q95, -1)
        tf = compare_seeds(runs[m], runs["at"], fb75, -1, scale=budget_scale)
        parts.append(f"{names[m]}: {words} (95th percentile) shrink: {tm['verdict']}; "
                     f"flip budgets shrink: {tf['verdict']}")
        ev.append(f"{names[m]} minus {names['at']}, 95th-percentile margin of clean training "
                  f"{'points' if toy else 'images'} ({'the easy samples' if easy else 'the upper margins'}): "
                  f"{seed_text(tm['diffs'], 'logits', 2)}")
        line = (f"{names[m]} minus {names['at']}, upper-quartile flip budget of clean training "
                f"{'points' if toy else 'images'}: {seed_text(tf['diffs'], budget_unit, budget_digits)}")
        if all("grad_norm_l1" in r["margins"]["train_clean"]
               for s in tm["seeds"] for r in (runs[m][s], runs["at"][s])):
            ratio = np.mean([g50(runs[m][s]) / g50(runs["at"][s]) for s in tm["seeds"]])
            line += f"; median L1 gradient norm of the margin: {ratio:.2f} times {names['at']}'s"
        ev.append(line)
    claims.append({"claim": 2, "says": "they shrink the logit margins of the easy samples "
                   "while the input-gradient norms stay not small, so a small perturbation "
                   "flips the top logit", "verdict": "; ".join(parts), "evidence": ev})

    # claims 3 and 4 -----------------------------------------------------------------
    claims.append(claim3(runs, names, missing))
    claims.append(claim4(runs, names, sovr, missing))
    left_out = [f"{r['run']} (clean {_pct(r['clean_acc'])})" for r in gone]
    return {"source": source, "left_out": left_out, "claims": claims}


def verdicts_markdown(result: dict, *, evidence: bool = True) -> str:
    """The verdicts as a markdown block (what README.md, results/README.md and notebook 07
    print). ``evidence=False`` leaves out the numbers under each verdict (seed by seed, the
    image counts): the verdict lines alone, for a notebook that links to the full block."""
    src = result["source"]
    lines = []
    if src:
        lines.append("Verdicts computed by `sovr_tutorial.lab.verdicts.claim_verdicts` from the "
                     f"{src['files']} result files in `{src['folder']}` ({src['tier']} tier, "
                     f"{src['data']}, {src['hardware']}, {src['autoattack']}). A verdict "
                     f"needs a difference detectable at the {ALPHA:g} level: the exact McNemar "
                     "test on the images two runs disagree on, pooled over the common seeds, "
                     "or, where only per-seed numbers exist, the seed-paired t-test "
                     "(docs/method.md); where the two tests disagree, both are named. Claim 3: "
                     f"{SECOND_PEAK_RULE}.")
    if result["left_out"]:
        lines += ["", "Left out, collapsed to chance level: " + ", ".join(result["left_out"]) + "."]
    lines.append("")
    for c in result["claims"]:
        says = c["says"][0].upper() + c["says"][1:]
        lines.append(f"{c['claim']}. *{says}.* {c['verdict']}.")
        if evidence:
            lines += [f"   - {e}" for e in c["evidence"]]
    return "\n".join(lines).rstrip() + "\n"


def markers(folder) -> tuple[str, str]:
    """The (begin, end) markers of the verdict block of a results folder, by its name."""
    name = Path(folder).name
    return f"<!-- verdicts {name}:begin -->", f"<!-- verdicts {name}:end -->"


def write_block(path, block: str, folder="results/cpu") -> bool:
    """Replace the text between the verdict markers of ``folder`` in ``path``; True if it
    changed."""
    return write_between(path, *markers(folder), block)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sovr_tutorial.lab.verdicts",
                                description="Verdicts on the paper's claims from a results folder.")
    p.add_argument("folder", help="a results folder, e.g. results/cpu")
    p.add_argument("--sovr", default=None, help="slug of the SOVR runs (default sovr-r0.4)")
    p.add_argument("--write", nargs="*", default=[], metavar="FILE",
                   help="markdown files whose verdict block (between the markers) to refresh")
    args = p.parse_args(argv)
    block = verdicts_markdown(claim_verdicts(args.folder, sovr=args.sovr))
    if not args.write:
        print(block, end="")
    for f in args.write:
        print(f"{f}: {'updated' if write_block(f, block, args.folder) else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
