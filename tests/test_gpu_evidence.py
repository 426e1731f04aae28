"""The prepared GPU run (sovr_tutorial.lab.gpu_evidence, issue 23), dry-run on the CPU: the
same pack loading, cost measuring, deadline sizing, training, evaluation and writing as on
an H200, with a tiny network on a few hundred images, inside a 20-second budget."""
import io
import json
import zipfile

import pytest
import torch

from sovr_tutorial.figures.frames import load_frames
from sovr_tutorial.paths import checkout
from sovr_tutorial.lab import gpu_evidence as ge
from sovr_tutorial.lab.gpu_pack import (WHEEL_DROP, build_pack, check_travel,
                                        load_pack, slim_wheel, travel_bytes)


def _fixture_zips(folder, data_dir, per_class):
    """Zips in the JPEG copy's layout (CLASS/NNNN.jpg) made from the official images, for
    machines whose CIFAR-10 is the official set: the pack's cutting needs the zips."""
    from PIL import Image

    from sovr_tutorial.data import CLASSES, load_cifar10
    for split in ("train", "test"):
        x, y, _ = load_cifar10(split, data_dir)
        with zipfile.ZipFile(folder / f"{split}.zip", "w") as zf:
            for c, name in enumerate(CLASSES):
                for k, i in enumerate((y == c).nonzero().flatten()[:per_class].tolist()):
                    buf = io.BytesIO()
                    Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=75)
                    zf.writestr(f"{name}/{k:04d}.jpg", buf.getvalue())


def _is_jpeg_copy(data_dir):
    return (data_dir / "train.zip").is_file() and (data_dir / "test.zip").is_file()


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("pack")
    if _is_jpeg_copy(data_dir):
        source, verify = data_dir, True
    else:
        source, verify = tmp_path_factory.mktemp("source"), False
        _fixture_zips(source, data_dir, per_class=60)
    build_pack(source, out, n_train=400, n_test=100, wheel=None, verify_source=verify)
    return out


def test_pack_is_balanced_checked_and_decodes_as_built(tiny_pack, data_dir):
    manifest = json.loads((tiny_pack / "pack.json").read_text())
    assert manifest["label"] == "CIFAR-10 (JPEG copy)"
    assert manifest["splits"]["train"]["per_class"] == [40] * 10
    assert manifest["splits"]["test"]["per_class"] == [10] * 10
    (x, y), (xt, yt), info = load_pack(tiny_pack)
    assert x.shape == (400, 3, 32, 32) and x.dtype == torch.uint8 and len(yt) == 100
    assert info["decoded_as_built"] == {"train": True, "test": True}
    if _is_jpeg_copy(data_dir):   # the pack's pixels are the JPEG copy's own, not re-encoded
        from sovr_tutorial.data import load_cifar10
        full, full_y, _ = load_cifar10("test", data_dir)
        rows = {bytes(img.numpy().tobytes()): int(lab) for img, lab in zip(full, full_y)}
        assert all(rows.get(bytes(img.numpy().tobytes())) == int(lab) for img, lab in zip(xt, yt))
    # a file that no longer matches its manifest is refused
    bad = tiny_pack.parent / "bad-pack"
    bad.mkdir()
    for f in tiny_pack.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    with zipfile.ZipFile(bad / "test.zip", "a") as zf:
        zf.writestr("airplane/9999.jpg", b"not a jpeg")
    with pytest.raises(ValueError, match="sha256"):
        load_pack(bad)


def test_slim_wheel_drops_the_examples_and_their_record_lines(tmp_path):
    wheel = tmp_path / "src" / "pyautoattack-0.2.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pyautoattack/__init__.py", "x = 1\n")
        zf.writestr(f"{WHEEL_DROP}model_test.pt", b"0" * 1000)
        zf.writestr("pyautoattack-0.2.0.dist-info/RECORD",
                    f"pyautoattack/__init__.py,sha256=a,6\n{WHEEL_DROP}model_test.pt,sha256=b,"
                    "1000\npyautoattack-0.2.0.dist-info/RECORD,,\n")
    info = slim_wheel(wheel, tmp_path)
    with zipfile.ZipFile(tmp_path / wheel.name) as zf:
        names = zf.namelist()
        record = zf.read("pyautoattack-0.2.0.dist-info/RECORD").decode()
    assert names == ["pyautoattack/__init__.py", "pyautoattack-0.2.0.dist-info/RECORD"]
    assert WHEEL_DROP not in record and "pyautoattack/__init__.py,sha256=a,6" in record
    assert info["dropped"] == [f"{WHEEL_DROP}model_test.pt"]


def test_travel_check_counts_tree_and_pack(tiny_pack):
    sizes = travel_bytes(checkout(), carry=())
    assert sizes["tracked"] > 1_000_000 and sizes["total"] == sizes["tracked"] + sizes["untracked"]
    with pytest.raises(FileNotFoundError, match="wheel"):
        check_travel(checkout(), tiny_pack, need_wheel=True)
    checked = check_travel(checkout(), tiny_pack, need_wheel=False)
    assert checked["total"] > sizes["total"] and checked["headroom"] > 0


def _costs(step, fb=0.01, f=0.004, metrics=0.5):
    return {"step": {m: step * (1.13 if m == "mart" else 1.0) for m in ge.METHOD_SETS[0]},
            "metrics": metrics, "fb": {125: fb, 500: 4 * fb}, "f": {125: f, 500: 4 * f},
            "batch_size": 128}


def test_sizing_gives_up_images_then_methods_never_the_deadline():
    preset = ge.PRESETS["h200"]
    fast = ge.size_run(_costs(0.005), preset, elapsed=30, pack_train=20000)
    assert fast["fits"] and fast["methods"] == list(ge.METHOD_SETS[0])
    assert fast["n_train"] == 15000
    mid = ge.size_run(_costs(0.02), preset, elapsed=30, pack_train=20000)
    assert mid["fits"] and len(mid["methods"]) == 4 and preset.e_min <= mid["epochs"] < fast["epochs"]
    slow = ge.size_run(_costs(0.06), preset, elapsed=30, pack_train=20000)
    assert slow["fits"] and slow["methods"] == ["at", "gairat", "sovr-r0.4"]
    hopeless = ge.size_run(_costs(5.0), preset, elapsed=30, pack_train=20000)
    assert not hopeless["fits"] and hopeless["methods"] == ["at"]
    for plan in (fast, mid, slow):   # what was planned ends inside the budget
        k = len(plan["methods"])
        total = 30 + sum(plan["train_seconds"].values()) + k * (
            plan["eval_seconds"] + plan["autoattack"]["seconds"])
        assert total <= preset.budget - preset.reserve
    # AutoAttack: standard when its predicted time fits its share, else the labelled pair
    assert ge.size_run(_costs(0.02, fb=1e-4, f=1e-5), preset, 30, 20000)["autoattack"][
        "version"] == "standard"
    assert ge.size_run(_costs(0.02, fb=0.05, f=0.02), preset, 30, 20000)["autoattack"][
        "version"] == "custom"


def test_plan_prints_steps_epochs_images_and_parts(capsys):
    ge.print_plan(ge.PRESETS["cpu-dry-run"], setup_seconds=2)
    out = capsys.readouterr().out
    for words in ("GFLOP/image", "ms (", "training images", "epochs", "AutoAttack",
                  "expected wall", "travels:"):
        assert words in out


def test_dry_run_writes_every_part_inside_its_budget(tiny_pack, tmp_path):
    out = tmp_path / "evidence"
    preset = ge.PRESETS["cpu-dry-run"]
    assert ge.main(["--preset", "cpu-dry-run", "--pack", str(tiny_pack), "--out", str(out),
                    "--device", "cpu"]) == 0
    files = sorted(out.iterdir())
    # what one device command can bring back: at most 8 plain files of at most 16 MiB
    assert len(files) <= 8 and all(f.is_file() and f.stat().st_size < 16 * 2**20 for f in files)
    plan = json.loads((out / "plan.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert plan["labels"]["data"] == "CIFAR-10 (JPEG copy)" and plan["labels"]["gpu"] is None
    assert plan["labels"]["budget_seconds"] == preset.budget
    assert set(plan["measured_costs"]["step"]) == set(ge.METHOD_SETS[0])
    done = [r["run"] for r in summary["runs"]]
    assert done[0] == "at-s0"   # AT first, always
    assert not summary["failed"]
    assert [r.split("-s")[0] for r in done] + summary["skipped"] == plan["plan"]["methods"]
    assert summary["wall_seconds"] < preset.budget + 15
    frames = load_frames(out / "frames.json")
    assert [r["run"] for r in frames["runs"]] == done
    for name in done:
        result = json.loads((out / f"{name}.json").read_text())
        tier = result["tier"]
        assert tier["name"] == "gpu-evidence" and tier["model"] == "small_cnn"
        # the experiment runner's schema, with the labels of this run
        for key in ("clean_acc", f"pgd{tier['eval_steps']}_ce_acc", "pgd_acc_on_aa_subset",
                    "robust_train_acc", "history", "environment", "per_image", "margins"):
            assert key in result
        assert result["data"]["label"] == "CIFAR-10 (JPEG copy)"
        assert len(result["per_image"]["clean"]) == tier["n_test"]
        assert len(result["autoattack"]["broken_by"]) == tier["n_autoattack"]
        assert result["autoattack"]["version"] == plan["plan"]["autoattack"]["version"]
        assert result["gpu_evidence"]["epochs_trained"] == len(result["history"]) >= 1
        assert "peaks" in result["margins"]["train_adv"]
    entry = summary["runs"][0]
    assert entry["peaks_at_end"]["train_adv"] and entry["train_slice_peaks_on_the_way"]
