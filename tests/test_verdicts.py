"""The verdicts on the paper's claims: exact McNemar, seed-paired t-intervals, and the one
function that reads a results folder (docs/method.md, "How a verdict is reached")."""
import json
import math

import numpy as np
import pytest

from sovr_tutorial.lab import rules, scales, stats
from sovr_tutorial.lab import verdicts as v
from sovr_tutorial.runs import Run

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


def test_a_p_value_below_double_precision_is_printed_as_a_bound():
    # five toy seeds of 512 points pool to hundreds of discordant points: p underflows
    assert stats.mcnemar_p(0, 1200) < 1e-300
    assert rules.p_is(stats.mcnemar_p(0, 1200)) == "p<1e-16"
    assert rules.p_is(stats.mcnemar_p(1, 9)) == "p=0.021"


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


def _result(slug, seed, broken_by, *, pgd_sub=0.3, q95=None, fb75=0.04, g50=10.0, q25=-0.5,
            adv_values=None, clean=0.4, q05=None):
    n = len(broken_by)
    robust = sum(b is None for b in broken_by) / n
    method = slug.split("-")[0]
    adv_values = list(np.linspace(-1, 1, 101)) if adv_values is None else list(adv_values)
    q05 = float(np.quantile(adv_values, 0.05)) if q05 is None else q05
    q50 = float(np.quantile(adv_values, 0.5))
    q95 = float(np.quantile(adv_values, 0.95)) if q95 is None else q95
    stats = lambda **q: {"margin": {"q05": q05, "q25": q25, "q50": q50, "q75": 0.5,
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
    assert ("vs GAIRAT: under AutoAttack **holds** on one seed's images (p=0.021); no test "
            "across seeds") in c4["verdict"]
    assert "only for SOVR (ratio 0.4) 9, only for GAIRAT 1" in " ".join(c4["evidence"])
    assert "p=0.021" in " ".join(c4["evidence"])
    assert "vs MART: not measured" in c4["verdict"]
    assert "AT vs GAIRAT: not measured: no result files for at" in c4["verdict"]


def test_claim_4_is_not_detectable_when_the_runs_tie_and_fails_when_reversed(tmp_path):
    a = tmp_path / "tie"
    a.mkdir()
    out = v.claim_verdicts(_write(a, _result("sovr-r0.4", 0, _bits(10, 20)),
                                  _result("gairat", 0, _bits(10, 20, first_robust=5))))
    assert "**not detectable at this scale** (one seed's images, p=1)" in _claim(out, 4)["verdict"]
    b = tmp_path / "reversed"
    b.mkdir()
    out = v.claim_verdicts(_write(b, _result("sovr-r0.4", 0, _bits(1, 20)),
                                  _result("gairat", 0, _bits(12, 20))))
    assert ("vs GAIRAT: under AutoAttack **does not hold**: the opposite is detectable on one "
            "seed's images") in _claim(out, 4)["verdict"]


def test_seeds_pool_their_discordant_pairs_and_disagreeing_seeds_make_it_mixed(tmp_path):
    # seed 0: SOVR +8 images, seed 1: -1 image. Pooled b = 8, c = 1 -> p = 0.039, mixed signs
    runs = [_result("sovr-r0.4", 0, _bits(10, 20)), _result("gairat", 0, _bits(2, 20)),
            _result("sovr-r0.4", 1, _bits(2, 20)), _result("gairat", 1, _bits(3, 20))]
    out = v.claim_verdicts(_write(tmp_path, *runs))
    c4 = _claim(out, 4)
    assert ("**mixed**: detectable on pooled images (p=0.039) but not in every seed; across "
            "seeds p=0.58, 2 seeds") in c4["verdict"]
    assert "seed by seed +40.0, -5.0 points" in " ".join(c4["evidence"])


def test_claim_1_holds_when_the_targeted_attack_breaks_what_apgd_ce_missed(tmp_path):
    at = _result("at", 0, _bits(10, 20), pgd_sub=0.55)
    gairat = _result("gairat", 0, [None] * 2 + ["apgd-t"] * 10 + ["clean"] * 8, pgd_sub=0.6)
    out = v.claim_verdicts(_write(tmp_path, at, gairat))
    c1 = _claim(out, 1)
    assert "GAIRAT: **holds** on one seed's images (p=0.002)" in c1["verdict"]
    assert "10 only for GAIRAT, 0 only for AT" in " ".join(c1["evidence"])


def test_claim_3_counts_the_peaks_of_the_stored_margins(tmp_path):
    rng = np.random.default_rng(0)
    two = np.r_[rng.normal(0, 0.3, 500), rng.normal(4, 0.3, 500)]
    one = rng.normal(0, 0.3, 1000)
    a = tmp_path / "two"
    a.mkdir()
    out = v.claim_verdicts(_write(a, _result("at", 0, _bits(5, 20), adv_values=two),
                                  _result("gairat", 0, _bits(5, 20), adv_values=one)))
    assert _claim(out, 3)["verdict"].startswith(
        "**holds**: AT has two peaks of the paper's kind (both at margins >= 0) in 1 of 1 seeds; "
        "collapse to one peak near 0: GAIRAT")
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
    assert ("GAIRAT: upper margins (95th percentile) shrink: **holds** across seeds (p=0.00026, 3 "
            "seeds); flip budgets shrink: **holds** across seeds") in _claim(out, 2)["verdict"]


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

def _sample(peaks, sd=0.3, n=400, seed=0):
    """Margins drawn around each of ``peaks`` (logits), n per peak."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(p, sd, n) for p in peaks]).round(3)


def _toy(slug, seed, *, pgd=0.8, point=None, margin_attack=0.8, aa=0.8, q95=None, fb75=0.1,
         q25=0.5, peaks=(2.0,), clean_peaks=None, sd=0.3):
    """A toy result file; its training margins are drawn around ``peaks`` (PGD) and
    ``clean_peaks`` (clean, default the PGD ones shifted by +0.5)."""
    def margins(centres, q95):
        v = _sample(centres, sd, seed=seed)
        q = {f"q{k:02d}": float(np.quantile(v, k / 100)) for k in (5, 10, 25, 50, 75, 90, 95)}
        return {"margin": {**q, "q25": q25, **({} if q95 is None else {"q95": q95})},
                "flip_budget": {"q75": fb75},
                "values": v.tolist()}
    adv = margins(peaks, q95)
    clean = margins([p + 0.5 for p in peaks] if clean_peaks is None else clean_peaks, q95)
    run = Run.parse(slug)
    return {"run": run.name(seed), "method": run.method, "label": run.label,
            "options": run.options(), "seed": seed, "tier": {"name": "toy", "eval_steps": 20,
                                                             "num_classes": 6},
            "clean_acc": 0.9, "pgd20_ce_acc": pgd,
            "pgd_point_acc": pgd if point is None else point, "margin_attack_acc": margin_attack,
            "autoattack": {"robust": aa, "n": 512, "label": "custom"},
            "environment": {"cpu_count": 2, "cpu": "x86_64"},
            "train_peaks": list(peaks), "margins": {"train_clean": clean, "train_adv": adv}}


def test_toy_files_with_per_seed_numbers_only_are_judged_by_the_seed_paired_test(tmp_path):
    runs = []
    for s, d in enumerate((0.30, 0.35, 0.40)):   # GAIRAT loses 30-40 points to AutoAttack
        runs += [_toy("at", s, peaks=(0.3, 3.0)), _toy("at", s + 10, peaks=(2.0,)),
                 _toy("gairat", s, pgd=0.78, margin_attack=0.5, aa=0.78 - d, q95=0.1,
                      fb75=0.01, q25=0.01, peaks=(0.0,), sd=0.05),
                 _toy("sovr-r0.4", s, aa=0.8 + 0.001 * s, q25=0.9)]
    _write(tmp_path, *runs)
    (tmp_path / "control_at_reinit.json").write_text(json.dumps({"runs": []}))
    out = v.claim_verdicts(tmp_path)
    assert out["source"]["files"] == 12 and out["source"]["tier"] == "toy"
    assert _claim(out, 1)["verdict"].startswith("GAIRAT: **holds** across seeds")
    assert any("PGD minus the margin attack's accuracy" in e for e in _claim(out, 1)["evidence"])
    assert "MART: not measured" in _claim(out, 1)["verdict"]
    assert "shrink: **holds** across seeds" in _claim(out, 2)["verdict"]
    assert "input units" in " ".join(_claim(out, 2)["evidence"])
    # AT: two peaks at +0.3 and +3 in seeds 0-2, one in seeds 10-12; GAIRAT squeezed at 0
    assert _claim(out, 3)["verdict"].startswith(
        "**mixed**: AT has two peaks of the paper's kind (both at margins >= 0) in 3 of 6 "
        "seeds; collapse to one peak near 0: GAIRAT")
    assert "vs GAIRAT: under AutoAttack **holds** across seeds" in _claim(out, 4)["verdict"]
    assert "McNemar" not in v.verdicts_markdown(out).split("\n", 1)[1]
    assert "`sovr_tutorial.lab.verdicts.claim_verdicts`" in v.verdicts_markdown(out)


def _with_bits(result, broken_by, pgd_right):
    """A toy file as the toy runner writes it now: AutoAttack's verdict per point and the
    raw PGD correctness bits, so that the per-image test applies."""
    n = len(broken_by)
    result["autoattack"] = {**result["autoattack"], "broken_by": broken_by, "n": n,
                            "robust": sum(b is None for b in broken_by) / n}
    result["per_image"] = {"pgd": "".join("1" if ok else "0" for ok in pgd_right)}
    result["pgd_acc_on_aa_subset"] = sum(pgd_right) / n
    return result


def test_toy_and_cifar_files_holding_the_same_bits_get_the_same_verdicts(tmp_path):
    """One engine: a toy file and a CIFAR-10 file that hold the same per-image bits and the
    same margins are judged by the same test, to the same verdict on claims 1 and 4."""
    gairat_bits = [None] * 2 + ["apgd-t"] * 10 + ["clean"] * 8      # PGD-right on 0..11
    bits = {"at": (_bits(10, 20), [i < 10 for i in range(20)]),
            "gairat": (gairat_bits, [i < 12 for i in range(20)]),
            "sovr-r0.4": (_bits(11, 20), [i < 11 for i in range(20)])}
    verdicts = {}
    for world in ("toy", "cifar"):
        folder = tmp_path / world
        folder.mkdir()
        files = []
        for slug, (broken, right) in bits.items():
            r = _toy(slug, 0) if world == "toy" else _result(slug, 0, broken)
            files.append(_with_bits(r, broken, right))
        out = v.claim_verdicts(_write(folder, *files))
        verdicts[world] = [_claim(out, k)["verdict"].replace(str(folder), "<folder>")
                           for k in (1, 4)]
    assert verdicts["toy"] == verdicts["cifar"]
    assert "GAIRAT: **holds** on one seed's images (p=0.002)" in verdicts["toy"][0]
    assert "vs GAIRAT: under AutoAttack **holds** on one seed's images" in verdicts["toy"][1]


def test_a_toy_run_collapsed_to_chance_is_set_aside_as_a_cifar_run_is(tmp_path):
    dead = _toy("gairat", 0, peaks=(0.0,), sd=0.05)
    dead["clean_acc"] = 1 / 6
    folder = tmp_path / "toy"
    folder.mkdir()
    out = v.claim_verdicts(_write(folder, _toy("at", 0), dead))
    assert out["left_out"] == ["gairat-s0 (clean 16.7%)"]
    assert "GAIRAT: not measured: no result files for gairat" in _claim(out, 1)["verdict"]
    assert list(scales.scale_margins(tmp_path, slugs=("at", "gairat"))["toy"]) == ["at"]


def test_a_bump_of_misclassified_points_is_not_the_papers_second_peak(tmp_path):
    """The second-peak rule: only peaks at margins >= 0 count (the toy AT's bump near -2 of
    points misclassified at the PGD point is reported, not counted)."""
    assert rules.paper_peaks([2.1, -1.9]) == [2.1]
    assert rules.paper_peaks([2.1, 0.2]) == [2.1, 0.2]
    runs = [_toy("at", 0, peaks=(2.0, -2.0), clean_peaks=(2.5,)),
            _toy("gairat", 0, peaks=(0.0,), sd=0.05)]
    _write(tmp_path, *runs)
    c3 = _claim(v.claim_verdicts(tmp_path), 3)
    assert "in 0 of 1 seeds" in c3["verdict"] and c3["verdict"].startswith("**does not hold")
    assert any(e.startswith("second peaks of misclassified points (margin < 0), not counted: "
                            "AT seed 0 at -2.") for e in c3["evidence"])


def test_toy_and_cifar_files_get_claim_3_by_the_one_rule(tmp_path):
    """The same training margins give the same claim-3 verdict in a toy file and in a
    CIFAR-10 file (rules.claim3 for both)."""
    verdicts = []
    for engine in ("cifar", "toy"):
        folder = tmp_path / engine
        folder.mkdir()
        if engine == "toy":
            _write(folder, _toy("at", 0, peaks=(0.3, 3.0)), _toy("mart", 0, peaks=(0.3, 3.0)),
                   _toy("gairat", 0, peaks=(0.1,), sd=0.1))
            out = v.claim_verdicts(folder)
        else:
            toy = {m: _toy(m, 0, peaks=p, sd=sd) for m, p, sd in
                   (("at", (0.3, 3.0), 0.3), ("mart", (0.3, 3.0), 0.3), ("gairat", (0.1,), 0.1))}
            files = []
            for m, t in toy.items():
                r = _result(m, 0, _bits(5, 20))
                r["margins"] = {k: {**r["margins"][k], **t["margins"][k]} for k in t["margins"]}
                files.append(r)
            out = v.claim_verdicts(_write(folder, *files))
        verdicts.append(_claim(out, 3)["verdict"])
    assert verdicts[0] == verdicts[1]
    assert verdicts[0].startswith("**mixed**: AT has two peaks of the paper's kind (both at "
                                  "margins >= 0) in 1 of 1 seeds; collapse to one peak near 0: "
                                  "GAIRAT (width ")
    assert "; not: MART (width 1.00)" in verdicts[0]


def _claim4_of(folder, sovr_robust):
    """Claim 4 of three seeds: SOVR robust on ``sovr_robust + seed`` of 40 images, AT on
    12 + seed, GAIRAT on 4."""
    folder.mkdir(exist_ok=True)
    runs = []
    for s in (0, 1, 2):
        runs += [_result("sovr-r0.4", s, _bits(sovr_robust + s, 40)),
                 _result("at", s, _bits(12 + s, 40)), _result("gairat", s, _bits(4, 40))]
    return _claim(v.claim_verdicts(_write(folder, *runs)), 4)


def test_claim_4_says_when_sovrs_win_over_gairat_is_ats(tmp_path):
    """SOVR beats GAIRAT, AT beats GAIRAT as much, SOVR ties AT: the verdict credits AT."""
    c4 = _claim4_of(tmp_path / "tie_with_at", 12)
    assert "vs GAIRAT: under AutoAttack **holds** on pooled images (p=" in c4["verdict"]
    assert "AT vs GAIRAT: **holds** on pooled images" in c4["verdict"]
    assert ("AT beats GAIRAT too and SOVR (ratio 0.4) does not beat AT, so this win is plain "
            "adversarial training's, not SOVR's switch's (SOVR (ratio 0.4) − GAIRAT +22.5 points "
            "= AT − GAIRAT +22.5 + SOVR (ratio 0.4) − AT +0.0") in c4["verdict"]
    assert "beside it, vs AT: under AutoAttack **not detectable at this scale**" in c4["verdict"]
    assert any(e.startswith("AT minus GAIRAT under AutoAttack: seed by seed +20.0, +22.5, +25.0")
               for e in c4["evidence"])
    # SOVR better than AT too: part of the win is SOVR's own
    c4 = _claim4_of(tmp_path / "sovr_beats_at", 30)
    assert "SOVR (ratio 0.4) beats AT as well, so part of the win is SOVR's own" in c4["verdict"]


def test_a_pooled_win_that_seeds_do_not_confirm_is_named_as_such(tmp_path):
    # SOVR ahead by 9, 1 and 2 images of 40 (pooled b = 12, c = 0); per seed +22.5, +2.5, +5.0
    runs = []
    for s, k in enumerate((9, 1, 2)):
        runs += [_result("sovr-r0.4", s, _bits(10 + k, 40)), _result("gairat", s, _bits(10, 40))]
    c4 = _claim(v.claim_verdicts(_write(tmp_path, *runs)), 4)
    assert ("vs GAIRAT: under AutoAttack **holds on pooled images** (p=0.00049), **not "
            "significant across seeds** (p=0.25, 3 seeds)") in c4["verdict"]


def test_easy_samples_are_named_only_where_at_has_an_easy_mode(tmp_path):
    easy, plain = tmp_path / "easy", tmp_path / "plain"
    for folder, at_clean in ((easy, (3.0,)), (plain, (0.0,))):
        folder.mkdir()
        _write(folder, *[_toy("at", s, clean_peaks=at_clean) for s in (0, 1)],
               *[_toy("gairat", s, q95=0.1, peaks=(0.0,), sd=0.05) for s in (0, 1)])
    assert "GAIRAT: easy-sample margins (95th percentile) shrink" in \
        _claim(v.claim_verdicts(easy), 2)["verdict"]
    c2 = _claim(v.claim_verdicts(plain), 2)
    assert "GAIRAT: upper margins (95th percentile) shrink" in c2["verdict"]
    assert "easy-sample" not in c2["verdict"]
    assert "no mode apart from the boundary" in c2["evidence"][0]


def test_a_failed_autoattack_is_recorded_and_makes_claim_4_not_measured(tmp_path, monkeypatch):
    """toy.model._autoattack records a failure with its error; the verdicts then say
    "not measured: AutoAttack failed (...)" for claims 1 and 4 instead of raising."""
    import torch

    from sovr_tutorial.toy import model as toy_model
    from sovr_tutorial.toy.world import toy_tier

    def broken(*args, **kwargs):
        raise RuntimeError("APGD-T needs 10 classes")

    monkeypatch.setattr(toy_model, "autoattack_eval", broken)
    net = torch.nn.Linear(2, 6)
    x, y = torch.rand(8, 2), torch.arange(8) % 6
    aa = toy_model._autoattack(net, x, y, toy_tier(n_autoattack=8), seed=0)
    assert aa["failed"] is True and "robust" not in aa
    assert aa["error"] == "RuntimeError: APGD-T needs 10 classes"
    gairat = _toy("gairat", 0, peaks=(0.0,), sd=0.05)
    gairat["autoattack"] = aa
    _write(tmp_path, _toy("at", 0), _toy("sovr-r0.4", 0), gairat)
    out = v.claim_verdicts(tmp_path)
    c4 = _claim(out, 4)["verdict"]
    assert ("vs GAIRAT: under AutoAttack not measured: AutoAttack failed (gairat seed 0: "
            "RuntimeError: APGD-T needs 10 classes)") in c4
    assert "beside it, vs AT: under AutoAttack **not testable with one seed**" in c4
    assert _claim(out, 1)["verdict"].startswith("GAIRAT: not measured: AutoAttack failed")
    assert "it failed in 1 of 3 runs" in out["source"]["autoattack"]


def test_claim_3_gives_no_verdict_without_an_importance_aware_run(tmp_path):
    rng = np.random.default_rng(0)
    two = np.r_[rng.normal(0, 0.3, 500), rng.normal(4, 0.3, 500)]
    out = v.claim_verdicts(_write(tmp_path, _result("at", 0, _bits(5, 20), adv_values=two)))
    verdict = _claim(out, 3)["verdict"]
    assert "holds" not in verdict and "not measured: no result files for gairat, mart" in verdict


def test_verdicts_by_scale_says_not_run_yet(tmp_path):
    at_only = v.claim_verdicts(_write(tmp_path, _result("at", 0, _bits(5, 20))))
    table = scales.verdicts_by_scale({"toy": v.claim_verdicts(tmp_path / "none"),
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


def test_the_verdict_lines_can_be_shown_without_their_evidence():
    result = {"source": {}, "left_out": [], "claims": [
        {"claim": 1, "says": "a claim", "verdict": "GAIRAT: **holds**", "evidence": ["seed by seed +1, +2"]}]}
    full = v.verdicts_markdown(result)
    short = v.verdicts_markdown(result, evidence=False)
    assert "seed by seed +1, +2" in full and "seed by seed" not in short
    assert "1. *A claim.* GAIRAT: **holds**." in short


def test_the_test_is_chosen_per_comparison_by_what_its_two_runs_hold(tmp_path):
    """Files without AutoAttack's per-image verdict make only their own comparisons seed-only:
    SOVR vs GAIRAT keeps its per-image test when MART's files have no per-image bits."""
    runs = []
    for s in (0, 1):
        runs += [_result("sovr-r0.4", s, _bits(10 + s, 20)), _result("gairat", s, _bits(2, 20)),
                 _result("at", s, _bits(10, 20))]
        mart = _result("mart", s, _bits(8 - s, 20))
        del mart["autoattack"]["broken_by"]
        runs.append(mart)
    c4 = _claim(v.claim_verdicts(_write(tmp_path, *runs)), 4)["verdict"]
    assert "vs GAIRAT: under AutoAttack **holds** on pooled images" in c4
    assert "vs MART: under AutoAttack **not detectable at this scale** (across seeds" in c4
    assert v.per_image_autoattack({0: runs[0]}) and not v.per_image_autoattack({0: runs[3]})
