"""The verdicts on the paper's claims: exact McNemar, seed-paired t-intervals, and the one
function that reads a results folder (docs/method.md, "How a verdict is reached")."""
import json
import math

import numpy as np
import pytest

from sovr_tutorial.lab import scales, stats, toy_verdicts
from sovr_tutorial.lab import verdicts as v


# ----------------------------------------------------------------------------- McNemar

def test_mcnemar_p_matches_the_hand_computed_binomial_tail():
    # b = 1, c = 9: n = 10 discordant images, p = 2 * (C(10,0) + C(10,1)) / 2^10
    assert stats.mcnemar_p(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert stats.mcnemar_p(1, 9) == pytest.approx(0.021484375)
    assert stats.mcnemar_p(9, 1) == stats.mcnemar_p(1, 9)


def test_mcnemar_p_is_one_without_a_difference_and_never_above_one():
    assert stats.mcnemar_p(0, 0) == 1.0
    assert stats.mcnemar_p(5, 5) == 1.0
    assert stats.mcnemar_p(0, 5) == pytest.approx(2 / 32)


def test_mcnemar_counts_only_the_discordant_images():
    a = [1, 1, 1, 0, 0, 1, 0]
    b = [1, 0, 0, 0, 1, 1, 0]
    t = stats.mcnemar(a, b)
    assert (t["n"], t["b"], t["c"]) == (7, 2, 1)
    assert t["p"] == pytest.approx(1.0)


def test_mcnemar_rejects_vectors_of_different_length():
    with pytest.raises(ValueError, match="same length"):
        stats.mcnemar([1, 0], [1])


# ----------------------------------------------------------------------------- Student t

@pytest.mark.parametrize("df, q, expected", [
    (1, 0.975, 12.706204736174705), (2, 0.975, 4.302652729749464),
    (10, 0.975, 2.228138851986274), (30, 0.95, 1.6972608865939574),
])
def test_t_quantile_matches_the_tables(df, q, expected):
    assert stats.t_quantile(q, df) == pytest.approx(expected, rel=1e-9)
    assert stats.t_quantile(1 - q, df) == pytest.approx(-expected, rel=1e-9)


@pytest.mark.parametrize("t", [0.3, 1.0, 3.4641016, 12.0])
def test_t_tail_matches_the_closed_forms_for_one_and_two_degrees_of_freedom(t):
    assert stats.t_sf2(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-10)
    assert stats.t_sf2(t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-10)


def test_paired_summary_of_three_seeds_by_hand():
    # diffs 1, 2, 3: mean 2, sd 1, se 1/sqrt(3); t = 2 sqrt(3), df 2
    s = stats.paired_summary([1.0, 2.0, 3.0])
    half = 4.302652729749464 / math.sqrt(3)
    assert (s["n"], s["mean"], s["sd"]) == (3, pytest.approx(2.0), pytest.approx(1.0))
    assert (s["low"], s["high"]) == (pytest.approx(2 - half), pytest.approx(2 + half))
    t = 2 * math.sqrt(3)
    assert s["p"] == pytest.approx(1 - t / math.sqrt(t * t + 2))


def test_paired_summary_of_one_seed_has_no_interval():
    s = stats.paired_summary([1.5])
    assert s["mean"] == 1.5 and s["sd"] is None and s["p"] is None


# ----------------------------------------------------------------------------- hand-made files

def _bits(n_robust, n, first_robust=0):
    """broken_by list: images first_robust .. first_robust + n_robust - 1 survive."""
    return [None if first_robust <= i < first_robust + n_robust else "apgd-ce" for i in range(n)]


def _result(slug, seed, broken_by, *, pgd_sub=0.3, q95=1.0, fb75=0.04, g50=10.0, q25=-0.5,
            adv_values=None, clean=0.4):
    n = len(broken_by)
    robust = sum(b is None for b in broken_by) / n
    method = slug.split("-")[0]
    adv_values = list(np.linspace(-1, 1, 101)) if adv_values is None else list(adv_values)
    stats = lambda **q: {"margin": {"q05": -2.0, "q25": q25, "q50": 0.0, "q75": 0.5,
                                    "q95": q95, **q},
                         "flip_budget": {"q75": fb75}, "grad_norm_l1": {"q50": g50}}
    return {
        "run": f"{slug}-s{seed}", "method": method, "seed": seed,
        "options": {"method": method, **({"rule": "ratio", "value": 0.4} if method == "sovr" else {})},
        "tier": {"name": "ci", "eval_steps": 20, "num_classes": 10},
        "data": {"label": "hand-made"}, "environment": {"cpu_count": 2, "cpu": "x86_64", "gpu": None},
        "clean_acc": clean, "pgd20_ce_acc": pgd_sub, "pgd_acc_on_aa_subset": pgd_sub,
        "autoattack": {"robust": robust, "broken_by": broken_by, "n": n, "label": "custom"},
        "margins": {"train_clean": {**stats(), "values": adv_values},
                    "train_adv": {**stats(), "values": adv_values}},
    }


def _write(folder, *results):
    for r in results:
        (folder / f"{r['run']}.json").write_text(json.dumps(r))
    return folder


def _claim(out, k):
    return next(c for c in out["claims"] if c["claim"] == k)


def test_claim_4_holds_when_sovr_wins_on_the_discordant_images(tmp_path):
    # 20 images: SOVR robust on 0..9, GAIRAT on 9..9 + 10: discordant b = 9 (SOVR only), c = 1
    sovr = _result("sovr-r0.4", 0, _bits(10, 20))
    gairat = _result("gairat", 0, [None if i in (9, 10) else "apgd-t" for i in range(20)])
    out = v.claim_verdicts(_write(tmp_path, sovr, gairat))
    c4 = _claim(out, 4)
    assert "vs GAIRAT: under AutoAttack **holds**" in c4["verdict"]
    assert "only for SOVR (ratio 0.4) 9, only for GAIRAT 1" in " ".join(c4["evidence"])
    assert "p=0.021" in " ".join(c4["evidence"])
    assert "vs MART: not measured" in c4["verdict"]


def test_claim_4_is_not_detectable_when_the_runs_tie_and_fails_when_reversed(tmp_path):
    a = tmp_path / "tie"
    a.mkdir()
    out = v.claim_verdicts(_write(a, _result("sovr-r0.4", 0, _bits(10, 20)),
                                  _result("gairat", 0, _bits(10, 20, first_robust=5))))
    assert "not detectable at this scale (p=1)" in _claim(out, 4)["verdict"]
    b = tmp_path / "reversed"
    b.mkdir()
    out = v.claim_verdicts(_write(b, _result("sovr-r0.4", 0, _bits(1, 20)),
                                  _result("gairat", 0, _bits(12, 20))))
    assert "vs GAIRAT: under AutoAttack **does not hold" in _claim(out, 4)["verdict"]


def test_seeds_pool_their_discordant_pairs_and_disagreeing_seeds_make_it_mixed(tmp_path):
    # seed 0: SOVR +8 images, seed 1: -1 image. Pooled b = 8, c = 1 -> p = 0.039, mixed signs
    runs = [_result("sovr-r0.4", 0, _bits(10, 20)), _result("gairat", 0, _bits(2, 20)),
            _result("sovr-r0.4", 1, _bits(2, 20)), _result("gairat", 1, _bits(3, 20))]
    out = v.claim_verdicts(_write(tmp_path, *runs))
    c4 = _claim(out, 4)
    assert "mixed: detectable overall (p=0.039) but not in every seed" in c4["verdict"]
    assert "seed by seed +40.0, -5.0 points" in " ".join(c4["evidence"])


def test_claim_1_holds_when_the_targeted_attack_breaks_what_apgd_ce_missed(tmp_path):
    at = _result("at", 0, _bits(10, 20), pgd_sub=0.55)
    gairat = _result("gairat", 0, [None] * 2 + ["apgd-t"] * 10 + ["clean"] * 8, pgd_sub=0.6)
    out = v.claim_verdicts(_write(tmp_path, at, gairat))
    c1 = _claim(out, 1)
    assert "GAIRAT: **holds**" in c1["verdict"]
    assert "10 only for GAIRAT, 0 only for AT" in " ".join(c1["evidence"])


def test_claim_3_counts_the_peaks_of_the_stored_margins(tmp_path):
    rng = np.random.default_rng(0)
    two = np.r_[rng.normal(0, 0.3, 500), rng.normal(4, 0.3, 500)]
    one = rng.normal(0, 0.3, 1000)
    a = tmp_path / "two"
    a.mkdir()
    out = v.claim_verdicts(_write(a, _result("at", 0, _bits(5, 20), adv_values=two),
                                  _result("gairat", 0, _bits(5, 20), adv_values=one)))
    assert _claim(out, 3)["verdict"] == "**holds**"
    b = tmp_path / "one"
    b.mkdir()
    out = v.claim_verdicts(_write(b, _result("at", 0, _bits(5, 20), adv_values=one),
                                  _result("gairat", 0, _bits(5, 20), adv_values=one)))
    assert _claim(out, 3)["verdict"].startswith("**does not hold at this scale**")


def test_a_stray_margin_is_not_a_second_peak():
    values = np.r_[np.random.default_rng(1).normal(0, 0.5, 999), -4.75]
    assert v.n_peaks({"margins": {"train_adv": {"values": values.tolist()}}}) == 1


def test_claim_2_needs_two_seeds_for_per_seed_statistics(tmp_path):
    runs = [_result("at", s, _bits(5, 20), q95=1.0 + 0.01 * s, fb75=0.04) for s in (0, 1, 2)]
    runs += [_result("gairat", s, _bits(5, 20), q95=0.3 - 0.01 * s, fb75=0.02 + 0.001 * s)
             for s in (0, 1, 2)]
    out = v.claim_verdicts(_write(tmp_path, *runs))
    assert "GAIRAT: easy-sample margins shrink: **holds**; flip budgets shrink: **holds**" \
        in _claim(out, 2)["verdict"]


def test_collapsed_runs_are_left_out_and_named(tmp_path):
    out = v.claim_verdicts(_write(tmp_path, _result("at", 0, _bits(5, 20)),
                                  _result("mart", 1, _bits(2, 20), clean=0.1)))
    assert out["left_out"] == ["mart-s1 (clean 10.0%)"]
    assert "MART: not measured" in _claim(out, 1)["verdict"]


def test_write_block_replaces_only_the_text_between_the_markers(tmp_path):
    f = tmp_path / "README.md"
    begin, end = v.markers("results/cpu")
    small = "\n".join(v.markers("results/small"))
    f.write_text(f"intro\n{begin}\nold verdicts\n{end}\n{small}\noutro\n")
    assert v.write_block(f, "new verdicts\n")
    assert f.read_text() == f"intro\n{begin}\nnew verdicts\n{end}\n{small}\noutro\n"
    assert not v.write_block(f, "new verdicts\n")
    g = tmp_path / "other.md"
    g.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        v.write_block(g, "x")


def test_the_command_writes_the_same_block_to_every_file(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    _write(results, _result("sovr-r0.4", 0, _bits(10, 20)), _result("gairat", 0, _bits(2, 20)))
    files = [tmp_path / "a.md", tmp_path / "b.md"]
    begin, end = v.markers(results)
    assert begin == "<!-- verdicts results:begin -->"
    for f in files:
        f.write_text(f"{begin}\n{end}\n")
    assert v.main([str(results), "--write", *map(str, files)]) == 0
    block = v.verdicts_markdown(v.claim_verdicts(results))
    assert files[0].read_text() == files[1].read_text() == f"{begin}\n{block}{end}\n"


# ----------------------------------------------------------------------------- per scale

def _toy(slug, seed, *, pgd=0.8, point=None, margin_attack=0.8, aa=0.8, q95=3.0, fb75=0.1,
         q25=0.5, peaks=(2.0,), q10=-1.0, q90=2.5):
    stat = {"margin": {"q25": q25, "q95": q95}, "flip_budget": {"q75": fb75}}
    return {"run": f"{slug}-s{seed}", "slug": slug, "seed": seed, "pgd_acc": pgd,
            "pgd_point_acc": pgd if point is None else point, "margin_attack_acc": margin_attack,
            "autoattack": {"robust": aa, "n": 512, "label": "custom"},
            "environment": {"cpu_count": 2, "cpu": "x86_64"},
            "train_peaks": list(peaks), "train_margin_quantiles": {"q10": q10, "q50": 1.0, "q90": q90},
            "margins": {"train_clean": stat, "train_adv": stat}}


def test_toy_verdicts_read_the_toy_files_seed_by_seed(tmp_path):
    runs = []
    for s, d in enumerate((0.30, 0.35, 0.40)):   # GAIRAT loses 30-40 points to the margin attack
        runs += [_toy("at", s, peaks=(-2.0, 2.0)), _toy("at", s + 10, peaks=(2.0,)),
                 _toy("gairat", s, pgd=0.78, margin_attack=0.78 - d, aa=0.4, q95=0.1, fb75=0.01,
                      q25=0.01, peaks=(0.0,), q10=0.0, q90=0.1),
                 _toy("sovr-r0.4", s, aa=0.8 + 0.001 * s, q25=0.9)]
    _write(tmp_path, *runs)
    (tmp_path / "control_at_reinit.json").write_text(json.dumps({"runs": []}))
    out = toy_verdicts.toy_claim_verdicts(tmp_path)
    assert out["source"]["files"] == 12
    assert _claim(out, 1)["verdict"].startswith("GAIRAT: **holds**")
    assert "MART: not measured" in _claim(out, 1)["verdict"]
    assert "easy-sample margins shrink: **holds**" in _claim(out, 2)["verdict"]
    # AT: two peaks in seeds 0-2, one in seeds 10-12; GAIRAT's q10..q90 is 0.1 wide
    assert _claim(out, 3)["verdict"] == ("**mixed**: AT has two peaks in 3 of 6 seeds; collapse "
                                         "to one peak near 0: GAIRAT")
    assert "vs GAIRAT: under AutoAttack **holds**" in _claim(out, 4)["verdict"]
    assert "sovr_tutorial.lab.toy_verdicts.toy_claim_verdicts" in v.verdicts_markdown(out)


def test_claim_3_gives_no_verdict_without_an_importance_aware_run(tmp_path):
    rng = np.random.default_rng(0)
    two = np.r_[rng.normal(0, 0.3, 500), rng.normal(4, 0.3, 500)]
    out = v.claim_verdicts(_write(tmp_path, _result("at", 0, _bits(5, 20), adv_values=two)))
    verdict = _claim(out, 3)["verdict"]
    assert "holds" not in verdict and "not measured: no result files for gairat, mart" in verdict


def test_verdicts_by_scale_says_not_run_yet(tmp_path):
    at_only = v.claim_verdicts(_write(tmp_path, _result("at", 0, _bits(5, 20))))
    table = scales.verdicts_by_scale({"toy": toy_verdicts.toy_claim_verdicts(tmp_path / "none"),
                                 "cpu": at_only, "small": None})
    rows = table.strip().splitlines()
    assert rows[0] == "| claim | toy | cpu | small |" and len(rows) == 6
    claim4 = rows[5].split(" | ")
    assert claim4[2].startswith("vs GAIRAT: not run yet (sovr-r0.4, gairat); vs MART")
    assert claim4[3] == "not run yet |"


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["cpu", "small"])
def test_the_committed_verdicts_are_what_the_result_files_give(folder, tmp_path):
    """results/README.md holds each folder's verdict block as the package computes it from
    the committed result files now (SciPy's tests included): a change of rule shows here."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    copy = tmp_path / "README.md"
    copy.write_text((root / "results" / "README.md").read_text())
    subprocess.run([sys.executable, "-m", "sovr_tutorial.lab.verdicts", f"results/{folder}",
                    "--write", str(copy)], check=True, capture_output=True, cwd=root)
    assert copy.read_text() == (root / "results" / "README.md").read_text()
