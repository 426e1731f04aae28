"""The experiment runner end to end, at the ci tier on real images: what issue 4 asks of it.

One results file per (method, seed) with the tier, seed, data source, hardware, versions and
wall time; clean / PGD / AutoAttack accuracy; margin and gradient-norm statistics with
histogram data, quantiles and the small-margin fraction; finished runs skipped on restart;
figures drawn from the files.
"""
import json

import pytest

from sovr_tutorial.experiments import default_folder, main
from sovr_tutorial.tiers import get_tier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner_output(tmp_path_factory, jpeg_dir):
    root = tmp_path_factory.mktemp("runner")
    argv = ["--tier", "ci", "--methods", "at,sovr", "--seeds", "0", "--epochs", "1",
            "--data", str(jpeg_dir), "--out", str(root / "results"),
            "--runs", str(root / "runs"), "--no-progress"]
    assert main(argv) == 0
    return root, argv


def test_one_results_file_per_run_with_its_provenance(runner_output):
    root, _ = runner_output
    files = sorted(p.name for p in (root / "results").glob("*.json"))
    assert files == ["at-s0.json", "sovr-r0.4-s0.json"]
    r = json.loads((root / "results" / "sovr-r0.4-s0.json").read_text())
    assert (r["method"], r["seed"], r["sovr_ratio"]) == ("sovr", 0, 0.4)
    assert r["tier"]["name"] == "ci" and r["tier"]["epochs"] == 1
    assert r["data"]["source"] == "jpeg" and len(r["data"]["sha256"]) == 64
    assert "JPEG" in r["data"]["label"]
    env = r["environment"]
    assert env["torch"] and env["python"] and env["cpu_count"] >= 1 and "gpu" in env
    assert r["wall_seconds"] >= r["train_seconds"] > 0
    assert len(r["history"]) == 1 and "--epochs 1" in r["command"]


def test_accuracies_are_measured_and_ordered(runner_output):
    root, _ = runner_output
    r = json.loads((root / "results" / "at-s0.json").read_text())
    k = get_tier("ci").eval_steps
    for key in ("clean_acc", f"pgd{k}_ce_acc", f"pgd{k}_margin_acc", "pgd_acc_on_aa_subset"):
        assert 0.0 <= r[key] <= 1.0, key
    # an attack can only remove correct predictions
    assert r[f"pgd{k}_ce_acc"] <= r["clean_acc"]
    aa = r["autoattack"]
    assert aa["n"] == get_tier("ci").n_autoattack and aa["version"] == "custom"
    assert aa["robust"] <= aa["clean"]
    assert "custom" in aa["label"]


def test_margin_statistics_cover_clean_and_attacked_test_and_training_images(runner_output):
    root, _ = runner_output
    r = json.loads((root / "results" / "at-s0.json").read_text())
    assert set(r["margins"]) == {"test_clean", "test_adv", "train_clean", "train_adv"}
    for name, m in r["margins"].items():
        s = m["margin"]
        assert s["q05"] <= s["q25"] <= s["q50"] <= s["q75"] <= s["q95"], name
        assert 0 <= s["frac_small"] <= 1 and 0 <= s["frac_negative"] <= 1
        assert m["grad_norm_l1"]["q50"] >= 0
        assert len(m["hist_counts"]) + 1 == len(m["hist_edges"])
        assert sum(m["hist_counts"]) <= s["n"]  # margins outside the range are not binned
    # PGD pushes margins down
    assert (r["margins"]["test_adv"]["margin"]["q50"]
            < r["margins"]["test_clean"]["margin"]["q50"])


def test_restarting_the_same_command_skips_finished_runs(runner_output, capsys):
    root, argv = runner_output
    before = {p: p.stat().st_mtime_ns for p in (root / "results").glob("*.json")}
    ckpts = {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*.pt")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "results").glob("*.json")} == before
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*.pt")} == ckpts
    assert "at-s0: clean" in capsys.readouterr().out  # still reported


def test_figures_are_drawn_from_the_results_files(runner_output, capsys):
    root, _ = runner_output
    assert main(["--tier", "ci", "--out", str(root / "results"), "--plot"]) == 0
    drawn = {p.name for p in (root / "results").glob("*.png")}
    assert {"pgd_vs_aa.png", "margins_at.png", "margins_sovr-r0.4.png",
            "training_curves.png"} <= drawn
    for name in drawn:
        assert (root / "results" / name).stat().st_size > 5000


def test_other_epochs_get_their_own_folder():
    """Changing --epochs or --lr must not skip or resume into the tier's own runs."""
    assert default_folder(get_tier("cpu")) == "cpu"
    assert default_folder(get_tier("cpu", epochs=30)) == "cpu-e30"
    assert default_folder(get_tier("ci", epochs=get_tier("ci").epochs)) == "ci"
    assert default_folder(get_tier("cpu", lr=0.01)) == "cpu-lr0.01"
    assert default_folder(get_tier("cpu", epochs=30, lr=0.01)) == "cpu-e30-lr0.01"
