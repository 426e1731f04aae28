"""The result files of the runners: reading, grouping by run, summarising.

``python -m sovr_tutorial.lab.experiments`` (CIFAR-10) and ``python -m sovr_tutorial.lab.toy``
(the toy world) write one JSON per (run, seed), with the same keys for the same quantities
(``clean_acc``, ``pgd<eval_steps>_ce_acc``, ``robust_train_acc``, ``per_image``, ``margins``,
``run``, ``label``, ``options``; the toy world adds its own, e.g. ``margin_attack_acc``).
Here they are read back: :func:`load_results` (a list) and :func:`load_runs` (by slug, then
seed) are the one reader of both. They are grouped by their
:class:`~sovr_tutorial.runs.Run` (one group = one method with one setting, over its seeds),
and summarised as a table (:func:`results_table`) and summed margin histograms
(:func:`stored_histograms`). The figures drawn from them are in :mod:`sovr_tutorial.lab.report`.

A run that collapsed to chance level (:func:`is_collapsed`) describes a failed run, not its
method: it is left out of tables and figures, and every place that leaves it out says so.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..runs import METHODS, Run, pgd_key, run_of


def _order(run: Run):
    i = METHODS.index(run.method) if run.method in METHODS else len(METHODS)
    return (i, run.rule, run.value, run.slug)


def group_runs(results: list) -> dict:
    """{Run: [results of its seeds, by seed]}, in the course's method order."""
    groups = {}
    for r in results:
        groups.setdefault(run_of(r), []).append(r)
    return {run: sorted(groups[run], key=lambda r: r.get("seed", 0))
            for run in sorted(groups, key=_order)}


def is_result(d) -> bool:
    """True for a dict written by the experiment runner or the toy runner (not notes, noise
    controls, movie frames or other JSON). A toy run whose AutoAttack failed is a result too:
    its ``autoattack`` says why (:func:`sovr_tutorial.lab.rules.aa_failure`)."""
    return (isinstance(d, dict) and "method" in d and "clean_acc" in d
            and isinstance(d.get("autoattack"), dict)
            and ("robust" in d["autoattack"] or "failed" in d["autoattack"]
                 or "skipped" in d["autoattack"]))


#: clean accuracy within this of chance (1 / classes): the run learned nothing
COLLAPSE_MARGIN = 0.02


def is_collapsed(result: dict) -> bool:
    """True for a run that ended at chance level (clean accuracy at most 1/classes + 2 points).

    Such a model answers (nearly) the same class for every image, so its robust accuracies
    and margins describe a failed run, not its method. It still counts as a finding (how
    often a method fails to train).
    """
    num_classes = result.get("tier", {}).get("num_classes", 10)
    return result["clean_acc"] <= 1 / num_classes + COLLAPSE_MARGIN


def collapsed_note(runs) -> str:
    """One line naming the collapsed runs, or "" when none.

    runs: a results folder, or results already loaded with ``load_results(..., collapsed=True)``.
    """
    if isinstance(runs, (str, Path)):
        runs = load_results(runs, collapsed=True)
    gone = [r for r in runs if is_collapsed(r)]
    if not gone:
        return ""
    return ("left out, collapsed to chance level: "
            + ", ".join(f"{r['run']} (clean {100 * r['clean_acc']:.1f}%)" for r in gone))


def load_results(out_dir, *, collapsed: bool = False) -> list:
    """Every run result (``*.json`` written by the experiment runner or the toy runner) in
    ``out_dir``, sorted by file name.

    Runs that collapsed to chance level are left out, with a warning naming them, unless
    ``collapsed=True``. Other JSON files (notes, noise controls, unreadable files) are skipped.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"results folder {out_dir} does not exist: run "
                                "`python -m sovr_tutorial.lab.experiments` first")
    results = []
    for path in sorted(out_dir.glob("*.json")):
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if is_result(d):
            d.setdefault("_path", str(path))
            results.append(d)
    if collapsed:
        return results
    note = collapsed_note(results)
    if note:
        warnings.warn(f"{out_dir}: {note}", UserWarning, stacklevel=2)
    return [r for r in results if not is_collapsed(r)]


def load_runs(folder) -> dict:
    """{slug: {seed: result}}: every result of ``folder`` (:func:`load_results`, collapsed
    runs included: :func:`is_collapsed` tells them), grouped by :func:`run_of`'s slug, in file
    order. The one reader of the verdicts, the scales and the notebooks."""
    runs = {}
    for r in load_results(folder, collapsed=True):
        runs.setdefault(run_of(r).slug, {})[r["seed"]] = r
    return runs


def pgd_name(result: dict) -> str:
    """``PGD-20`` for a result measured with PGD-20."""
    return "PGD-" + pgd_key(result)[3:-7]


def setting_line(results: list) -> str:
    """Tier, data, eps and hardware of the results, for figure titles."""
    r = results[0]
    t, data = r.get("tier", {}), r.get("data", {})
    hw = r.get("environment", {})
    device = hw.get("gpu") or f"{hw.get('cpu_count', '?')}-core {hw.get('cpu', 'CPU')}"
    return (f"{t.get('name', '?')} tier, {data.get('label', 'data ?')}, "
            f"eps {t.get('eps', 8 / 255) * 255:.0f}/255, {device}")


def summary_row(rs: list) -> dict:
    """(mean, std or None) over the seeds ``rs`` of one run: clean, pgd, aa, pgd_sub (PGD on
    the images AutoAttack saw) and gap (pgd_sub - aa), fractions in [0, 1]; and the seeds."""
    def stats(vals):
        a = np.asarray(vals, float)
        return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else None)
    aa = [r["autoattack"]["robust"] for r in rs]
    # the honest gap compares PGD and AA on the same images (AA sees a subset)
    pgd_sub = [r.get("pgd_acc_on_aa_subset", r[pgd_key(r)]) for r in rs]
    return {"clean": stats([r["clean_acc"] for r in rs]), "pgd": stats([r[pgd_key(r)] for r in rs]),
            "aa": stats(aa), "pgd_sub": stats(pgd_sub),
            "gap": stats([p - a for p, a in zip(pgd_sub, aa)]),
            "seeds": [r.get("seed") for r in rs]}


def _pct(stat) -> str:
    mean, std = stat
    return f"{100 * mean:.1f}" if std is None else f"{100 * mean:.1f} ± {100 * std:.1f}"


def results_table(out_dir) -> str:
    """Markdown table, one row per run: seeds, clean, PGD, AutoAttack, gap (in %).

    Means ± std over seeds (the mean alone when there is one seed). AutoAttack attacks a
    subset of the test images (its column says the version and count), so PGD is given
    on all test images and on that subset; the gap is PGD - AA on the subset. Collapsed
    runs are left out and named under the table.
    """
    everything = load_results(out_dir, collapsed=True)
    results = [r for r in everything if not is_collapsed(r)]
    if not results:
        raise FileNotFoundError(f"no result JSON files in {out_dir}")
    aa0 = results[0]["autoattack"]
    name = pgd_name(results[0])
    n_aa = aa0.get("n", "?")
    head = ["method", "seeds", "clean (%)", f"{name} (%)",
            f"{name} on the {n_aa} AA images (%)",
            f"AA [{aa0.get('version', '?')}, n={n_aa}] (%)", "gap PGD - AA (pts)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for run, rs in group_runs(results).items():
        row = summary_row(rs)
        lines.append("| " + " | ".join([
            run.label, ",".join(str(s) for s in row["seeds"]), _pct(row["clean"]),
            _pct(row["pgd"]), _pct(row["pgd_sub"]), _pct(row["aa"]), _pct(row["gap"])]) + " |")
    note = collapsed_note(everything)
    return "\n".join(lines) + (f"\n\n{note[0].upper()}{note[1:]}." if note else "")


def summed_histogram(rs: list, key: str):
    """(counts, edges) of the stored margin histogram ``key`` summed over the runs ``rs``,
    or None when none of them stored it."""
    counts, edges = None, None
    for r in rs:
        h = r.get("margins", {}).get(key)
        if not h or "hist_counts" not in h:
            continue
        c = np.asarray(h["hist_counts"], float)
        e = np.asarray(h["hist_edges"], float)
        if counts is None:
            counts, edges = c, e
        elif len(e) == len(edges) and np.allclose(e, edges):
            counts = counts + c
    return None if counts is None else (counts, edges)


def stored_histograms(results: list, key: str = "test_adv") -> dict:
    """Margin histograms stored in result files, one per run (summed over its seeds).

    key: "test_clean", "test_adv", "train_clean" or "train_adv". Returns
    {label: (counts, edges)}, e.g. "AT (3 seeds)", ready for ``plot_margin_histograms``;
    runs whose files hold no histogram for ``key`` are left out.
    """
    out = {}
    for run, rs in group_runs(results).items():
        h = summed_histogram(rs, key)
        if h is not None:
            out[run.label + (f" ({len(rs)} seeds)" if len(rs) > 1 else "")] = h
    return out


def one_setting_per_method(results: list) -> list:
    """The results with one setting per method: the method's default :class:`Run` (e.g.
    SOVR at ratio 0.4) when it was run, else its first setting in the course's order."""
    keep = {}
    for run in group_runs(results):
        if run.method not in keep or run == Run(run.method):
            keep[run.method] = run
    chosen = set(keep.values())
    return [r for r in results if run_of(r) in chosen]
