"""Verdicts on the paper's claims 1-4 (docs/method.md), computed from the result files.

Two comparisons a reviewer accepts, both for two runs evaluated on the *same* test images:

* per image, an exact McNemar test: only the images on which the two runs disagree count,
  and under "no difference" each of them is a fair coin (``stats.mcnemar_p``). The course's runs
  of every seed use the same test images, so the discordant pairs of several seeds add up
  (a stratified, pooled test: it asks whether these trained models differ on these images);
* per seed, the seed-paired differences (runs of one seed share initialisation and batch
  order): their mean, standard deviation and a Student-t interval (``stats.paired_summary``).

``claim_verdicts(folder)`` is the one function that turns a results folder into verdicts;
``results/README.md`` and notebook 06 both print its output, refreshed by

    python -m sovr_tutorial.lab.verdicts results/cpu --write results/README.md

which replaces the text between the markers ``<!-- verdicts cpu:begin -->`` and
``<!-- verdicts cpu:end -->`` of each file (the folder's name: one file can hold the verdicts
of several tiers, e.g. ``results/small`` between ``<!-- verdicts small:begin -->`` and its end).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..files import write_between

from ..margins import kde_bandwidth, margin_peaks
from .provenance import hardware
from .results import is_collapsed, load_results, pgd_key, run_of
from ..runs import DEFAULT_SOVR_RATIO, Run
from .stats import mcnemar, mcnemar_p, paired_summary

#: two-sided significance level of every verdict
ALPHA = 0.05
IMPORTANCE_AWARE = ("gairat", "mart")


# ----------------------------------------------------------------------------- result files

def aa_correct(result: dict) -> np.ndarray:
    """(n_aa,) bool: the image survived every attack of the AutoAttack run."""
    return np.array([b is None for b in result["autoattack"]["broken_by"]])


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


def gap(result: dict) -> float:
    """PGD accuracy minus AutoAttack accuracy on the same images."""
    pgd = result.get("pgd_acc_on_aa_subset", result[pgd_key(result)])
    return pgd - result["autoattack"]["robust"]


def _stat(key, field, q):
    return lambda r: r["margins"][key][field][q]


def _hist_values(hist: dict) -> np.ndarray:
    edges = np.asarray(hist["hist_edges"], float)
    return np.repeat((edges[:-1] + edges[1:]) / 2, np.asarray(hist["hist_counts"], int))


def n_peaks(result: dict, key: str = "train_adv") -> int:
    """Peaks of a run's stored margins (:func:`margin_peaks`, the package's peak finder).

    Files since ``values`` was added store the margins themselves; older files only their
    histogram, read as one value per sample at its bin centre, with a bandwidth of at least
    one bin (narrower kernels would make every occupied bin a peak of its own).
    """
    m = result["margins"][key]
    if "values" in m:
        return len(margin_peaks(m["values"]))
    v = _hist_values(m)
    return len(margin_peaks(v, bandwidth=max(kde_bandwidth(v), float(np.diff(m["hist_edges"]).max()))))


# ----------------------------------------------------------------------------- verdicts

def _pct(x):
    return f"{100 * x:.1f}%"


def _decide(claimed_sign, p, seed_diffs):
    """Verdict from the pooled McNemar p (or, without it, the seed-level p) and the signs."""
    mean = float(np.mean(seed_diffs))
    signs = {int(np.sign(d)) for d in seed_diffs if d != 0}
    if p is None:
        return "not testable with one seed"
    if p < ALPHA and np.sign(mean) == claimed_sign:
        if -claimed_sign in signs:
            return f"mixed: detectable overall (p={p:.2g}) but not in every seed"
        return "holds"
    if p < ALPHA:
        return "does not hold (the opposite is detectable)"
    return f"not detectable at this scale (p={p:.2g})"


def _seed_text(diffs, unit, digits=1):
    s = paired_summary(diffs)
    f = lambda v: f"{v:+.{digits}f}"  # noqa: E731
    text = ", ".join(f(d) for d in diffs)
    if s["n"] < 2:
        return f"one seed: {text} {unit}"
    return (f"seed by seed {text} {unit} (mean {f(s['mean'])}, sd {s['sd']:.{digits}f}, 95% "
            f"t-interval [{f(s['low'])}, {f(s['high'])}], p={s['p']:.2g})")


def _compare_images(runs_a, runs_b, per_image, metric, claimed_sign):
    """Pooled McNemar over the common seeds, plus seed-paired differences of ``metric``."""
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        return None
    b = c = 0
    for s in seeds:
        t = mcnemar(per_image(runs_a[s]), per_image(runs_b[s]))
        b, c = b + t["b"], c + t["c"]
    p = mcnemar_p(b, c)
    diffs = [100 * (metric(runs_a[s]) - metric(runs_b[s])) for s in seeds]
    return {"seeds": seeds, "b": b, "c": c, "p": p, "diffs": diffs,
            "verdict": _decide(claimed_sign, p, diffs)}


def _compare_seeds(runs_a, runs_b, metric, claimed_sign, scale=1.0):
    """Seed-paired differences of ``metric`` alone (no per-image data): the t-test decides."""
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        return None
    diffs = [scale * (metric(runs_a[s]) - metric(runs_b[s])) for s in seeds]
    p = paired_summary(diffs)["p"]
    return {"seeds": seeds, "diffs": diffs, "p": p, "verdict": _decide(claimed_sign, p, diffs)}


def load_runs(folder) -> tuple[dict, list, dict]:
    """(runs by slug then seed, collapsed runs, the folder's provenance) from ``folder``."""
    every = load_results(folder, collapsed=True)
    runs, gone = {}, []
    for r in every:
        if is_collapsed(r):
            gone.append(r)
        else:
            runs.setdefault(run_of(r).slug, {})[r["seed"]] = r
    source = {}
    if every:
        r0, env = every[0], every[0].get("environment", {})
        source = {"folder": str(folder), "tier": r0["tier"]["name"],
                  "data": r0.get("data", {}).get("label", "?"),
                  "hardware": hardware(env),
                  "autoattack": f"AutoAttack {r0['autoattack'].get('label', '?')} on "
                                f"{r0['autoattack']['n']} test images",
                  "files": len(every)}
    return runs, gone, source


def claim_verdicts(folder, sovr: str | None = None) -> dict:
    """Verdicts on claims 1-4 of docs/method.md from the result files in ``folder``.

    sovr: the slug of the SOVR runs to judge (default: the default ratio, "sovr-r0.4").
    Returns {"source": provenance, "left_out": collapsed runs, "claims": [{"claim", "says",
    "verdict", "evidence": [str]}]}; every number in the evidence comes from the files.
    """
    sovr = sovr or Run("sovr", value=DEFAULT_SOVR_RATIO).slug
    runs, gone, source = load_runs(folder)
    names = {slug: Run.parse(slug).label for slug in runs}
    claims = []

    def missing(*slugs):
        return _missing(runs, folder, *slugs)

    # claim 1 ----------------------------------------------------------------------
    ev, parts = [], []
    if "at" in runs:
        ev.append(f"PGD-minus-AutoAttack gap on the same images, {names['at']}: "
                  + ", ".join(f"{100 * gap(r):+.1f}" for r in runs["at"].values()) + " points")
    for m in IMPORTANCE_AWARE:
        if m not in runs or "at" not in runs:
            parts.append(f"{Run.parse(m).label}: {missing(m, 'at')}")
            continue
        kind = {overrated(r)[1] for r in [*runs[m].values(), *runs["at"].values()]}
        per_image = ((lambda r: overrated(r)[0]) if len(kind) == 1 else
                     (lambda r: np.array([b not in ("clean", "apgd-ce", None)
                                          for b in r["autoattack"]["broken_by"]])))
        kind = kind.pop() if len(kind) == 1 else "survived APGD-CE, broken by a later attack"
        t = _compare_images(runs[m], runs["at"], per_image, gap, +1)
        parts.append(f"{names[m]}: **{t['verdict']}**")
        ev.append(f"{names[m]} minus {names['at']}, gap: {_seed_text(t['diffs'], 'points')}; "
                  f"images {kind}: {t['b']} only for {names[m]}, {t['c']} only for "
                  f"{names['at']} ({_seeds(t['seeds'])}, exact McNemar "
                  f"p={t['p']:.2g})")
    claims.append({"claim": 1, "says": "importance-aware methods (MART, GAIRAT) look strong "
                   "under PGD but are weaker under AutoAttack", "verdict": "; ".join(parts),
                   "evidence": ev})

    # claim 2 ----------------------------------------------------------------------
    ev, parts = [], []
    q95 = _stat("train_clean", "margin", "q95")
    fb75 = _stat("train_clean", "flip_budget", "q75")
    g50 = _stat("train_clean", "grad_norm_l1", "q50")
    for m in IMPORTANCE_AWARE:
        if m not in runs or "at" not in runs:
            parts.append(f"{Run.parse(m).label}: {missing(m, 'at')}")
            continue
        tm = _compare_seeds(runs[m], runs["at"], q95, -1)
        tf = _compare_seeds(runs[m], runs["at"], fb75, -1, scale=255.0)
        ratio = np.mean([g50(runs[m][s]) / g50(runs["at"][s]) for s in tm["seeds"]])
        parts.append(f"{names[m]}: easy-sample margins shrink: **{tm['verdict']}**; "
                     f"flip budgets shrink: **{tf['verdict']}**")
        ev.append(f"{names[m]} minus {names['at']}, 95th-percentile margin of clean training "
                  f"images (the easy samples): {_seed_text(tm['diffs'], 'logits', 2)}")
        ev.append(f"{names[m]} minus {names['at']}, upper-quartile flip budget of clean "
                  f"training images: {_seed_text(tf['diffs'], '/255')}; median L1 gradient "
                  f"norm of the margin: {ratio:.2f} times {names['at']}'s")
    claims.append({"claim": 2, "says": "they shrink the logit margins of the easy samples "
                   "while the input-gradient norms stay not small, so a small perturbation "
                   "flips the top logit", "verdict": "; ".join(parts), "evidence": ev})

    # claim 3 ----------------------------------------------------------------------
    ev = []
    if "at" in runs:
        kinds = (("train_clean", "clean"), ("train_adv", "PGD-20"))
        peaks = {m: [max(n_peaks(r, k) for k, _ in kinds) for r in runs[m].values()]
                 for m in ("at", *IMPORTANCE_AWARE) if m in runs}
        at_two = sum(p >= 2 for p in peaks["at"])
        n_at = len(peaks["at"])
        collapsed = all(p == 1 for m in IMPORTANCE_AWARE if m in peaks for p in peaks[m])
        if not any(m in peaks for m in IMPORTANCE_AWARE):   # half a claim is no verdict
            verdict = (f"{names['at']} has two peaks in {at_two} of {n_at} seeds; the collapse: "
                       + missing(*IMPORTANCE_AWARE))
        else:
            verdict = ("**holds**" if at_two == n_at and collapsed else
                       f"**does not hold at this scale**: {names['at']}'s training margins have "
                       f"one peak in {n_at - at_two} of {n_at} seeds" if at_two == 0 else
                       f"**mixed**: {names['at']} has two peaks in {at_two} of {n_at} seeds")
        for k, what in kinds:
            ev.append(f"peaks of the {what} margins of training images, per seed: "
                      + "; ".join(f"{names[m]} " + ", ".join(str(n_peaks(r, k))
                                                          for r in runs[m].values())
                                  for m in peaks))
        ev.append("the importance-aware runs' margins are narrower: 5th to 95th percentile "
                  "of the PGD-20 training margins " + "; ".join(
                      f"{names[m]} {np.mean([_spread(r) for r in runs[m].values()]):.2f}"
                      for m in peaks) + " logits (mean over seeds)")
    else:
        verdict = missing("at")
    claims.append({"claim": 3, "says": "under AT the margin histogram has two peaks (hard "
                   "samples near 0, easy ones far away); importance-aware methods collapse "
                   "it towards one peak near 0", "verdict": verdict, "evidence": ev})

    # claim 4 ----------------------------------------------------------------------
    claims.append(claim4(runs, names, sovr, lambda a, b: _compare_images(a, b, aa_correct, _aa, +1),
                         lambda *slugs: _missing(runs, folder, *slugs)))
    left_out = [f"{r['run']} (clean {_pct(r['clean_acc'])})" for r in gone]
    return {"source": source, "left_out": left_out, "claims": claims}


def _missing(runs, folder, *slugs):
    """What a verdict says when some runs have no result files, else None."""
    need = [s for s in slugs if s not in runs]
    return f"not measured: no result files for {', '.join(need)} in {folder}" if need else None


def _aa(result):
    return result["autoattack"]["robust"]


def claim4(runs, names, sovr, compare_aa, missing) -> dict:
    """Claim 4, SOVR against GAIRAT and MART first, then AT beside it, for any kind of files.

    compare_aa(sovr_runs, other_runs): the AutoAttack comparison of the files' kind
    (:func:`_compare_images` per image, or :func:`_compare_seeds` per seed); its result
    has ``b`` and ``c`` (images robust only for one side) when it compared images.
    missing(*slugs): the text for runs without files, else None.
    """
    ev, parts = [], []
    q25 = _stat("train_adv", "margin", "q25")
    for other in (*IMPORTANCE_AWARE, "at"):
        if missing(sovr, other):
            parts.append(f"vs {Run.parse(other).label}: {missing(sovr, other)}")
            continue
        t = compare_aa(runs[sovr], runs[other])
        tq = _compare_seeds(runs[sovr], runs[other], q25, +1)
        head = "beside it, vs" if other == "at" else "vs"
        parts.append(f"{head} {names[other]}: under AutoAttack **{t['verdict']}**, "
                     f"larger margins of the small-margin samples **{tq['verdict']}**")
        images = (f"; images robust only for {names[sovr]} {t['b']}, only for {names[other]} "
                  f"{t['c']} ({_seeds(t['seeds'])}, exact McNemar p={t['p']:.2g})" if "b" in t else "")
        ev.append(f"{names[sovr]} minus {names[other]} under AutoAttack: "
                  f"{_seed_text(t['diffs'], 'points')}{images}")
        ev.append(f"{names[sovr]} minus {names[other]}, lower-quartile adversarial margin of "
                  f"training images (the small-margin samples): "
                  f"{_seed_text(tq['diffs'], 'logits', 2)}")
    return {"claim": 4, "says": "SOVR raises the margins of the small-margin samples and is "
            "more robust under AutoAttack than the importance-aware methods (GAIRAT, MART); AT "
            "is reported beside it", "verdict": "; ".join(parts), "evidence": ev}


def _spread(result):
    m = result["margins"]["train_adv"]["margin"]
    return m["q95"] - m["q05"]


def _seeds(seeds):
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {','.join(map(str, seeds))} pooled"


def verdicts_markdown(result: dict) -> str:
    """The verdicts as a markdown block (what README.md, results/README.md and 06 print)."""
    src = result["source"]
    lines = []
    if src:
        lines.append(f"Verdicts computed by `{src.get('by', 'sovr_tutorial.lab.verdicts.claim_verdicts')}` from the "
                     f"{src['files']} result files in `{src['folder']}` ({src['tier']} tier, "
                     f"{src['data']}, {src['hardware']}, {src['autoattack']}). A verdict "
                     f"needs a difference detectable at the {ALPHA:g} level: the exact McNemar "
                     "test on the images two runs disagree on, pooled over the common seeds, "
                     "or, where only per-seed numbers exist, the seed-paired t-test "
                     "(docs/method.md).")
    if result["left_out"]:
        lines += ["", "Left out, collapsed to chance level: " + ", ".join(result["left_out"]) + "."]
    lines.append("")
    for c in result["claims"]:
        says = c["says"][0].upper() + c["says"][1:]
        lines.append(f"{c['claim']}. *{says}.* {c['verdict']}.")
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
