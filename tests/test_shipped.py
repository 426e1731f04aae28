"""The checkpoints the course ships are the models its result files describe.

A result file written with ``--ship`` names its checkpoint and sha256; the checkpoint must be
listed with that sha256, and, loaded the way the notebooks load it (``scales.tier_models``),
must reach exactly the file's clean test accuracy, with the same image right and wrong
where the file records that per image.
"""
import json
from pathlib import Path

import pytest

from sovr_tutorial.lab import scales
from sovr_tutorial.checkpoint import shipped_sha256
from sovr_tutorial.paths import shipped_dir
from sovr_tutorial.evaluate import predictions

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "results").glob("*/*.json"))
SHIPPED = [p for p in SHIPPED if "checkpoint" in json.loads(p.read_text())]


def test_some_result_files_name_their_shipped_checkpoint():
    assert {p.parent.name for p in SHIPPED} >= {"small"}


@pytest.mark.parametrize("tier_name", sorted({p.parent.name for p in SHIPPED}))
def test_shipped_checkpoints_reproduce_their_result_files(tier_name, data_dir):
    files = [json.loads(p.read_text()) for p in SHIPPED if p.parent.name == tier_name]
    for seed in sorted({r["seed"] for r in files}):
        runs = {r["run"][: -len(f"-s{seed}")]: r for r in files if r["seed"] == seed}
        tier, data, _, models, missing = scales.tier_models(tier_name, methods=sorted(runs),
                                                            seed=seed, device="cpu")
        assert not missing, f"result files name checkpoints that do not ship: {missing}"
        x_te, y_te = data[2]
        for slug, model in models.items():
            r = runs[slug]
            assert shipped_sha256(shipped_dir() / r["checkpoint"]["file"]) == r["checkpoint"]["sha256"]
            right = predictions(model, x_te.float().div(255)) == y_te
            assert right.float().mean().item() == pytest.approx(r["clean_acc"], abs=1e-6), r["run"]
            if "per_image" in r:   # files before per-image bits have the accuracy only
                bits = r["per_image"]["clean"]
                assert "".join("1" if ok else "0" for ok in right[: len(bits)].tolist()) == bits


def test_a_seed_without_checkpoints_is_missing_but_a_broken_checkpoint_raises(
        data_dir, tmp_path, monkeypatch):
    from sovr_tutorial import checkpoint
    from sovr_tutorial.checkpoint import CheckpointError

    *_, models, missing = scales.tier_models("small", methods=("at", "gairat"), seed=99,
                                             device="cpu")
    assert (models, missing) == ({}, ["at", "gairat"])

    # the same file with one byte changed: there, but not the file SHA256SUMS lists
    broken = tmp_path / "small-at-s0.pt"
    raw = bytearray((shipped_dir() / broken.name).read_bytes())
    raw[-1] ^= 0xFF
    broken.write_bytes(bytes(raw))
    (tmp_path / "SHA256SUMS").write_text((shipped_dir() / "SHA256SUMS").read_text())
    monkeypatch.setattr(checkpoint, "shipped_dir", lambda: tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        scales.tier_models("small", methods=("at",), seed=0, device="cpu")
