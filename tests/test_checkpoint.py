"""Checkpoints: atomic, complete, and safe to load."""
import os
import pickle
import random

import numpy as np
import pytest
import torch

from sovr_tutorial import CheckpointError, build_model, load_checkpoint, save_checkpoint
from sovr_tutorial.files import sha256_file


def _model_and_opt():
    torch.manual_seed(0)
    model = build_model("small_cnn", width=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [1], 0.1)
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def test_round_trip_restores_model_optimizer_scheduler_and_rngs(tmp_path):
    model, opt, sched = _model_and_opt()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    save_checkpoint(tmp_path / "c.pt", model, opt, sched, epoch=3, config={"method": "at"},
                    history=[{"epoch": 1, "loss": 2.0}])
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    m2 = build_model("small_cnn", width=4)
    o2 = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    s2 = torch.optim.lr_scheduler.MultiStepLR(o2, [1], 0.1)
    ckpt = load_checkpoint(tmp_path / "c.pt", m2, o2, s2, restore_rng=True)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert ckpt["epoch"] == 3 and ckpt["config"] == {"method": "at"}
    assert ckpt["history"] == [{"epoch": 1, "loss": 2.0}]
    for a, b in zip(model.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert o2.state_dict()["state"][0]["momentum_buffer"].equal(
        opt.state_dict()["state"][0]["momentum_buffer"])
    assert s2.last_epoch == sched.last_epoch and o2.param_groups[0]["lr"] == pytest.approx(0.01)


def test_save_leaves_no_temporary_files_and_replaces_atomically(tmp_path):
    model, opt, sched = _model_and_opt()
    for epoch in range(3):
        save_checkpoint(tmp_path / "c.pt", model, opt, epoch=epoch)
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 2


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, _ = _model_and_opt()
    save_checkpoint(tmp_path / "c.pt", model, epoch=1)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "c.pt", model, epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": _RunsCode(), "arch": "small_cnn-w4-c10"}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(evil, build_model("small_cnn", width=4))
    assert not (tmp_path / "PWNED").exists()
    # the same file through torch.save (zip format) is refused as well
    torch.save({"model": _RunsCode(), "arch": "x"}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(tmp_path / "evil2.pt")
    assert not (tmp_path / "PWNED").exists()


def test_sha256_mismatch_is_refused_before_loading(tmp_path):
    model, _, _ = _model_and_opt()
    path = save_checkpoint(tmp_path / "c.pt", model)
    good = sha256_file(path)
    load_checkpoint(path, sha256=good)
    with pytest.raises(CheckpointError, match="sha256") as e:
        load_checkpoint(path, sha256="0" * 64)
    assert str(path) in str(e.value)


def test_truncated_file_gives_a_clear_error(tmp_path):
    model, _, _ = _model_and_opt()
    path = save_checkpoint(tmp_path / "c.pt", model)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        load_checkpoint(path)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", build_model("small_cnn", width=4))
    with pytest.raises(CheckpointError, match="small_cnn-w4") as e:
        load_checkpoint(path, build_model("small_cnn", width=8))
    assert "small_cnn-w8" in str(e.value)
    with pytest.raises(CheckpointError, match="preact_resnet18"):
        load_checkpoint(path, build_model("preact_resnet18"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
