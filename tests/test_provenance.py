"""Provenance of a notebook's outputs: the data notice for the shipped checkpoints, the footer,
the runs table."""

import sovr_tutorial as st
from sovr_tutorial import checkpoint
from sovr_tutorial.lab import provenance


def test_the_shipped_checkpoints_say_which_data_trained_them():
    # the results file that lists the checkpoint's sha256 records the data of the --ship run
    for run in ("at", "sovr-r0.4"):
        assert provenance.shipped_data_label(run) == "CIFAR-10 (JPEG copy)"
    assert provenance.shipped_data_label("sovr-r0.3") is None   # not shipped


def test_a_notice_only_when_the_session_data_differs():
    runs = ["at", "sovr-r0.4"]
    assert provenance.data_notice(runs, {"label": "CIFAR-10 (JPEG copy)"}) == ""
    note = provenance.data_notice(runs, {"label": "CIFAR-10"})
    assert "trained on CIFAR-10 (JPEG copy)" in note and "evaluates them on CIFAR-10" in note
    assert "\n" not in note


def test_the_footer_names_tier_data_seed_models_and_time():
    s = provenance.Session(st.get_tier("ci"), {"label": "CIFAR-10 (JPEG copy)"}, seed=3,
                           models="trained here")
    assert s.setting == "ci tier, CIFAR-10 (JPEG copy), seed 3"
    text = s.footer()
    for part in ("ci tier, CIFAR-10 (JPEG copy), seed 3", "Models: trained here.",
                 "torch", "This run took 0 min"):
        assert part in text


def test_runs_table_marks_collapsed_runs(tmp_path):
    base = {"tier": {"name": "cpu"}, "data": {"label": "d"}, "environment": {"cpu_count": 2,
            "cpu": "x86_64", "torch": "2"}, "autoattack": {"label": "custom", "n": 200,
            "robust": 0.2}, "finished": "today", "train_seconds": 120, "method": "at"}
    rows = [{**base, "run": "at-s0", "seed": 0, "clean_acc": 0.4},
            {**base, "run": "mart-s1", "seed": 1, "clean_acc": 0.1}]
    table = provenance.runs_table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| at-s0 | cpu | 0 | d | 2-core x86_64 CPU")
    assert "2.0 min" in table[2] and "collapsed to chance (clean 10.0%)" in table[3]


def test_a_checkpoint_that_records_its_data_is_believed_first(tmp_path, monkeypatch):
    from sovr_tutorial.checkpoint import save_checkpoint
    from sovr_tutorial.files import sha256_file
    path = tmp_path / "cpu-at-s0.pt"
    save_checkpoint(path, st.build_model("small_cnn", width=4), epoch=1,
                    config={"method": "at", "data": {"label": "CIFAR-10"}}, history=[])
    (tmp_path / "SHA256SUMS").write_text(f"{sha256_file(path)}  {path.name}\n")
    monkeypatch.setattr(checkpoint, "shipped_dir", lambda: tmp_path)
    assert provenance.shipped_data_label("at") == "CIFAR-10"
    assert provenance.data_notice(["at"], {"label": "CIFAR-10"}) == ""
