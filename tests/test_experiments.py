"""The experiment runner end to end, at the ci tier on real images.

One results file per (run, seed) with the run's options, the tier, seed, data source,
hardware, versions, code commit and wall time; clean / PGD / AutoAttack accuracy, per
image; margin and gradient-norm statistics with histogram data, quantiles and the
small-margin fraction; finished runs skipped on restart; figures drawn from the files.
"""
import json
import re
import subprocess

import pytest

from sovr_tutorial.lab import experiments
from sovr_tutorial.data import load_cifar10
from sovr_tutorial.lab.experiments import git_commit, main
from sovr_tutorial.runs import Run
from sovr_tutorial.tiers import get_tier

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def runner_output(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("runner")
    argv = ["--tier", "ci", "--methods", "at,sovr", "--seeds", "0", "--epochs", "1",
            "--data", str(data_dir), "--out", str(root / "results"),
            "--runs", str(root / "runs"), "--no-progress"]
    assert main(argv) == 0
    return root, argv


@slow
def test_one_results_file_per_run_with_its_provenance(runner_output, data_dir):
    root, _ = runner_output
    files = sorted(p.name for p in (root / "results").glob("*.json"))
    assert files == ["at-s0.json", "sovr-r0.4-s0.json"]
    r = json.loads((root / "results" / "sovr-r0.4-s0.json").read_text())
    assert (r["method"], r["seed"]) == ("sovr", 0)
    assert Run(**r["options"]) == Run("sovr") and r["label"] == "SOVR (ratio 0.4)"
    assert r["tier"]["name"] == "ci" and r["tier"]["epochs"] == 1
    info = load_cifar10("test", data_dir)[2]
    assert (r["data"]["source"], r["data"]["label"]) == (info["source"], info["label"])
    env = r["environment"]
    assert env["torch"] and env["python"] and env["cpu_count"] >= 1 and "gpu" in env
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", env["git_commit"])
    assert r["wall_seconds"] >= r["train_seconds"] > 0
    assert len(r["history"]) == 1 and "--epochs 1" in r["command"]


@slow
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
    assert len(aa["broken_by"]) == aa["n"]


@slow
def test_per_image_results_agree_with_the_accuracies(runner_output):
    root, _ = runner_output
    r = json.loads((root / "results" / "at-s0.json").read_text())
    k = get_tier("ci").eval_steps
    bits = r["per_image"]
    assert len(bits["clean"]) == len(bits["pgd"]) == get_tier("ci").n_test
    assert bits["clean"].count("1") / len(bits["clean"]) == pytest.approx(r["clean_acc"])
    assert bits["pgd"].count("1") / len(bits["pgd"]) == pytest.approx(r[f"pgd{k}_ce_acc"])
    # the margins at PGD points are measured on the very images of the PGD accuracy
    assert r["margins"]["test_adv"]["accuracy"] == pytest.approx(r[f"pgd{k}_ce_acc"])


@slow
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


@slow
def test_restarting_the_same_command_skips_finished_runs(runner_output, capsys):
    root, argv = runner_output
    before = {p: p.stat().st_mtime_ns for p in (root / "results").glob("*.json")}
    ckpts = {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*.pt")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "results").glob("*.json")} == before
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*.pt")} == ckpts
    assert "at-s0: clean" in capsys.readouterr().out  # still reported


@slow
def test_figures_are_drawn_from_the_results_files(runner_output, capsys):
    root, _ = runner_output
    assert main(["--tier", "ci", "--out", str(root / "results"), "--plot"]) == 0
    drawn = {p.name for p in (root / "results").glob("*.png")}
    assert {"pgd_vs_aa.png", "margins_at.png", "margins_sovr-r0.4.png",
            "training_curves.png"} <= drawn
    for name in drawn:
        assert (root / "results" / name).stat().st_size > 5000


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_git_commit_names_the_commit_and_marks_uncommitted_changes(tmp_path, monkeypatch):
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "code.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.setattr(experiments, "checkout", lambda: tmp_path)
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert git_commit() == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit() == head + "+dirty"
    # the dirty tree is named by its diff: another change gives another hash, the same one
    # the same hash
    first = experiments.git_diff_sha256()
    assert first and experiments.environment()["git_diff_sha256"] == first
    (tmp_path / "code.py").write_text("x = 3\n")
    assert experiments.git_diff_sha256() != first
    (tmp_path / "code.py").write_text("x = 2\n")
    assert experiments.git_diff_sha256() == first


def test_git_commit_outside_a_repository_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "checkout", lambda: tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit() is None
