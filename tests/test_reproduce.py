"""Every committed number traceable to clean code: re-running a result file's recorded
command at its recorded commit gives the same per-image results, bit for bit."""
import json

import pytest

from sovr_tutorial.lab import experiments, reproduce


@pytest.fixture(scope="module")
def ci_result(tmp_path_factory, data_dir):
    """One ci-tier run of the runner, as `python -m sovr_tutorial.lab.experiments` makes it."""
    tmp = tmp_path_factory.mktemp("made")
    argv = ["--tier", "ci", "--methods", "sovr", "--seeds", "0", "--out", str(tmp / "out"),
            "--runs", str(tmp / "runs"), "--no-progress"]
    assert experiments.main(argv) == 0
    return tmp / "out" / "sovr-r0.4-s0.json"


def test_a_ci_run_reproduces_bit_for_bit_from_its_recorded_command(ci_result, tmp_path):
    recorded = json.loads(ci_result.read_text())
    assert recorded["command"].startswith("python -m sovr_tutorial.lab.experiments --tier ci")
    assert recorded["environment"]["git_commit"] == experiments.git_commit()
    r = reproduce.reproduce(ci_result, work=tmp_path)
    assert r["differences"] == [] and r["identical"], r
    new = json.loads((tmp_path / "results" / ci_result.name).read_text())
    assert new["per_image"] == recorded["per_image"]
    assert len(recorded["per_image"]["pgd"]) == recorded["tier"]["n_test"]


def test_a_changed_bit_is_reported():
    recorded = {"per_image": {"clean": "0110", "pgd": "0100"}, "clean_acc": 0.5,
                "pgd5_ce_acc": 0.25, "autoattack": {"robust": 0.25}, "history": []}
    new = json.loads(json.dumps(recorded))
    assert reproduce.compare(recorded, new) == []
    new["per_image"]["pgd"] = "0101"
    new["pgd5_ce_acc"] = 0.5
    assert reproduce.compare(recorded, new) == [
        "per_image[pgd]: 1 of 4 images differ", "pgd5_ce_acc: 0.25 recorded, 0.5 now"]


def test_a_file_from_other_code_is_refused_with_what_to_do(ci_result, tmp_path):
    other = json.loads(ci_result.read_text())
    other["environment"]["git_commit"] = "0" * 40
    path = tmp_path / ci_result.name
    path.write_text(json.dumps(other))
    with pytest.raises(reproduce.ReproduceError, match="git worktree add"):
        reproduce.reproduce(path, work=tmp_path / "work")
    del other["environment"]["git_commit"]
    path.write_text(json.dumps(other))
    with pytest.raises(reproduce.ReproduceError, match="records no commit"):
        reproduce.reproduce(path, work=tmp_path / "work")


def test_the_rerun_is_narrowed_to_the_one_run_and_ships_nothing(tmp_path):
    result = {"run": "sovr-r0.4-s1", "seed": 1,
              "command": "python -m sovr_tutorial.lab.experiments --tier cpu "
                         "--methods at,sovr --seeds 0,1 --ship"}
    argv = reproduce.rerun_argv(result, tmp_path / "o", tmp_path / "r")
    assert "--ship" not in argv
    args = experiments.parse_args(argv)
    assert [r.slug for r in args.methods] == ["sovr-r0.4"] and args.seeds == [1]
    assert args.out == str(tmp_path / "o") and args.runs == str(tmp_path / "r")
    with pytest.raises(reproduce.ReproduceError, match="not a command"):
        reproduce.rerun_argv({**result, "command": "python -m __main__ --tier cpu"},
                             tmp_path, tmp_path)
