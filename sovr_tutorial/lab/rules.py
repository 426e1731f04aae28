"""The rules of the verdicts, in one place: :func:`sovr_tutorial.lab.verdicts.claim_verdicts`
judges the paper's claims with these functions for every scale (the toy world and the
CIFAR-10 tiers), so a rule cannot differ between the scales.

* **Decisions** (:func:`decide`, :func:`verdict_text`): a difference counts when it is
  detectable at the ``ALPHA`` level in the claimed direction. Two tests exist where the files
  hold per-image bits: the pooled exact McNemar test on the images two runs disagree on
  (seeds pooled) and the seed-paired t-test on the per-seed differences. The pooled test
  decides; where the two disagree the verdict names both (e.g. "holds on pooled images
  (p=2.2e-05), not significant across seeds (p=0.082, 3 seeds)"), because the pooled test
  asks about *these trained models on these images* and the seed test about the *method*.
* **The paper's second peak** (:func:`paper_peaks`, :func:`has_paper_peaks`): claim 3's two
  peaks are "hard samples near 0, easy samples far away", both groups classified correctly
  at the attack point. So a peak of a margin density (:func:`margin_peaks`) counts towards
  the paper's two peaks only when it lies at a margin >= 0 (to within the density's
  bandwidth, so that a hard-sample peak centred on the boundary counts); a bump of points
  misclassified at the PGD point (margin < 0, e.g. the toy world's bump near -2) is
  reported, not counted.
  A run has the paper's two peaks when its clean or its PGD training margins have two such
  peaks.
* **Claim 3** (:func:`claim3`): the same test at every scale. AT's half: AT has the paper's
  two peaks in every seed. The collapse half: an importance-aware method collapses when in
  every seed it has not the paper's two peaks, the 5th-95th percentile width of its PGD
  training margins is at most ``COLLAPSE_WIDTH`` of AT's (same seeds), and its highest peak
  lies nearer 0 than AT's median PGD training margin.
* **Easy samples** (:func:`easy_mode`, :func:`upper_margins`): claim 2's "easy samples" are
  the group of the second peak. A tier is said to have them when every AT seed's clean
  training margin density has a mode at a positive margin that stands apart from the
  boundary: the density at margin 0 is at most ``valley`` (0.7, :func:`margin_peaks`'
  separation of two peaks) times the mode's height. Elsewhere the 95th percentile is worded
  "the upper margins", not "the easy samples".
* **AutoAttack failures** (:func:`aa_failure`): a run whose AutoAttack failed or was skipped
  makes every verdict that needs AutoAttack read "not measured: AutoAttack failed (...)".
"""
from __future__ import annotations

import numpy as np
from scipy.stats import gaussian_kde

from ..margins import kde_bandwidth, margin_peaks
from ..runs import Run
from .stats import mcnemar, mcnemar_p, paired_summary

#: two-sided significance level of every verdict
ALPHA = 0.05
IMPORTANCE_AWARE = ("gairat", "mart")
#: the training margins whose peaks claim 3 counts: (result key, words)
PEAK_KINDS = (("train_clean", "clean"), ("train_adv", "PGD"))
#: a collapsed method's 5th-95th percentile width of PGD training margins, at most this of AT's
COLLAPSE_WIDTH = 0.5
#: an easy-sample mode: density at margin 0 at most this times the mode's height
EASY_VALLEY = 0.7
#: the rule in words, for verdicts and docstrings
SECOND_PEAK_RULE = ("a peak counts towards the paper's two peaks only at a margin >= 0, to "
                    "within the density's bandwidth (right at the attack point: hard samples "
                    "near 0, easy ones far away); peaks of misclassified points (margin < 0) "
                    "are not counted")


# ----------------------------------------------------------------------------- result fields

def stat(key: str, field: str, q: str):
    """A function of a result: its stored quantile ``q`` of ``field`` of margins ``key``."""
    return lambda r: r["margins"][key][field][q]


def spread(result: dict) -> float:
    """5th to 95th percentile width of the PGD (adversarial) training margins (logits)."""
    m = result["margins"]["train_adv"]["margin"]
    return m["q95"] - m["q05"]


def hist_values(hist: dict) -> np.ndarray:
    """A stored histogram read as one value per sample at its bin centre."""
    edges = np.asarray(hist["hist_edges"], float)
    return np.repeat((edges[:-1] + edges[1:]) / 2, np.asarray(hist["hist_counts"], int))


def margin_sample(result: dict, key: str) -> tuple[np.ndarray, float]:
    """(margins, KDE bandwidth) of a run's stored margins ``key``.

    Files since ``values`` was added store the margins themselves (Silverman's bandwidth);
    older files only their histogram, read as one value per sample at its bin centre, with a
    bandwidth of at least one bin (narrower kernels would make every occupied bin a peak).
    """
    m = result["margins"][key]
    if "values" in m:
        v = np.asarray(m["values"], float)
        return v, kde_bandwidth(v)
    v = hist_values(m)
    return v, max(kde_bandwidth(v), float(np.diff(m["hist_edges"]).max()))


def peak_positions(result: dict, key: str = "train_adv") -> list:
    """Peaks of a run's stored margins ``key`` (:func:`margin_peaks`), highest first."""
    v, h = margin_sample(result, key)
    return margin_peaks(v, bandwidth=h)


def paper_peaks(peaks, tolerance: float = 0.0) -> list:
    """The peaks of the paper's kind among ``peaks``: those at a margin >= -``tolerance``
    (:data:`SECOND_PEAK_RULE`; :func:`has_paper_peaks` passes the density's bandwidth)."""
    return [p for p in peaks if p >= -tolerance]


def counted_peaks(result: dict, key: str) -> list:
    """The peaks of a run's margins ``key`` that count towards the paper's two peaks."""
    v, h = margin_sample(result, key)
    return paper_peaks(margin_peaks(v, bandwidth=h), tolerance=h)


def has_paper_peaks(result: dict) -> bool:
    """True when the run's clean or PGD training margins have two peaks of the paper's kind."""
    return any(len(counted_peaks(result, k)) >= 2 for k, _ in PEAK_KINDS)


def easy_mode(result: dict, key: str = "train_clean") -> tuple[float, float]:
    """(position of the highest peak, density at margin 0 over the density at that peak) of
    the run's margins ``key``: a mode at a positive margin with a ratio <= ``EASY_VALLEY``
    stands apart from the decision boundary (the easy samples)."""
    v, h = margin_sample(result, key)
    peak = margin_peaks(v, bandwidth=h)[0]
    if np.ptp(v) == 0:
        return peak, float(peak == 0)
    kde = gaussian_kde(v, bw_method=h / v.std(ddof=1))
    return peak, float(kde(0.0)[0] / kde(peak)[0])


def upper_margins(at_runs: dict, name: str = "AT") -> tuple[bool, str, str]:
    """(has easy samples, what claim 2's 95th percentile is called, evidence) from the AT
    runs of a tier (:func:`easy_mode` of every seed's clean training margins)."""
    modes = [easy_mode(r) for r in at_runs.values()]
    easy = bool(modes) and all(p > 0 and ratio <= EASY_VALLEY for p, ratio in modes)
    words = ("easy-sample margins" if easy else "upper margins")
    evidence = (f"{name}'s clean training margins, per seed: highest peak at "
                + ", ".join(f"{p:+.2f}" for p, _ in modes) + " logits, density at margin 0 "
                + ", ".join(f"{r:.2f}" for _, r in modes) + " of its height; "
                + (f"a mode apart from the boundary (at most {EASY_VALLEY:g}) in every seed, so "
                   "the 95th percentile is read as the easy samples" if easy else
                   f"no mode apart from the boundary (that needs at most {EASY_VALLEY:g} in every "
                   "seed), so the 95th percentile is read as the upper margins, not as a group "
                   "of easy samples"))
    return easy, words, evidence


def aa_correct(result: dict) -> np.ndarray:
    """(n_aa,) bool: the image survived every attack of the AutoAttack run."""
    return np.array([b is None for b in result["autoattack"]["broken_by"]])


def aa_robust(result: dict) -> float:
    """AutoAttack robust accuracy of a run (the run's AutoAttack must have succeeded)."""
    return result["autoattack"]["robust"]


def aa_failure(result: dict) -> str | None:
    """Why a run has no AutoAttack accuracy (failed, with the error, or skipped), else None."""
    aa = result.get("autoattack")
    if isinstance(aa, dict) and "robust" in aa:
        return None
    aa = aa if isinstance(aa, dict) else {}
    if "skipped" in aa:
        return f"skipped: {aa['skipped']}"
    return str(aa.get("error", "no AutoAttack entry"))


def aa_failures(runs: dict, *slugs) -> str | None:
    """"not measured: AutoAttack failed (...)" when a run of ``slugs`` has no AutoAttack."""
    bad = [f"{slug} seed {s}: {aa_failure(r)}" for slug in slugs for s, r in
           sorted(runs.get(slug, {}).items()) if aa_failure(r)]
    return f"not measured: AutoAttack failed ({'; '.join(bad)})" if bad else None


def missing_runs(runs: dict, folder, *slugs) -> str | None:
    """What a verdict says when some runs have no result files, else None."""
    need = [s for s in slugs if s not in runs]
    return f"not measured: no result files for {', '.join(need)} in {folder}" if need else None


# ----------------------------------------------------------------------------- tests

#: below this a p-value is printed as a bound: double precision cannot tell such p apart
#: (five toy seeds of 512 points pool to p = 1e-300 and below)
P_FLOOR = 1e-16


def p_is(p: float) -> str:
    """"p=0.021", or "p<1e-16" below :data:`P_FLOOR`."""
    return f"p<{P_FLOOR:g}" if p < P_FLOOR else f"p={p:.2g}"


def _direction(claimed_sign, p, sign):
    """"holds", "opposite" or "none" for a p-value and the observed sign."""
    if p is None:
        return None
    if p < ALPHA:
        return "holds" if sign == claimed_sign else "opposite"
    return "none"


def decide(claimed_sign, p, seed_diffs) -> str:
    """Verdict word from one p-value (pooled McNemar, or the seed-level t-test) and the signs
    of the seed-paired differences (the direction is their mean's)."""
    mean = float(np.mean(seed_diffs))
    signs = {int(np.sign(d)) for d in seed_diffs if d != 0}
    out = _direction(claimed_sign, p, np.sign(mean))
    if out is None:
        return "not testable with one seed"
    if out == "holds":
        if -claimed_sign in signs:
            return f"mixed: detectable overall ({p_is(p)}) but not in every seed"
        return "holds"
    if out == "opposite":
        return "does not hold (the opposite is detectable)"
    return f"not detectable at this scale ({p_is(p)})"


def seed_text(diffs, unit, digits=1) -> str:
    """The seed-paired differences, their mean, sd, 95% t-interval and p."""
    s = paired_summary(diffs)
    f = lambda v: f"{v:+.{digits}f}"
    text = ", ".join(f(d) for d in diffs)
    if s["n"] < 2:
        return f"one seed: {text} {unit}"
    return (f"seed by seed {text} {unit} (mean {f(s['mean'])}, sd {s['sd']:.{digits}f}, 95% "
            f"t-interval [{f(s['low'])}, {f(s['high'])}], {p_is(s['p'])})")


def seeds_text(seeds) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {','.join(map(str, seeds))} pooled"


def compare_images(runs_a, runs_b, per_image, metric, claimed_sign, scale=100.0):
    """Pooled McNemar of ``per_image`` over the common seeds, plus the seed-paired
    differences of ``metric`` (times ``scale``). None without common seeds."""
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        return None
    b = c = 0
    for s in seeds:
        t = mcnemar(per_image(runs_a[s]), per_image(runs_b[s]))
        b, c = b + t["b"], c + t["c"]
    p = mcnemar_p(b, c)
    diffs = [scale * (metric(runs_a[s]) - metric(runs_b[s])) for s in seeds]
    t = {"seeds": seeds, "b": b, "c": c, "p": p, "diffs": diffs, "sign": int(np.sign(b - c))}
    return {**t, "verdict": verdict_text(t, claimed_sign)}


def per_image_autoattack(*groups: dict) -> bool:
    """True when every file of ``groups`` ({seed: result} each) holds AutoAttack's verdict per
    image (``broken_by``): then a comparison on AutoAttack compares images (pooled McNemar,
    the seed-paired t-test beside it); else seeds alone (the t-test)."""
    return all("broken_by" in r.get("autoattack", {}) for g in groups for r in g.values())


def compare_autoattack(runs_a, runs_b, per_image, metric, claimed_sign=+1):
    """A comparison on AutoAttack of the files' kind: :func:`compare_images` of ``per_image``
    where both sides hold per-image verdicts (:func:`per_image_autoattack`), else
    :func:`compare_seeds` of ``metric``; differences in points either way."""
    if per_image_autoattack(runs_a, runs_b):
        return compare_images(runs_a, runs_b, per_image, metric, claimed_sign)
    return compare_seeds(runs_a, runs_b, metric, claimed_sign, scale=100.0)


def compare_seeds(runs_a, runs_b, metric, claimed_sign, scale=1.0):
    """Seed-paired differences of ``metric`` alone (no per-image data): the t-test decides."""
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        return None
    diffs = [scale * (metric(runs_a[s]) - metric(runs_b[s])) for s in seeds]
    t = {"seeds": seeds, "diffs": diffs, "p": paired_summary(diffs)["p"]}
    return {**t, "verdict": verdict_text(t, claimed_sign)}


def outcome(t, claimed_sign) -> str | None:
    """"holds", "opposite", "none" (or None: one seed, no test) of a comparison's deciding
    test: the pooled McNemar test where it compared images, else the seed-paired t-test."""
    if "b" in t:
        return _direction(claimed_sign, t["p"], t["sign"])
    return _direction(claimed_sign, t["p"], np.sign(np.mean(t["diffs"])))


def verdict_text(t, claimed_sign) -> str:
    """The verdict of a comparison (of :func:`compare_images` or :func:`compare_seeds`),
    bold where it decides, naming both tests where they disagree."""
    s = paired_summary(t["diffs"])
    signs = {int(np.sign(d)) for d in t["diffs"] if d != 0}
    seed = _direction(claimed_sign, s["p"], np.sign(s["mean"]))
    n = f"{s['n']} seeds"
    if "b" not in t:                                   # seed-paired t-test alone
        if seed is None:
            return "**not testable with one seed**"
        if seed == "holds":
            return (f"**mixed**: significant across seeds ({p_is(s['p'])}, {n}) but not in every "
                    "seed" if -claimed_sign in signs else f"**holds** across seeds ({p_is(s['p'])}, {n})")
        if seed == "opposite":
            return f"**does not hold**: the opposite is significant across seeds ({p_is(s['p'])}, {n})"
        return f"**not detectable at this scale** (across seeds {p_is(s['p'])}, {n})"
    pooled, p = _direction(claimed_sign, t["p"], t["sign"]), p_is(t["p"])
    if seed is None:                                   # one seed: its images only
        return {"holds": f"**holds** on one seed's images ({p}); no test across seeds",
                "opposite": f"**does not hold**: the opposite is detectable on one seed's images ({p})",
                "none": f"**not detectable at this scale** (one seed's images, {p})"}[pooled]
    across = f"{p_is(s['p'])}, {n}"
    if pooled == "holds":
        if -claimed_sign in signs:
            return (f"**mixed**: detectable on pooled images ({p}) but not in every seed; "
                    f"across seeds {across}")
        if seed == "holds":
            return f"**holds** on pooled images ({p}) and across seeds ({across})"
        return f"**holds on pooled images** ({p}), **not significant across seeds** ({across})"
    if pooled == "opposite":
        return (f"**does not hold**: the opposite is detectable on pooled images ({p}); "
                f"across seeds {across}")
    if seed == "holds":
        return f"**not detectable on pooled images** ({p}), **holds across seeds** ({across})"
    if seed == "opposite":
        return (f"**not detectable on pooled images** ({p}); the opposite is significant "
                f"across seeds ({across})")
    return f"**not detectable at this scale** (pooled images {p}; across seeds {across})"


# ----------------------------------------------------------------------------- claims 3 and 4

def claim3(runs: dict, names: dict, missing) -> dict:
    """Claim 3 from runs by slug then seed (CIFAR-10 or toy files: stored margins with
    quantiles), by the module's rules: AT has the paper's two peaks (:func:`has_paper_peaks`)
    in every seed, and each importance-aware method collapses (see the module docstring).
    missing(*slugs): the text for runs without files, else None."""
    says = ("under AT the margin histogram has two peaks (hard samples near 0, easy ones far "
            "away); importance-aware methods collapse it towards one peak near 0")
    if "at" not in runs:
        return {"claim": 3, "says": says, "verdict": missing("at"), "evidence": []}
    shown = [m for m in ("at", *IMPORTANCE_AWARE) if m in runs]
    peaks = {m: {s: {k: peak_positions(r, k) for k, _ in PEAK_KINDS}
                 for s, r in sorted(runs[m].items())} for m in shown}
    counted = {m: {s: {k: counted_peaks(r, k) for k, _ in PEAK_KINDS}
                   for s, r in sorted(runs[m].items())} for m in shown}
    two = {m: {s: any(len(p) >= 2 for p in by_kind.values())
               for s, by_kind in counted[m].items()} for m in shown}
    at_two, n_at = sum(two["at"].values()), len(two["at"])
    first = (f"{names['at']} has two peaks of the paper's kind (both at margins >= 0) in "
             f"{at_two} of {n_at} seeds")
    collapsed, widths = {}, {}
    for m in IMPORTANCE_AWARE:
        if m not in runs:
            continue
        seeds = sorted(set(runs[m]) & set(runs["at"])) or sorted(runs[m])
        at_seeds = [s for s in seeds if s in runs["at"]] or sorted(runs["at"])
        widths[m] = (np.mean([spread(runs[m][s]) for s in seeds])
                     / np.mean([spread(runs["at"][s]) for s in at_seeds]))
        near = (np.mean([abs(peaks[m][s]["train_adv"][0]) for s in seeds])
                <= abs(np.mean([stat("train_adv", "margin", "q50")(runs["at"][s]) for s in at_seeds])))
        collapsed[m] = not any(two[m].values()) and widths[m] <= COLLAPSE_WIDTH and near
    if not collapsed:                                   # half a claim is no verdict
        verdict = f"{first}; the collapse: {missing(*IMPORTANCE_AWARE)}"
    else:
        second = ("collapse to one peak near 0: " + (", ".join(
            f"{names[m]} (width {widths[m]:.2f} of {names['at']}'s)" for m in collapsed if collapsed[m])
            or "none") + (("; not: " + ", ".join(f"{names[m]} (width {widths[m]:.2f})"
                                                   for m in collapsed if not collapsed[m]))
                          if not all(collapsed.values()) else ""))
        word = ("**holds**" if at_two == n_at and all(collapsed.values()) else
                "**does not hold at this scale**" if at_two == 0 else "**mixed**")
        verdict = f"{word}: {first}; {second}"
        if missing(*IMPORTANCE_AWARE):
            verdict += f"; {missing(*IMPORTANCE_AWARE)}"
    fmt = lambda ps: "/".join(f"{p:+.2f}" for p in ps)
    ev = [(f"rule: {SECOND_PEAK_RULE}; a method collapses when no seed has two such peaks, its "
           f"5th-95th percentile width of PGD training margins is at most {COLLAPSE_WIDTH:g} of "
           f"{names['at']}'s and its highest peak is nearer 0 than {names['at']}'s median margin")]
    for k, what in PEAK_KINDS:
        ev.append(f"peak positions of the {what} training margins (logits, highest first), per "
                  "seed: " + "; ".join(f"{names[m]} " + ", ".join(fmt(peaks[m][s][k])
                                                                  for s in peaks[m]) for m in shown))
    neg = [f"{names[m]} seed {s} at {', '.join(f'{p:+.2f}' for p in by_kind[k] if p not in counted[m][s][k])} ({what})"
           for m in shown for s, by_kind in peaks[m].items() for k, what in PEAK_KINDS
           if len(by_kind[k]) > 1 and len(counted[m][s][k]) < len(by_kind[k])]
    if neg:
        ev.append("second peaks of misclassified points (margin < 0), not counted: " + "; ".join(neg))
    ev.append("5th to 95th percentile width of the PGD training margins: " + "; ".join(
        f"{names[m]} {np.mean([spread(r) for r in runs[m].values()]):.2f}" for m in shown)
        + " logits (mean over seeds)")
    return {"claim": 3, "says": says, "verdict": verdict, "evidence": ev}


def claim4(runs, names, sovr, missing) -> dict:
    """Claim 4: SOVR against GAIRAT and MART under AutoAttack, each beside AT against the same
    method, so that a win AT has too is not credited to SOVR's switch; then SOVR against AT.
    The margins of the small-margin samples (lower-quartile PGD training margin) likewise.

    Under AutoAttack the runs are compared by :func:`compare_autoattack` (per image where the
    files allow, with ``b`` and ``c``, the images robust only for one side; else per seed).
    missing(*slugs): the text for runs without files, else None.
    """
    ev, parts = [], []
    q25 = stat("train_adv", "margin", "q25")
    label = lambda s: names.get(s, Run.parse(s).label)

    def aa(a, b):
        """(the AutoAttack comparison a - b, None, its evidence line) or (None, why not, None)."""
        why = missing(a, b) or aa_failures(runs, a, b)
        if why:
            return None, why, None
        t = compare_autoattack(runs[a], runs[b], aa_correct, aa_robust)
        images = (f"; images robust only for {label(a)} {t['b']}, only for {label(b)} {t['c']} "
                  f"({seeds_text(t['seeds'])}, exact McNemar {p_is(t['p'])})" if "b" in t else "")
        return t, None, f"{label(a)} minus {label(b)} under AutoAttack: {seed_text(t['diffs'], 'points')}{images}"

    def margins(a, b):
        t = compare_seeds(runs[a], runs[b], q25, +1)
        ev.append(f"{label(a)} minus {label(b)}, lower-quartile adversarial margin of training "
                  f"images (the small-margin samples): {seed_text(t['diffs'], 'logits', 2)}")
        return t

    t_sa, why_sa, line_sa = aa(sovr, "at")
    for m in IMPORTANCE_AWARE:
        if missing(sovr, m):
            parts.append(f"vs {label(m)}: {missing(sovr, m)}")
            continue
        t, why, line = aa(sovr, m)
        t_am, why_am, line_am = aa("at", m)
        ev.extend(x for x in (line, line_am) if x)
        if t is None:
            text = f"under AutoAttack {why}"
        else:
            text = f"under AutoAttack {t['verdict']}"
            if t_am is None:
                text += f"; {label('at')} vs {label(m)}: {why_am}"
            else:
                text += (f"; {label('at')} vs {label(m)}: {t_am['verdict']}"
                         + _share(t, t_am, t_sa, label(sovr), label(m), label("at")))
        tq = margins(sovr, m)
        parts.append(f"vs {label(m)}: {text}; larger margins of the small-margin samples "
                     f"{tq['verdict']}")
    if missing(sovr, "at"):
        parts.append(f"vs {label('at')}: {missing(sovr, 'at')}")
    else:
        if line_sa:
            ev.append(line_sa)
        text = f"under AutoAttack {why_sa}" if t_sa is None else f"under AutoAttack {t_sa['verdict']}"
        tq = margins(sovr, "at")
        parts.append(f"beside it, vs {label('at')}: {text}; larger margins of the small-margin "
                     f"samples {tq['verdict']}")
    return {"claim": 4, "says": "SOVR raises the margins of the small-margin samples and is "
            "more robust under AutoAttack than the importance-aware methods (GAIRAT, MART); AT "
            "is reported beside it", "verdict": "; ".join(parts), "evidence": ev}


def _share(t_sm, t_am, t_sa, sovr, m, at) -> str:
    """What part of SOVR's lead over ``m`` is AT's: the decomposition of the mean seed-paired
    difference SOVR - m = (AT - m) + (SOVR - AT) on the common seeds, and whose win it is."""
    seeds = sorted(set(t_sm["seeds"]) & set(t_am["seeds"]) & set(t_sa["seeds"] if t_sa else []))
    if not seeds:
        return ""
    mean = lambda t: round(float(np.mean([d for s, d in zip(t["seeds"], t["diffs"]) if s in seeds])), 1) or 0.0
    split = (f" ({sovr} − {m} {mean(t_sm):+.1f} points = {at} − {m} {mean(t_am):+.1f} + {sovr} "
             f"− {at} {mean(t_sa):+.1f}, mean over {seeds_text(seeds).replace(' pooled', '')})")
    sm, am, sa = outcome(t_sm, +1), outcome(t_am, +1), outcome(t_sa, +1)
    if sm != "holds":
        return split
    if sa == "holds":
        return f": {sovr} beats {at} as well, so part of the win is SOVR's own" + split
    if am == "holds":
        return (f": {at} beats {m} too and {sovr} does not beat {at}, so this win is plain "
                f"adversarial training's, not SOVR's switch's" + split)
    return (f": neither {at}'s lead over {m} nor {sovr}'s over {at} is detectable, so how much "
            f"of the win is SOVR's own is not resolved at this scale" + split)
