"""The search table lists every run of every configuration folder, negatives included."""
import dataclasses
import json

import pytest

from sovr_tutorial.lab.search import BEGIN, END, main, search_rows, search_table
from sovr_tutorial.tiers import get_tier


def _result(method, seed, robust_train, peaks, **tier_changes):
    tier = dataclasses.asdict(get_tier("cpu", **tier_changes))
    stat = {"margin": {"q10": -1.0, "q50": 0.5, "q90": 2.0}, "peaks": peaks}
    return {"method": method, "seed": seed, "options": {"method": method}, "tier": tier,
            "clean_acc": 0.6, "pgd20_ce_acc": 0.3, "robust_train_acc": robust_train,
            "pgd_counting": "clean and adversarial both correct",
            "autoattack": {"robust": 0.25, "n": 200}, "train_seconds": 600.0,
            "margins": {"train_adv": stat, "test_adv": stat}}


@pytest.fixture
def results(tmp_path):
    config = tmp_path / "cpu-cnn-w32-n1000-eps2"
    config.mkdir()
    changes = dict(model="cnn", width=32, n_train=1000, eps=2 / 255)
    (config / "at-s0.json").write_text(json.dumps(_result("at", 0, 0.98, [3.1], **changes)))
    (config / "gairat-s0.json").write_text(
        json.dumps(_result("gairat", 0, 0.9, [-2.0, 0.3], **changes)))
    # the named tier's own folder is not part of the search
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "at-s0.json").write_text(json.dumps(_result("at", 0, 0.3, [0.0])))
    return tmp_path


def test_one_row_per_run_of_each_configuration_folder(results):
    rows = search_rows(results)
    assert [(r["run"], r["folder"]) for r in rows] == [
        ("AT", "cpu-cnn-w32-n1000-eps2"), ("GAIRAT", "cpu-cnn-w32-n1000-eps2")]
    assert rows[1]["train_peaks"] == "2 (-2.0, +0.3)"


def test_the_table_names_what_was_changed(results):
    table = search_table(results)
    assert "model cnn, width 32, depth 3, n_train 1000, epochs 10, eps 2/255" in table
    assert "| AT | 0 | 98.0% | 1 (+3.1) |" in table


def test_write_refreshes_only_the_marked_block(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\noutro\n")
    assert main([str(results), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "old" not in text and "| GAIRAT | 0 |" in text


def test_older_files_are_recounted_strictly_and_marked(results):
    old = _result("mart", 0, 0.5, [0.1], model="cnn", width=32, n_train=1000, eps=2 / 255)
    del old["pgd_counting"]
    # image 2 is wrong clean but right at its PGD point: not robust (loosely 3 of 4)
    old["per_image"] = {"clean": "1101", "pgd": "1011"}
    (results / "cpu-cnn-w32-n1000-eps2" / "mart-s0.json").write_text(json.dumps(old))
    row = next(r for r in search_rows(results) if r["run"] == "MART")
    assert row["pgd"] == 0.5 and row["train_counted_at_pgd_only"]
    assert "| MART | 0 | 50.0%* |" in search_table(results)
