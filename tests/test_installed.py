"""The package works installed, not only from its checkout: ``pip install .`` (no ``-e``),
then from another working directory the notebooks' imports, a toy run and a ``ci``-tier
training run, with runs and caches in the working directory and nothing written inside the
installed package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import sovr_tutorial as st
    from sovr_tutorial import paths
    # every module the notebooks import
    from sovr_tutorial.figures import (eps_widgets, explorer, frames, images, movie, plots,
                                       push, toy as toy_plots, toy_widgets, widgets)
    from sovr_tutorial.lab import (experiments, provenance, report, results, scales,
                                   verdicts, toy as toy_runs, movie as movie_runs)
    from sovr_tutorial.toy import model as toy_model, world

    installed = Path(sys.argv[1]).resolve()
    assert Path(st.__file__).resolve().is_relative_to(installed), st.__file__
    assert paths.checkout() is None
    assert paths.runs_dir() == Path.cwd() / "runs" and paths.data_dir() == Path.cwd() / "data"

    tier = world.toy_tier().replace(epochs=2)
    result = toy_runs.run_toy("at", seed=0, tier=tier, out_dir=Path("toy-results"))
    assert Path("toy-results/at-s0.json").is_file() and 0 <= result["clean_acc"] <= 1

    ci = st.get_tier("ci", epochs=1, n_train=200, n_test=50, n_heldout=50)
    data, info = st.load_data(ci)
    (x, y), (xh, yh), _ = data
    model, history = st.trained_model("at", x, y, retrain=True, tier=ci, x_val=xh, y_val=yh,
                                      progress=False)
    assert len(history) == 1 and Path("runs/notebooks-ci/at-s0.pt").is_file()
    print("OK", info["label"])
""")


@pytest.mark.slow
def test_a_non_editable_install_runs_from_any_directory(tmp_path):
    if not os.environ.get("SOVR_TUTORIAL_DATA"):
        pytest.skip("needs SOVR_TUTORIAL_DATA (the offline CIFAR-10 copy) for the ci run")
    # a copy of what a wheel is built from: pip builds in the source tree, and a build/
    # folder left there by another build could carry modules that no longer exist
    source = tmp_path / "source"
    shutil.copytree(ROOT / "sovr_tutorial", source / "sovr_tutorial",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    target = tmp_path / "site"
    # the venv's own build backend, no build isolation: nothing is downloaded
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)], check=True)
    assert (target / "sovr_tutorial" / "lab" / "experiments.py").is_file()
    assert (target / "sovr_tutorial" / "figures" / "frames.py").is_file()
    before = sorted(p.relative_to(target) for p in target.rglob("*") if "__pycache__" not in p.parts)

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("SOVR_TUTORIAL_HOME", "SOVR_TUTORIAL_RUNS")}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(target)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")
    after = sorted(p.relative_to(target) for p in target.rglob("*") if "__pycache__" not in p.parts)
    assert after == before, "the run wrote inside the installed package"
    assert (work / "data" / "cache").is_dir()   # the decoded cache went to the working directory
